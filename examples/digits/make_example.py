#!/usr/bin/env python3
"""Builds the bundled demo: a small CNN trained on real handwritten digits.

Data: the 1797 8x8 digit images that Debian's python3-sklearn ships
(sklearn/datasets/data/digits.csv.gz). Training uses Debian's python3-torch on the CPU
with fixed seeds, so rerunning this script reproduces the committed files:

  digits_cnn.onnx   the float model (opset 13), input "image" [N,1,8,8], output "logits"
  calib.npz         200 training images for calibration     {"image"}
  train.npz         the 1437 training images and labels      {"image", "label"}
                    (training data of the distill recipe step, prune_distill_int8.yaml)
  eval.npz          360 held-out images and their labels     {"image", "label"}
  expected.npz      the model's logits on eval.npz (from torch) {"logits"}

Run: /usr/bin/python3 examples/digits/make_example.py [OUTDIR]
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_digits


class DigitsCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(),
                                  nn.Linear(64, 10))

    def forward(self, x):
        return self.head(self.features(x))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(1)
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = digits.target.astype(np.int64)
    order = np.random.RandomState(0).permutation(len(x))
    x, y = x[order], y[order]
    x_train, y_train = x[:1437], y[:1437]
    x_eval, y_eval = x[1437:], y[1437:]

    model = DigitsCnn()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for epoch in range(30):
        perm = torch.randperm(len(xt))
        model.train()
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x_eval)).numpy()
    acc = float((logits.argmax(1) == y_eval).mean())
    print(f"digits_cnn: eval top-1 {acc * 100:.2f}% on {len(y_eval)} held-out images")

    torch.onnx.export(model, torch.from_numpy(x_eval[:1]), os.path.join(out, "digits_cnn.onnx"),
                      input_names=["image"], output_names=["logits"], opset_version=13,
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=False)
    np.savez(os.path.join(out, "calib.npz"), image=x_train[:200])
    np.savez(os.path.join(out, "train.npz"), image=x_train, label=y_train)
    np.savez(os.path.join(out, "eval.npz"), image=x_eval, label=y_eval)
    np.savez(os.path.join(out, "expected.npz"), logits=logits)


if __name__ == "__main__":
    main()

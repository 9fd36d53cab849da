#!/usr/bin/env python3
"""Builds a small transformer classifier on the same handwritten digits as make_example.py.

Each 8x8 image is read as a sequence of 8 tokens (its rows, 8 pixels each): a linear
embedding to d=64 plus learned positions, 2 pre-LN encoder layers (4 heads, exact GELU
MLP of width 128), mean pooling over the tokens, a final LayerNorm and a linear head.
Written in plain torch so the export is MatMul/Softmax/LayerNormalization (opset 17), the
shape quantization passes meet in real transformers.

It uses make_example.py's split (the same seed and permutation), so the committed
calib.npz (200 training images) and eval.npz (360 held-out images + labels) fit this model
too; the script checks that its split reproduces eval.npz before writing anything.
Training runs on the CPU with fixed seeds (one thread), so rerunning it reproduces:

  digits_transformer.onnx   input "image" [N,1,8,8], output "logits" [N,10]

With --layers N (N != 2) it writes digits_transformer_<N>l.onnx instead: the same model
with N encoder layers, the deeper teacher of the half-depth distillation comparison
(docs/distill.md; examples/digits/half_depth_kd.py).

Run: /usr/bin/python3 examples/digits/make_transformer.py [OUTDIR] [--layers N]
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

D_MODEL, HEADS, LAYERS, FFN = 64, 4, 2, 128
MIN_TOP1 = 0.95


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.head_dim = D_MODEL // HEADS
        self.ln1 = nn.LayerNorm(D_MODEL)
        self.qkv = nn.Linear(D_MODEL, 3 * D_MODEL)
        self.proj = nn.Linear(D_MODEL, D_MODEL)
        self.ln2 = nn.LayerNorm(D_MODEL)
        self.fc1 = nn.Linear(D_MODEL, FFN)
        self.fc2 = nn.Linear(FFN, D_MODEL)
        self.act = nn.GELU()

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q = q.reshape(b, s, HEADS, self.head_dim).transpose(1, 2)
        k = k.reshape(b, s, HEADS, self.head_dim).transpose(1, 2)
        v = v.reshape(b, s, HEADS, self.head_dim).transpose(1, 2)
        att = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim), -1)
        ctx = torch.matmul(att, v).transpose(1, 2).reshape(b, s, d)
        x = x + self.proj(ctx)
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


class DigitsTransformer(nn.Module):
    def __init__(self, layers=LAYERS):
        super().__init__()
        self.embed = nn.Linear(8, D_MODEL)
        self.pos = nn.Parameter(torch.randn(1, 8, D_MODEL) * 0.02)
        self.blocks = nn.ModuleList([Block() for _ in range(layers)])
        self.ln_f = nn.LayerNorm(D_MODEL)
        self.head = nn.Linear(D_MODEL, 10)

    def forward(self, image):
        x = self.embed(image.reshape(-1, 8, 8)) + self.pos  # rows as tokens
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x.mean(dim=1)))


def main():
    args = sys.argv[1:]
    layers = LAYERS
    if "--layers" in args:
        i = args.index("--layers")
        layers = int(args[i + 1])
        del args[i:i + 2]
    out = args[0] if args else os.path.dirname(os.path.abspath(__file__))
    here = os.path.dirname(os.path.abspath(__file__))
    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(1)
    # The split of make_example.py, step by step.
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = digits.target.astype(np.int64)
    order = np.random.RandomState(0).permutation(len(x))
    x, y = x[order], y[order]
    x_train, y_train = x[:1437], y[:1437]
    x_eval, y_eval = x[1437:], y[1437:]
    with np.load(os.path.join(here, "eval.npz")) as z:
        if not (np.array_equal(z["image"], x_eval) and np.array_equal(z["label"], y_eval)):
            raise SystemExit("make_transformer.py: the split does not reproduce eval.npz; "
                             "keep it in step with make_example.py")

    model = DigitsTransformer(layers)
    epochs = 60
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * 23)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        model.train()
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x_eval)).numpy()
    acc = float((logits.argmax(1) == y_eval).mean())
    print(f"digits_transformer: eval top-1 {acc * 100:.2f}% on {len(y_eval)} held-out images")
    if acc < MIN_TOP1:
        raise SystemExit(f"make_transformer.py: top-1 {acc:.4f} below {MIN_TOP1}; not written")

    name = "digits_transformer.onnx" if layers == LAYERS else f"digits_transformer_{layers}l.onnx"
    path = os.path.join(out, name)
    tmp = path + ".tmp%d" % os.getpid()
    torch.onnx.export(model, torch.from_numpy(x_eval[:1]), tmp,
                      input_names=["image"], output_names=["logits"], opset_version=17,
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=True)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()

"""Exports small models with dynamic (symbolic) axes for tests/ir/onnx_symbolic_test.cc.

Writes OUT_DIR/encoder_opset{14,17}.onnx: a 2-layer BERT-style encoder (hidden 32, 4 heads)
with symbolic "batch" and "seq" axes, as torch.onnx emits it (Shape -> Gather -> Unsqueeze
-> Concat -> Reshape chains for the head split), and OUT_DIR/cnn.onnx, a small
MobileNet-style CNN (strided, depthwise and 1x1 convs, BatchNorm, ReLU6 as Clip, ceil-mode
max pooling, global pooling, Flatten, Gemm) with a symbolic "batch" axis.
Usage: export_symbolic.py OUT_DIR
"""
import os
import sys

import torch
import torch.nn as nn


class Layer(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads, self.hd = heads, hidden // heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.o = nn.Linear(hidden, hidden)
        self.ln1 = nn.LayerNorm(hidden)
        self.ff = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))
        self.ln2 = nn.LayerNorm(hidden)

    def forward(self, x, bias):
        b, s, h = x.shape
        q, k, v = self.qkv(x).split(h, dim=-1)
        q, k, v = (t.view(b, s, self.heads, self.hd).transpose(1, 2) for t in (q, k, v))
        p = torch.softmax(q @ k.transpose(-1, -2) / self.hd ** 0.5 + bias, dim=-1)
        x = self.ln1(x + self.o((p @ v).transpose(1, 2).reshape(b, s, h)))
        return self.ln2(x + self.ff(x))


class Encoder(nn.Module):
    def __init__(self, vocab=100, hidden=32, heads=4, layers=2):
        super().__init__()
        self.tok = nn.Embedding(vocab, hidden)
        self.pos = nn.Embedding(64, hidden)
        self.layers = nn.ModuleList(Layer(hidden, heads) for _ in range(layers))

    def forward(self, ids, mask):
        pos = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        x = self.tok(ids) + self.pos(pos)
        bias = (1.0 - mask[:, None, None, :].float()) * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        return x


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    enc = Encoder().eval()
    ids = torch.randint(0, 100, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.int64)
    axes = {"ids": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"},
            "hidden": {0: "batch", 1: "seq"}}
    for opset in (14, 17):
        torch.onnx.export(enc, (ids, mask), os.path.join(out, f"encoder_opset{opset}.onnx"),
                          input_names=["ids", "mask"], output_names=["hidden"],
                          dynamic_axes=axes, opset_version=opset)
    cnn = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU6(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU6(),
        nn.Conv2d(16, 24, 1), nn.MaxPool2d(3, stride=2, ceil_mode=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 10)).eval()
    torch.onnx.export(cnn, torch.randn(1, 3, 33, 33), os.path.join(out, "cnn.onnx"),
                      input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=13)


if __name__ == "__main__":
    main()

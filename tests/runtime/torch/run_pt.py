"""Runs a TorchScript file the way a LibTorch user's Python would: torch.jit.load, then
forward() on the arrays of an .npz (in the order given by --inputs), writing the outputs
to an .npz as out_0, out_1, ... Used by tests/runtime/torch/torch_export_test.cc with
Debian's /usr/bin/python3 (python3-torch, python3-numpy).

Usage: run_pt.py MODEL.pt IN.npz OUT.npz NAME[,NAME...]
"""
import sys

import numpy as np
import torch


def main():
    model, inp, out, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
    m = torch.jit.load(model)
    data = np.load(inp)
    args = [torch.from_numpy(np.ascontiguousarray(data[n])) for n in names]
    with torch.no_grad():
        y = m(*args)
    if isinstance(y, torch.Tensor):
        y = (y,)
    np.savez(out, **{"out_%d" % i: t.numpy() for i, t in enumerate(y)})


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Data-parallel `edgepress distill` next to one process, on the digits models.

For each of the digits CNN and transformer (examples/digits), with a 50%-pruned student,
180 steps of a global batch of 32 (docs/distill.md's table), the script runs one process
and then 2 ranks on 127.0.0.1 (WORLD_SIZE=2, one process per rank), --rounds times
interleaved, and prints per round the samples/s of each (the 2-rank figure is both ranks
together) and their ratio, the eval top-1 and KD loss of each, the largest loss-curve
difference and the largest weight difference, with the tensor that has it.

Timings on a shared machine are noisy: report `uptime`'s load with them.
  .venv/bin/python bench/distill_ddp.py --edgepress build/tools/edgepress --rounds 3
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weights(path):
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}


def run(cli, model, lr, out, ranks):
    args = [cli, "distill", "--teacher", os.path.join(DIGITS, model),
            "--student-from-teacher", "prune-magnitude{sparsity=0.5}",
            "--data", os.path.join(DIGITS, "train.npz"), "--eval", os.path.join(DIGITS, "eval.npz"),
            "--steps", "180", "--batch-size", "32", "--lr", lr, "--warmup", "10",
            "--eval-every", "60", "--seed", "1", "--json"]
    if ranks == 1:
        r = subprocess.run(args + ["-o", out], capture_output=True, text=True, check=True)
        return json.loads(r.stdout)
    env = dict(os.environ, WORLD_SIZE=str(ranks), MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(free_port()))
    others = [subprocess.Popen(args + ["-o", out.replace(".onnx", f".rank{r}.onnx")], env=dict(env, RANK=str(r)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for r in range(1, ranks)]
    r = subprocess.run(args + ["-o", out], env=dict(env, RANK="0"), capture_output=True, text=True)
    for p in others:
        p.wait()
    if r.returncode != 0 or any(p.returncode for p in others):
        sys.exit(r.stderr)
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edgepress", default=os.path.join(ROOT, "build", "tools", "edgepress"))
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    print("load:", open("/proc/loadavg").read().strip())
    with tempfile.TemporaryDirectory() as tmp:
        for model, lr in (("digits_cnn.onnx", "2e-3"), ("digits_transformer.onnx", "1e-3")):
            for rnd in range(a.rounds):
                one, two = os.path.join(tmp, "one.onnx"), os.path.join(tmp, "two.onnx")
                j1 = run(a.edgepress, model, lr, one, 1)
                j2 = run(a.edgepress, model, lr, two, 2)
                w1, w2 = weights(one), weights(two)
                diff = {k: float(np.abs(w1[k].astype(np.float64) - w2[k]).max())
                        for k in w1 if w1[k].dtype == np.float32}
                worst = max(diff, key=diff.get)
                curve = max(abs(x["loss"] - y["loss"]) for x, y in zip(j1["loss_curve"], j2["loss_curve"]))
                print(f"{model} round {rnd + 1}: samples/s 1 process {j1['samples_per_second']:.0f}, "
                      f"2 ranks {j2['samples_per_second']:.0f} "
                      f"({j2['samples_per_second'] / j1['samples_per_second']:.2f}x); "
                      f"top-1 {j1['after']['top1']:.4f} / {j2['after']['top1']:.4f}; "
                      f"KD {j1['after']['kd_loss']:.6f} / {j2['after']['kd_loss']:.6f}; "
                      f"loss curve within {curve:.2g}; weights within {diff[worst]:.2g} ({worst})")
    print("load:", open("/proc/loadavg").read().strip())


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Half-depth student of a digits transformer: distilled from the teacher vs labels alone.

The teacher is examples/digits/digits_transformer_4l.onnx (4 pre-LN encoder layers,
make_transformer.py --layers 4); the student is `--student-from-teacher drop-blocks`
(layers 0 and 2, DistilBERT's initialisation). Every run uses the same student, steps,
batch, learning rate and data order (--seed); only the loss differs:

  labels      --alpha-kd 0                 cross-entropy on the labels alone
  kd          (defaults)                   KL to the teacher at T=2 + cross-entropy
  kd+hidden   kd + --layer-map             + MSE of student block j's output to teacher
                                             block 2j+1's (blocks.0<-blocks.1, 2<-3)

Settings: "full" trains on the 1437 training digits (train.npz); "small" on its first
--small images only (the same images for every seed), where soft targets have more to add.
Top-1 is measured on the 360 held-out digits of eval.npz after the last step (--eval with
no intermediate evaluations, and the reported number is the last evaluation, so nothing is
selected on the eval data). Prints a Markdown table (mean and standard deviation over the
seeds, and every run) and writes OUTDIR/half_depth_kd.json.

Run from the repository root after building tools/edgepress with LibTorch:
  .venv/bin/python examples/digits/half_depth_kd.py OUTDIR [--seeds 1,2,3,4,5]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
HIDDEN = ("/blocks.1/Add_1_output_0:/blocks.0/Add_1_output_0,"
          "/blocks.3/Add_1_output_0:/blocks.2/Add_1_output_0")
VARIANTS = {"labels": ["--alpha-kd", "0"], "kd": [], "kd+hidden": ["--layer-map", HIDDEN]}


def Distill(args, data, variant, seed):
    cmd = [args.edgepress, "distill", "--teacher", args.teacher, "--student-from-teacher",
           "drop-blocks", "--data", data, "--eval", os.path.join(HERE, "eval.npz"),
           "--steps", str(args.steps), "--batch-size", "32", "--lr", str(args.lr),
           "--warmup", "10", "--seed", str(seed), "-o",
           os.path.join(args.outdir, "student.onnx"), "--json"] + VARIANTS[variant]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if r.returncode != 0:
        raise SystemExit("half_depth_kd.py: failed: " + " ".join(cmd))
    s = json.loads(r.stdout)
    return {"teacher": s["teacher"]["top1"], "before": s["evals"][0]["top1"],
            "last": s["evals"][-1]["top1"], "seconds": s["seconds"], "command": " ".join(cmd)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("outdir")
    p.add_argument("--edgepress", default=os.path.join(ROOT, "build", "tools", "edgepress"))
    p.add_argument("--teacher", default=os.path.join(HERE, "digits_transformer_4l.onnx"))
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--steps", type=int, default=180)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--small", type=int, default=100)
    p.add_argument("--settings", default="full,small")
    p.add_argument("--variants", default="labels,kd,kd+hidden")
    args = p.parse_args()
    os.makedirs(args.outdir, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    with np.load(os.path.join(HERE, "train.npz")) as z:
        small = {k: z[k][:args.small] for k in z.files}
    small_path = os.path.join(args.outdir, f"train_{args.small}.npz")
    np.savez(small_path, **small)
    data = {"full": os.path.join(HERE, "train.npz"), "small": small_path}
    results = {}
    for setting in args.settings.split(","):
        for variant in args.variants.split(","):
            runs = [Distill(args, data[setting], variant, s) for s in seeds]
            results[f"{setting}/{variant}"] = runs
            last = [r["last"] * 100 for r in runs]
            print(f"{setting:5s} {variant:9s} teacher {runs[0]['teacher'] * 100:.2f}% before "
                  f"{runs[0]['before'] * 100:.2f}% after mean {statistics.mean(last):.2f}% "
                  f"sd {statistics.pstdev(last):.2f} runs "
                  + " ".join(f"{x:.2f}" for x in last), flush=True)
    with open(os.path.join(args.outdir, "half_depth_kd.json"), "w") as f:
        json.dump({"seeds": seeds, "steps": args.steps, "lr": args.lr, "small": args.small,
                   "results": results}, f, indent=1)
    print("\n| setting | loss | teacher | student before | after (mean ± sd over seeds) | runs |")
    print("|---|---|---|---|---|---|")
    for key, runs in results.items():
        setting, variant = key.split("/")
        last = [r["last"] * 100 for r in runs]
        print(f"| {setting} | {variant} | {runs[0]['teacher'] * 100:.2f}% | "
              f"{runs[0]['before'] * 100:.2f}% | {statistics.mean(last):.2f}% ± "
              f"{statistics.pstdev(last):.2f} | " + ", ".join(f"{x:.2f}" for x in last) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

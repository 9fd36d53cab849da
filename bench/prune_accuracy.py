"""Accuracy of pruning without fine-tuning: top-1 and output NMSE of pruned models.

Each model is pruned with `edgepress apply` (prune-magnitude / prune-nm, magnitude or
criterion=hessian = SparseGPT) and the written ONNX is run in onnxruntime, so the numbers
do not depend on edgepress's own runtime. Not part of ctest; numbers in docs/pruning.md.

  digits CNN / transformer (examples/digits): top-1 on eval.npz (360 held-out images) and
      the logits' NMSE against fp32; SparseGPT calibrates on calib.npz (200 training
      images).
  BERT-style encoder (tests/fixtures/make_models.py, seeded random weights, 6 layers,
      hidden 384, FFN 1536): NMSE of last_hidden_state and pooled on 4 held-out random
      sequences of 128 tokens; SparseGPT calibrates on 16 other random sequences.

  .venv/bin/python bench/prune_accuracy.py --cli build/tools/edgepress \
      --bert build/fixtures/bert/model.onnx --out /tmp/prune-acc
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
DIGITS = os.path.join(HERE, "..", "examples", "digits")

DIGITS_PIPELINES = [
    ("fp32", None),
    ("50% unstructured, per layer", "prune-magnitude{sparsity=0.5}"),
    ("50% unstructured, per layer, min-params=1000", "prune-magnitude{sparsity=0.5,min-params=1000}"),
    ("50% unstructured, global", "prune-magnitude{sparsity=0.5,scope=global}"),
    ("50% unstructured, hessian", "prune-magnitude{sparsity=0.5,criterion=hessian}"),
    ("70% unstructured, per layer", "prune-magnitude{sparsity=0.7}"),
    ("70% unstructured, global", "prune-magnitude{sparsity=0.7,scope=global}"),
    ("70% unstructured, hessian", "prune-magnitude{sparsity=0.7,criterion=hessian}"),
    ("2:4", "prune-nm"),
    ("2:4, hessian", "prune-nm{criterion=hessian}"),
    ("4:8", "prune-nm{n=4,m=8}"),
]

BERT_PIPELINES = [
    ("fp32", None),
    ("50% unstructured, magnitude", "prune-magnitude{sparsity=0.5}"),
    ("50% unstructured, hessian", "prune-magnitude{sparsity=0.5,criterion=hessian}"),
    ("2:4, magnitude", "prune-nm"),
    ("2:4, hessian", "prune-nm{criterion=hessian}"),
]


def apply(cli, model, pipeline, out, data):
    cmd = [cli, "apply", model, "--passes", pipeline, "-o", out]
    if data and "hessian" in pipeline:
        cmd += ["--data", data]
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - t0


def run(model, feeds):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    return s.run(None, feeds)


def nmse(a, ref):
    return float(((a - ref) ** 2).sum() / (ref ** 2).sum())


def digits(cli, out):
    ev = np.load(os.path.join(DIGITS, "eval.npz"))
    calib = os.path.join(DIGITS, "calib.npz")
    rows = []
    for name in ("digits_cnn", "digits_transformer"):
        src = os.path.join(DIGITS, name + ".onnx")
        ref = run(src, {"image": ev["image"]})[0]
        for label, pipeline in DIGITS_PIPELINES:
            path, secs = src, 0.0
            if pipeline:
                path = os.path.join(out, f"{name}_{len(rows)}.onnx")
                secs = apply(cli, src, pipeline, path, calib)
            logits = run(path, {"image": ev["image"]})[0]
            top1 = 100.0 * float((logits.argmax(-1) == ev["label"]).mean())
            rows.append((name, label, pipeline or "-", top1, nmse(logits, ref), secs))
    print("| model | pruning | pipeline | top-1 % | logits NMSE | apply s |")
    print("|---|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | `{r[2]}` | {r[3]:.2f} | {r[4]:.2e} | {r[5]:.1f} |")


def bert(cli, model, out):
    rng = np.random.default_rng(7)
    def batch(n):
        ids = rng.integers(0, 8000, size=(n, 128), dtype=np.int64)
        return {"input_ids": ids, "attention_mask": np.ones((n, 128), dtype=np.int64)}
    calib = os.path.join(out, "bert_calib.npz")
    np.savez(calib, **batch(16))
    held = batch(4)
    ref = run(model, held)
    print("| BERT-style encoder | pipeline | last_hidden_state NMSE | pooled NMSE | apply s |")
    print("|---|---|---:|---:|---:|")
    for i, (label, pipeline) in enumerate(BERT_PIPELINES):
        if not pipeline:
            continue
        path = os.path.join(out, f"bert_{i}.onnx")
        secs = apply(cli, model, pipeline, path, calib)
        outs = run(path, held)
        print(f"| {label} | `{pipeline}` | {nmse(outs[0], ref[0]):.3e} | {nmse(outs[1], ref[1]):.3e} | {secs:.1f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cli", required=True, help="path of the edgepress executable")
    p.add_argument("--out", required=True, help="scratch folder for the pruned models")
    p.add_argument("--bert", help="the BERT fixture's model.onnx (skipped when absent)")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    digits(a.cli, a.out)
    if a.bert:
        print()
        bert(a.cli, a.bert, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

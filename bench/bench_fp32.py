#!/usr/bin/env python3
"""fp32 latency of edgepress's native runtime next to onnxruntime, on the same models.

For each model of tests/fixtures/make_models.py (mlp, resnet18, mobilenet_v2, torchvision's
mobilenet_v3_small, a DB-style text detector, a BERT-style encoder, a GPT-style decoder) at
batch 1 and each thread count, the script runs

  * `edgepress bench MODEL --input IN --threads N --warmup W --iters I --json`, and
  * onnxruntime (CPU EP, ORT_ENABLE_ALL, intra_op_num_threads=N, inter_op_num_threads=1,
    sequential execution) timed around InferenceSession.run with the same input, warmup
    and iteration count,

and prints p50 latency of each and the ratio edgepress/onnxruntime (below 1: edgepress is
faster). Both are measured --rounds times (default 3), interleaved (edgepress, onnxruntime,
then onnxruntime, edgepress, ...), and the smallest p50 of each is kept: on a shared machine
that is the measurement least disturbed by others, and neither side always runs second.
The CPU model and its ISA extensions head the output and the Markdown table.

The onnxruntime timing includes Python's call overhead (a few microseconds per run),
which only matters for the MLP. Both sides read the same batch-1 input: the first row of
the fixture's in.npz, saved as WORKDIR/inputs/NAME.npz.

Usage:
  bench/bench_fp32.py WORKDIR [--cli build/tools/edgepress] [--models mlp,bert]
                      [--threads 1,2] [--warmup 10] [--iters 50] [--rounds 1]
                      [--json FILE] [--markdown [FILE]]
--markdown prints the README table (CPU, ISA, settings, then one row per model and thread
count); --markdown FILE writes it to FILE instead.
Models are exported into WORKDIR/models (reused while make_models.py is unchanged).
Run it with the project venv's Python (it needs numpy and onnxruntime).
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAKE_MODELS = os.path.join(ROOT, "tests", "fixtures", "make_models.py")
DEFAULT_MODELS = ["mlp", "resnet18", "mobilenet_v2", "mobilenet_v3_small", "detector", "bert",
                  "gpt"]


def Fnv1a(data):
    """Same stamp as tests/runtime/ort_compare_test.cc, so its fixture folder can be reused."""
    h = 1469598103934665603
    for c in data:
        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return str(h)


def EnsureModels(models_dir, names):
    with open(MAKE_MODELS, "rb") as f:
        stamp = Fnv1a(f.read())
    stale = []
    for n in names:
        folder = os.path.join(models_dir, n)
        try:
            with open(os.path.join(folder, "script.hash")) as f:
                ok = f.read() == stamp
        except OSError:
            ok = False
        if not (ok and os.path.exists(os.path.join(folder, "model.onnx"))):
            stale.append(n)
    if stale:
        print(f"exporting {', '.join(stale)} into {models_dir} ...", file=sys.stderr)
        subprocess.run([sys.executable, MAKE_MODELS, models_dir, "--only", ",".join(stale)],
                       check=True, stdout=sys.stderr)
        for n in stale:
            with open(os.path.join(models_dir, n, "script.hash"), "w") as f:
                f.write(stamp)


def BatchOneInput(models_dir, inputs_dir, name):
    """Saves row 0 of every fixture input (batch axis 0) as the benchmark's input."""
    os.makedirs(inputs_dir, exist_ok=True)
    with np.load(os.path.join(models_dir, name, "in.npz")) as z:
        arrays = {k: np.ascontiguousarray(z[k][:1]) for k in z.files}
    path = os.path.join(inputs_dir, name + ".npz")
    np.savez(path, **arrays)
    return path, arrays


def CpuModel():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def CpuFlags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [x for x in ("avx2", "fma", "avx_vnni", "avx512f", "avx512bw",
                                        "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16",
                                        "amx_tile", "amx_int8", "amx_bf16", "asimd", "asimddp")
                            if x in flags]
    except OSError:
        pass
    return []


def MachineLine(machine):
    """One line naming the CPU, its ISA extensions, the load and the versions compared."""
    return (f"cpu: {machine['cpu_model']} ({machine['logical_cpus']} logical CPUs; ISA: "
            f"{' '.join(machine['cpu_flags']) or 'baseline'}); load average "
            f"{machine['loadavg_at_start'][0]:.2f} at start; onnxruntime "
            f"{machine['onnxruntime']}; {machine['edgepress']}")


def MarkdownTable(header, rows, text_columns=1):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < text_columns else "---:" for i in range(len(header)))
             + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def EmitMarkdown(target, lines):
    """Prints the lines ("-") or writes them to a file (atomically)."""
    text = "\n".join(lines) + "\n"
    if target == "-":
        print(text, end="")
        return
    with open(target + ".tmp", "w") as f:
        f.write(text)
    os.replace(target + ".tmp", target)
    print(f"# wrote {target}", file=sys.stderr)


def FindP50(obj):
    """p50 latency in ms from `edgepress bench --json`, wherever the CLI nests it."""
    if isinstance(obj, dict):
        for key in ("p50_ms", "p50", "median_ms"):
            if key in obj and isinstance(obj[key], (int, float)):
                scale = 1e-3 if key == "p50" and "latency_us" in obj else 1.0
                return float(obj[key]) * scale
        for key in ("latency_ms", "latency", "stats"):
            if key in obj:
                found = FindP50(obj[key])
                if found is not None:
                    return found
        for v in obj.values():
            found = FindP50(v)
            if found is not None:
                return found
    return None


def BenchEdgepress(cli, model, input_path, threads, warmup, iters):
    cmd = [cli, "bench", model, "--input", input_path, "--threads", str(threads),
           "--warmup", str(warmup), "--iters", str(iters), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        return None, None, lines[-1] if lines else f"exit {proc.returncode}"
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return None, None, "edgepress bench --json printed no JSON: " + proc.stdout[-200:]
    p50 = FindP50(report)
    if p50 is None:
        return None, report, "no p50 in edgepress bench --json output"
    return p50, report, None


def BenchOrt(model, inputs, threads, warmup, iters, spin):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads  # includes the calling thread
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # errors only: not a warning per unused Clip bound
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    t0 = time.perf_counter()
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - t0) * 1e3
    names = [o.name for o in sess.get_outputs()]
    t0 = time.perf_counter()
    sess.run(names, inputs)
    first_ms = (time.perf_counter() - t0) * 1e3
    for _ in range(max(warmup - 1, 0)):
        sess.run(names, inputs)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        sess.run(names, inputs)
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {
        "load_ms": load_ms,
        "first_run_ms": first_ms,
        "p50_ms": statistics.median(times),
        "p90_ms": times[min(len(times) - 1, int(0.9 * len(times)))],
        "mean_ms": statistics.fmean(times),
        "min_ms": times[0],
        "iters": iters,
    }


def Fmt(x, digits=3):
    return "fail" if x is None else f"{x:.{digits}f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("workdir", help="folder for exported models, inputs and results")
    p.add_argument("--cli", default=os.path.join(ROOT, "build", "tools", "edgepress"),
                   help="edgepress binary (default: build/tools/edgepress)")
    p.add_argument("--models-dir", help="reuse this fixture folder (default WORKDIR/models)")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS))
    p.add_argument("--threads", default="1,2")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3,
                   help="interleave edgepress/onnxruntime this many times, keep the best p50")
    p.add_argument("--ort-no-spin", action="store_true",
                   help="disable onnxruntime's spin-waiting worker threads")
    p.add_argument("--json", help="results file (default WORKDIR/bench_fp32.json)")
    p.add_argument("--markdown", nargs="?", const="-", metavar="FILE",
                   help="print the table as Markdown, or write it to FILE")
    args = p.parse_args()

    names = [n for n in args.models.split(",") if n]
    threads = [int(t) for t in args.threads.split(",") if t]
    if not os.access(args.cli, os.X_OK):
        p.error(f"no edgepress binary at {args.cli} (build it, or pass --cli)")
    os.makedirs(args.workdir, exist_ok=True)
    models_dir = args.models_dir or os.path.join(args.workdir, "models")
    EnsureModels(models_dir, names)

    import onnxruntime as ort

    version = subprocess.run([args.cli, "--version"], capture_output=True, text=True)
    machine = {
        "cpu_model": CpuModel(),
        "cpu_flags": CpuFlags(),
        "logical_cpus": os.cpu_count(),
        "loadavg_at_start": list(os.getloadavg()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "edgepress": version.stdout.strip() or version.stderr.strip(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    print("# " + MachineLine(machine))

    rows = []
    for name in names:
        model = os.path.join(models_dir, name, "model.onnx")
        input_path, inputs = BatchOneInput(models_dir, os.path.join(args.workdir, "inputs"), name)
        for n in threads:
            ep_p50s, ep_mins, ort_runs, ep_error, ep_report = [], [], [], None, None
            for k in range(args.rounds):
                def ep_round():
                    nonlocal ep_error, ep_report
                    p50, report, err = BenchEdgepress(args.cli, model, input_path, n,
                                                      args.warmup, args.iters)
                    if err:
                        ep_error = err
                        return
                    ep_p50s.append(p50)
                    if isinstance(report.get("min_ms"), (int, float)):
                        ep_mins.append(float(report["min_ms"]))
                    ep_report = report

                def ort_round():
                    ort_runs.append(BenchOrt(model, inputs, n, args.warmup, args.iters,
                                             not args.ort_no_spin))

                # Alternate which goes first, so neither always inherits the other's caches.
                for run in (ep_round, ort_round) if k % 2 == 0 else (ort_round, ep_round):
                    run()
            ep = min(ep_p50s) if ep_p50s and not ep_error else None
            ep_min = min(ep_mins) if ep_mins and not ep_error else None
            ort_best = min(ort_runs, key=lambda r: r["p50_ms"])
            ort_min = min(r["min_ms"] for r in ort_runs)
            row = {
                "model": name,
                "batch": 1,
                "threads": n,
                "edgepress_p50_ms": ep,
                "onnxruntime_p50_ms": ort_best["p50_ms"],
                "ratio": ep / ort_best["p50_ms"] if ep is not None else None,
                "edgepress_min_ms": ep_min,
                "onnxruntime_min_ms": ort_min,
                "ratio_min": ep_min / ort_min if ep_min is not None else None,
                "edgepress_error": ep_error,
                "edgepress_report": ep_report,
                "onnxruntime": ort_best,
            }
            rows.append(row)
            print(f"{name} threads={n}: edgepress {Fmt(ep)} ms, onnxruntime "
                  f"{ort_best['p50_ms']:.3f} ms" + (f" ({ep_error})" if ep_error else ""),
                  file=sys.stderr)

    # The min-latency ratio is printed next to the p50 one because on a loaded machine the
    # fastest run is the estimate least disturbed by other processes.
    header = ["model", "threads", "edgepress p50 ms", "onnxruntime p50 ms",
              "edgepress/onnxruntime", "min-latency ratio"]
    table = [[r["model"], str(r["threads"]), Fmt(r["edgepress_p50_ms"]),
              Fmt(r["onnxruntime_p50_ms"]), Fmt(r["ratio"], 2), Fmt(r["ratio_min"], 2)]
             for r in rows]
    if args.markdown:
        machine["loadavg_at_end"] = list(os.getloadavg())
        EmitMarkdown(args.markdown, [
            f"fp32, batch 1, {args.rounds} interleaved round(s) of {args.warmup} warm-up + "
            f"{args.iters} timed runs, best p50 kept; ratio = edgepress / onnxruntime "
            "(below 1: edgepress is faster).", "",
            MachineLine(machine) + f"; load average {machine['loadavg_at_end'][0]:.2f} at "
            "end.", ""] + MarkdownTable(header, table, text_columns=2))
    if args.markdown != "-":
        widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        for t in table:
            print("  ".join(c.rjust(w) if i >= 1 else c.ljust(w)
                            for i, (c, w) in enumerate(zip(t, widths))))
    for r in rows:
        if r["edgepress_error"]:
            print(f"{r['model']} threads={r['threads']}: edgepress failed: "
                  f"{r['edgepress_error']}")

    result = {
        "command": " ".join([os.path.relpath(sys.argv[0], os.getcwd())] + sys.argv[1:]),
        "machine": machine,
        "settings": {"batch": 1, "warmup": args.warmup, "iters": args.iters,
                     "rounds": args.rounds, "ort_spinning": not args.ort_no_spin},
        "results": rows,
    }
    out = args.json or os.path.join(args.workdir, "bench_fp32.json")
    with open(out + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(out + ".tmp", out)
    print(f"# wrote {out}", file=sys.stderr)
    return 1 if any(r["edgepress_error"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

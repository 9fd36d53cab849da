#!/usr/bin/env python3
"""edgepress next to onnxruntime and OpenVINO on the same models, batch 1 (issue 13's second peer).

fp32: for each fixture model (tests/fixtures/make_models.py, exported by bench_fp32.py into
WORKDIR/models or read from --models-dir), the three runtimes run the same batch-1 input at
each thread count, interleaved for --rounds rounds, best p50 of each kept:
  * edgepress `bench MODEL --input IN --threads N --json` (bench_fp32.BenchEdgepress),
  * onnxruntime CPU EP, ORT_ENABLE_ALL, intra_op_num_threads=N (bench_fp32.BenchOrt),
  * OpenVINO CPU plugin on the ONNX file with INFERENCE_PRECISION_HINT=f32 (its default on
    AMX CPUs is bf16, which would not be the same computation), INFERENCE_NUM_THREADS=N,
    PERFORMANCE_HINT=LATENCY, one infer request timed around infer().
int8 (--int8-dir DIR, the WORKDIR/quant of bench_quant.py): edgepress runs its own
ep_int8.onnx, onnxruntime and OpenVINO both run onnxruntime's quantize_static QDQ model
ort_int8.onnx (OpenVINO executes QDQ models in int8), same input bench_quant used.

Usage:
  bench/bench_openvino.py WORKDIR [--cli build/tools/edgepress] [--models-dir build/fixtures]
      [--models resnet18,mobilenet_v2] [--threads 1,2] [--rounds 3] [--int8-dir DIR]
Needs the project venv plus the `openvino` package (`.venv/bin/pip install openvino`); it is
not part of the test suite.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_fp32 as bf  # noqa: E402

import numpy as np  # noqa: E402


def BenchOpenvino(model, inputs, threads, warmup, iters):
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads,
              "PERFORMANCE_HINT": "LATENCY"}
    compiled = core.compile_model(core.read_model(model), "CPU", config)
    request = compiled.create_infer_request()
    feed = {}
    for port in compiled.inputs:
        name = port.get_any_name()
        if name not in inputs:
            raise SystemExit(f"bench_openvino: {model}: input '{name}' not in the feed {list(inputs)}")
        feed[name] = inputs[name]
    for _ in range(max(warmup, 1)):
        request.infer(feed)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        request.infer(feed)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def Row(name, threads, ep, ort, ovino):
    r1 = ep / ort if ep and ort else None
    r2 = ep / ovino if ep and ovino else None
    return [name, str(threads), bf.Fmt(ep), bf.Fmt(ort), bf.Fmt(ovino), bf.Fmt(r1, 2), bf.Fmt(r2, 2)]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("workdir")
    p.add_argument("--cli", default=os.path.join(bf.ROOT, "build", "tools", "edgepress"))
    p.add_argument("--models-dir", default=os.path.join(bf.ROOT, "build", "fixtures"))
    p.add_argument("--models", default="resnet18,mobilenet_v2,mobilenet_v3_small,detector,bert,gpt")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--int8-dir", help="bench_quant.py's WORKDIR/quant: also compare int8")
    a = p.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    threads = [int(t) for t in a.threads.split(",")]
    import onnxruntime
    import openvino
    print(f"# cpu: {bf.CpuModel()} ({os.cpu_count()} logical CPUs; ISA: {' '.join(bf.CpuFlags())}); "
          f"onnxruntime {onnxruntime.__version__}; OpenVINO {openvino.__version__}; "
          f"load average {os.getloadavg()[0]:.2f} at start", flush=True)
    rows = []
    for name in a.models.split(","):
        variants = [("fp32", os.path.join(a.models_dir, name, "model.onnx"),
                     os.path.join(a.models_dir, name, "model.onnx"), None)]
        if a.int8_dir and os.path.isdir(os.path.join(a.int8_dir, name)):
            q = os.path.join(a.int8_dir, name)
            variants.append(("int8", os.path.join(q, "ep_int8.onnx"), os.path.join(q, "ort_int8.onnx"),
                             os.path.join(q, "bench_in.npz")))
        for kind, ep_model, peer_model, input_path in variants:
            if input_path is None:
                input_path, inputs = bf.BatchOneInput(a.models_dir, os.path.join(a.workdir, "inputs"), name)
            else:
                with np.load(input_path) as z:
                    inputs = {k: z[k] for k in z.files}
            for t in threads:
                best = {"ep": None, "ort": None, "ov": None}
                for r in range(a.rounds):
                    order = ["ep", "ort", "ov"] if r % 2 == 0 else ["ov", "ort", "ep"]
                    for who in order:
                        if who == "ep":
                            v, _, err = bf.BenchEdgepress(a.cli, ep_model, input_path, t, a.warmup, a.iters)
                            if err:
                                print(f"{name} {kind}: edgepress failed: {err}", flush=True)
                        elif who == "ort":
                            v = bf.BenchOrt(peer_model, inputs, t, a.warmup, a.iters, True)["p50_ms"]
                        else:
                            v = BenchOpenvino(peer_model, inputs, t, a.warmup, a.iters)
                        if v is not None and (best[who] is None or v < best[who]):
                            best[who] = v
                label = f"{name} {kind}"
                rows.append(Row(label, t, best["ep"], best["ort"], best["ov"]))
                print(" ".join(rows[-1]), flush=True)
    print(f"# load average at end {os.getloadavg()[0]:.2f}")
    print()
    print("\n".join(bf.MarkdownTable(["model", "threads", "edgepress p50 ms", "onnxruntime p50 ms",
                                      "OpenVINO p50 ms", "ep / ORT", "ep / OpenVINO"], rows,
                                     text_columns=2)))


if __name__ == "__main__":
    main()

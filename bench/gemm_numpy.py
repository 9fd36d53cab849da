#!/usr/bin/env python3
"""numpy's sgemm at the shapes of bench/gemm_bench.cc, for a side-by-side number.

numpy uses whatever libblas.so.3 the system selects: on a stock Debian 12 image that is the
reference BLAS (libblas3, a few GFLOP/s); with libopenblas0 installed it is OpenBLAS.
`python3 -c "import numpy; numpy.show_config()"` and /etc/alternatives/libblas.so.3* say which.

Prints wall and process-CPU time per call and GFLOP/s (CPU time is the less noisy figure on
a shared machine). Pin the BLAS thread count with OPENBLAS_NUM_THREADS=1 (or 2) to match
gemm_bench's thread argument:

  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/gemm_numpy.py
"""

import time

import numpy as np

SHAPES = [
    ("square 256", 256, 256, 256),
    ("square 512", 512, 512, 512),
    ("resnet conv1 7x7 s2 (64x12544x147)", 64, 12544, 147),
    ("resnet layer1 3x3 (64x3136x576)", 64, 3136, 576),
    ("resnet layer2 3x3 (128x784x1152)", 128, 784, 1152),
    ("resnet layer3 3x3 (256x196x2304)", 256, 196, 2304),
    ("resnet layer4 3x3 (512x49x4608)", 512, 49, 4608),
    ("bert ffn (128x1536x384)", 128, 1536, 384),
    ("mlp gemv (1x1024x1024)", 1, 1024, 1024),
]


def main():
    rng = np.random.default_rng(1)
    print("numpy", np.__version__)
    for name, m, n, k in SHAPES:
        a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
        b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
        c = np.empty((m, n), np.float32)
        np.matmul(a, b, out=c)
        best, best_cpu = 1e9, 1e9
        for _ in range(5):
            iters, t0, c0 = 0, time.perf_counter(), time.process_time()
            while True:
                np.matmul(a, b, out=c)
                iters += 1
                el = time.perf_counter() - t0
                if el >= 0.1:
                    break
            best = min(best, el / iters)
            best_cpu = min(best_cpu, (time.process_time() - c0) / iters)
        flops = 2.0 * m * n * k
        print(f"{name:<40} wall {best * 1e3:9.3f} ms {flops / best / 1e9:6.1f} GFLOP/s   "
              f"cpu {best_cpu * 1e3:9.3f} ms {flops / best_cpu / 1e9:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()

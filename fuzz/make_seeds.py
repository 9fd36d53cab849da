#!/usr/bin/python3
"""Writes the generated part of the fuzz seed corpora (see make_seeds.sh):
.npy/.npz in every dtype/order/version numpy writes, ONNX models with external data in the
onnx_external split format, ranges.json files and pipeline strings.
   make_seeds.py OUT_DIR  (Debian's python3 with numpy and onnx)"""
import io
import json
import os
import struct
import sys

import numpy as np


def write(d, name, data):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def npy_bytes(a, version=None):
    b = io.BytesIO()
    if version is None:
        np.save(b, a, allow_pickle=False)
    else:
        np.lib.format.write_array(b, a, version=version, allow_pickle=False)
    return b.getvalue()


def arrays():
    r = np.random.default_rng(0)
    yield "f32", r.standard_normal((2, 3)).astype(np.float32)
    yield "f16", r.standard_normal((4,)).astype(np.float16)
    yield "f64_be", r.standard_normal((3, 2)).astype(">f8")
    yield "i8", np.arange(-4, 4, dtype=np.int8).reshape(2, 4)
    yield "u16", np.arange(6, dtype=np.uint16)
    yield "i64_fortran", np.asfortranarray(np.arange(12, dtype=np.int64).reshape(3, 4))
    yield "bool", np.array([True, False, True])
    yield "c64", np.array([1 + 2j, 3 - 4j], dtype=np.complex64)
    yield "scalar", np.array(3.5, dtype=np.float32)
    yield "empty", np.zeros((0, 3), dtype=np.float32)
    yield "u32_3d", np.arange(24, dtype=np.uint32).reshape(2, 3, 4)


def npy_npz(out):
    for name, a in arrays():
        write(f"{out}/npy", f"{name}.npy", npy_bytes(a))
    a = np.arange(6, dtype=np.float32)
    write(f"{out}/npy", "v2.npy", npy_bytes(a, (2, 0)))
    write(f"{out}/npy", "v3.npy", npy_bytes(a, (3, 0)))
    all_arrays = dict(arrays())
    for compressed in (False, True):
        suffix = "deflated" if compressed else "stored"
        save = np.savez_compressed if compressed else np.savez
        b = io.BytesIO()
        save(b, **all_arrays)
        write(f"{out}/npz", f"all_{suffix}.npz", b.getvalue())
        b = io.BytesIO()
        save(b, x=np.ones((1, 4), np.float32), label=np.array([3], np.int64))
        write(f"{out}/npz", f"feed_{suffix}.npz", b.getvalue())
    b = io.BytesIO()
    np.savez(b)
    write(f"{out}/npz", "empty.npz", b.getvalue())


def onnx_external(out):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def split(model, weights):
        m = model.SerializeToString()
        return struct.pack("<I", len(m)) + m + weights

    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.arange(4, dtype=np.float32)
    weights = w.tobytes() + b.tobytes()
    inits = []
    for name, arr, off in (("W", w, 0), ("B", b, w.nbytes)):
        t = numpy_helper.from_array(arr, name)
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", "weights.bin"), ("offset", str(off)), ("length", str(arr.nbytes))):
            e = t.external_data.add()
            e.key, e.value = k, v
        inits.append(t)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y0"]), helper.make_node("Add", ["Y0", "B"], ["Y"])],
        "ext", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, 4])], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    write(f"{out}/onnx_external", "matmul_add.bin", split(model, weights))
    # No offset/length keys: the whole file is the tensor.
    t = model.graph.initializer[1]
    del t.external_data[1:]
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(w, "W"))
    write(f"{out}/onnx_external", "whole_file.bin", split(model, b.tobytes()))


def ranges(out):
    base = {"version": 1, "method": "minmax", "data_sha256": "0" * 64, "samples": 4,
            "ranges": {"x": {"min": -1.5, "max": 2.0, "axis": -1, "count": 16, "nonfinite": 0},
                       "conv.w": {"min": -0.5, "max": 0.5, "axis": 0, "channel_min": [-0.5, -0.25],
                                  "channel_max": [0.25, 0.5], "count": 8, "nonfinite": 0}}}
    write(f"{out}/ranges", "minmax.json", json.dumps(base, indent=1))
    for m in ("entropy", "percentile", "mse"):
        base["method"] = m
        write(f"{out}/ranges", f"{m}.json", json.dumps(base))
    write(f"{out}/ranges", "empty.json", json.dumps({**base, "ranges": {}}))


def pipelines(out):
    texts = [
        "fold-constants",
        "fold-constants,remove-identity,fold-batchnorm,fuse-matmul-add,fuse-gelu,fuse-layernorm,"
        "fuse-activation,fuse-qdq,eliminate-dead-nodes",
        "quantize-static{method=entropy,per-channel=true,activation-type=uint8}",
        "quantize-weights{bits=4,group-size=32}",
        "quantize-dynamic,cast-weights{dtype=float16}",
        "fold-constants{max-bytes=1024},eliminate-dead-nodes",
        " fold-constants , fold-batchnorm ",
    ]
    for i, t in enumerate(texts):
        write(f"{out}/pipeline", f"p{i}.txt", t)


if __name__ == "__main__":
    out = sys.argv[1]
    npy_npz(out)
    onnx_external(out)
    ranges(out)
    pipelines(out)

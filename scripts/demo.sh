#!/usr/bin/env bash
# The main job on the bundled example (examples/digits: a CNN trained on the real sklearn
# digits, with its calibration and evaluation sets): inspect the model, then compress it
# with the shipped x86-avx2-laptop recipe (static int8 with accuracy-aware tuning) and
# print where the report is. compress exits 3 when a budget of the recipe is missed.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
ep="$build/tools/edgepress"
ex=examples/digits
out=out/demo

echo "== edgepress inspect $ex/digits_cnn.onnx"
"$ep" inspect "$ex/digits_cnn.onnx"
echo
echo "== edgepress compress --recipe x86-avx2-laptop"
"$ep" compress "$ex/digits_cnn.onnx" --recipe x86-avx2-laptop \
  --calib "$ex/calib.npz" --eval "$ex/eval.npz" -o "$out"
echo
echo "== the compressed artifact on the 360 held-out digits (native runtime)"
"$ep" run "$out/model.epk" --input "$ex/eval.npz" --output "$out/logits.npz"
echo
echo "demo: artifact $out/model.epk; report $out/report.html (also report.md, report.json)"

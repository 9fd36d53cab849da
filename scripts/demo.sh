#!/usr/bin/env bash
# The main job on the bundled example (examples/digits: a CNN trained on real digits):
# inspect the model, convert it to the .epk edge artifact, run the artifact on the
# held-out images and check its outputs against the reference, then benchmark it.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
ep="$build/tools/edgepress"
ex=examples/digits
out=out/demo
mkdir -p "$out"

echo "== edgepress inspect $ex/digits_cnn.onnx"
"$ep" inspect "$ex/digits_cnn.onnx"
echo
echo "== edgepress convert -> $out/digits_cnn.epk"
"$ep" convert "$ex/digits_cnn.onnx" "$out/digits_cnn.epk"
echo
echo "== edgepress run (360 held-out images) vs the reference logits"
"$ep" run "$out/digits_cnn.epk" --input "$ex/eval.npz" --output "$out/logits.npz" \
  --compare "$ex/expected.npz" --rtol 1e-4 --atol 1e-4
echo
echo "== edgepress bench (batch 1, 1 thread)"
"$ep" bench "$out/digits_cnn.epk" --dim batch=1 --threads 1 --seconds 2
echo
echo "demo: artifact $out/digits_cnn.epk, outputs $out/logits.npz"

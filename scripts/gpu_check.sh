#!/usr/bin/env bash
# The torch backend on a CUDA GPU, against a pip torch 2.x (issue 9, item 5).
#
# Builds only what the torch backend needs (ir, runtime, passes, runtime/torch,
# formats/torchscript and tests/runtime/torch/torch_device_test, in the
# -DEDGEPRESS_WITH_ONNX=OFF configuration: no protobuf/onnx/yaml-cpp, which a pip torch
# built with the pre-C++11 string ABI could not link against), then runs that suite with
# EDGEPRESS_TEST_CUDA=1, so every agreement check and the training step run on device cuda
# as well as cpu. Prints a summary and exits non-zero when anything failed.
#
# Needs: a python3 with torch 2.x (PYTHON=... to choose), cmake >= 3.25, a C++17 compiler,
# GoogleTest (installed, or its source in /usr/src/googletest), nlohmann-json headers,
# zlib. With a torch built with _GLIBCXX_USE_CXX11_ABI=0 (pip wheels before 2.7) the whole
# build uses that ABI and GoogleTest is compiled from source with it.
#
# Usage: scripts/gpu_check.sh [BUILD_DIR]     (default: build-gpu; about 3-5 minutes)
set -euo pipefail

cd "$(dirname "$0")/.."
mkdir -p "${1:-build-gpu}"
BUILD=$(cd "${1:-build-gpu}" && pwd)
PY=${PYTHON:-python3}
JOBS=$(nproc 2>/dev/null || echo 4)
START=$(date +%s)
say() { printf '[gpu_check %3ds] %s\n' $(( $(date +%s) - START )) "$*"; }
die() { say "FAILED: $*"; exit 1; }

# ---- torch -------------------------------------------------------------------------------
read -r TORCH_VERSION TORCH_CUDA CUDA_OK ABI PREFIX GPU < <("$PY" - <<'EOF' || echo "- - - - - -"
import torch
gpu = torch.cuda.get_device_name(0).replace(" ", "_") if torch.cuda.is_available() else "none"
print(torch.__version__, torch.version.cuda or "none", int(torch.cuda.is_available()),
      int(torch.compiled_with_cxx11_abi()), torch.utils.cmake_prefix_path, gpu)
EOF
)
[ "$TORCH_VERSION" != "-" ] || die "$PY cannot import torch (set PYTHON=/path/to/python3 with torch 2.x)"
say "torch $TORCH_VERSION (CUDA $TORCH_CUDA), cuda available: $CUDA_OK, GPU: $GPU"
say "torch.compiled_with_cxx11_abi(): $ABI"
say "cmake prefix: $PREFIX"
[ "$CUDA_OK" = 1 ] || say "WARNING: torch sees no CUDA device; the cuda half of the checks will fail"

command -v cmake >/dev/null || die "cmake is missing"
# A CUDA torch's CMake config (Caffe2Config) needs the CUDA toolkit (nvcc, headers), which
# the pip wheels do not carry.
CUDA_ARGS=()
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="/usr/local/cuda/bin:$PATH"
if command -v nvcc >/dev/null; then
  CUDA_ROOT=$(dirname "$(dirname "$(command -v nvcc)")")
  CUDA_ARGS=(-DCUDAToolkit_ROOT="$CUDA_ROOT")
  say "CUDA toolkit: $CUDA_ROOT ($(nvcc --version | tail -1))"
elif [ "$TORCH_CUDA" != none ]; then
  say "WARNING: no nvcc on PATH or in /usr/local/cuda: configuring against a CUDA torch will fail (install the CUDA toolkit or set PATH)"
fi
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
[ -f /usr/include/nlohmann/json.hpp ] || [ -n "${NLOHMANN_JSON_DIR:-}" ] ||
  say "WARNING: no /usr/include/nlohmann/json.hpp (apt-get install nlohmann-json3-dev)"

# ---- GoogleTest in torch's ABI -----------------------------------------------------------
PREFIXES="$PREFIX"
CXXFLAGS_ABI=""
if [ "$ABI" = 0 ]; then
  CXXFLAGS_ABI="-D_GLIBCXX_USE_CXX11_ABI=0"
  GTEST_SRC=${GTEST_SRC:-/usr/src/googletest}
  [ -f "$GTEST_SRC/CMakeLists.txt" ] ||
    die "torch uses the old C++ ABI, so GoogleTest must be built with it: need its source in $GTEST_SRC (apt-get install googletest) or GTEST_SRC=..."
  say "building GoogleTest with $CXXFLAGS_ABI"
  cmake -S "$GTEST_SRC" -B "$BUILD/gtest" ${GEN[@]+"${GEN[@]}"} -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_FLAGS="$CXXFLAGS_ABI" -DCMAKE_INSTALL_PREFIX="$BUILD/gtest-install" \
    -DBUILD_GMOCK=OFF >"$BUILD.gtest.log" 2>&1 || { tail -20 "$BUILD.gtest.log"; die "GoogleTest configure"; }
  cmake --build "$BUILD/gtest" -j "$JOBS" --target install >>"$BUILD.gtest.log" 2>&1 ||
    { tail -20 "$BUILD.gtest.log"; die "GoogleTest build"; }
  PREFIXES="$BUILD/gtest-install;$PREFIX"
fi

# ---- configure and build the torch-backend suite ---------------------------------------
say "configuring $BUILD (EDGEPRESS_WITH_ONNX=OFF, EDGEPRESS_WITH_TORCH=ON)"
cmake -S . -B "$BUILD" ${GEN[@]+"${GEN[@]}"} -DCMAKE_BUILD_TYPE=Release \
  -DEDGEPRESS_WITH_ONNX=OFF -DEDGEPRESS_WITH_TORCH=ON \
  -DCMAKE_PREFIX_PATH="$PREFIXES" -DCMAKE_CXX_FLAGS="$CXXFLAGS_ABI" \
  ${CUDA_ARGS[@]+"${CUDA_ARGS[@]}"} >"$BUILD.configure.log" 2>&1 ||
  { tail -30 "$BUILD.configure.log"; die "configure (log: $BUILD.configure.log)"; }
grep -m1 "edgepress: LibTorch" "$BUILD.configure.log" | sed 's/^-- /    /' || true
say "building test_runtime_torch_torch_device_test with $JOBS jobs"
timeout 420 cmake --build "$BUILD" -j "$JOBS" --target test_runtime_torch_torch_device_test \
  >"$BUILD.build.log" 2>&1 || { grep -m5 -A5 "error" "$BUILD.build.log" || tail -30 "$BUILD.build.log"; die "build (log: $BUILD.build.log)"; }

# ---- run on cpu and cuda -----------------------------------------------------------------
say "running the torch-backend device suite with EDGEPRESS_TEST_CUDA=1"
set +e
EDGEPRESS_TEST_CUDA=1 timeout 120 "$BUILD/tests/test_runtime_torch_torch_device_test" >"$BUILD.test.log" 2>&1
RC=$?
set -e
echo "---- summary (full output: $BUILD.test.log) ----"
grep -E "scaled max error|training step|^\[  (PASSED|FAILED) |FAILED TEST|Failure" "$BUILD.test.log" || true
echo "torch $TORCH_VERSION, CUDA $TORCH_CUDA, GPU $GPU, cxx11 abi $ABI, exit $RC, $(( $(date +%s) - START )) s"
exit $RC

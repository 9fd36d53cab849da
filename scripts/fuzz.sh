#!/usr/bin/env bash
# Builds (if needed) and runs the libFuzzer targets of fuzz/ (see fuzz/README.md).
#   scripts/fuzz.sh TARGET SECONDS   one target: npy npz onnx onnx_external epk_run ranges
#                                    pipeline recipe pt_archive
#   scripts/fuzz.sh all SECONDS      each target in turn, SECONDS each
#   scripts/fuzz.sh build            configure + build only
# One fuzzer process at a time (the machine is shared). The corpus grows in
# $FUZZ_BUILD/corpus/TARGET (seeded from $FUZZ_BUILD/seeds/TARGET, made by fuzz/make_seeds.sh);
# crashing inputs land in $FUZZ_BUILD/artifacts/TARGET/. Exit status: non-zero on a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FUZZ_BUILD:-build-fuzz}
jobs=${JOBS:-2}
targets=(npy npz onnx onnx_external epk_run ranges pipeline recipe pt_archive)

# Builds the named ninja targets (and the seed converter when the seeds are missing).
# FUZZ_NO_BUILD=1 skips this (a build of the same folder is already running).
build_fuzzers() {
  [ "${FUZZ_NO_BUILD:-0}" = 1 ] && return 0
  if [ ! -f "$build/build.ninja" ]; then
    CC=${FUZZ_CC:-clang} CXX=${FUZZ_CXX:-clang++} cmake -S . -B "$build" -G Ninja \
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1" -DCMAKE_C_FLAGS_RELEASE="-O1" \
      -DEDGEPRESS_FUZZ=ON -DEDGEPRESS_WITH_TORCH=OFF -DEDGEPRESS_BUILD_TESTS=OFF
  fi
  local want=("$@")
  [ -d "$build/seeds" ] || want+=(fuzz_make_epk_seed)
  cmake --build "$build" -j "$jobs" --target "${want[@]}"
  if [ ! -d "$build/seeds" ]; then
    fuzz/make_seeds.sh "$build" "$build/seeds"
  fi
}

dict_of() {
  case $1 in
    onnx | onnx_external) echo fuzz/dict/onnx.dict ;;
    epk_run) echo fuzz/dict/epk.dict ;;
    npy | npz) echo fuzz/dict/npy.dict ;;
    ranges) echo fuzz/dict/json.dict ;;
    pipeline) echo fuzz/dict/pipeline.dict ;;
    recipe) echo fuzz/dict/recipe.dict ;;
    pt_archive) echo fuzz/dict/pt.dict ;;
  esac
}

run_one() {
  local t=$1 secs=$2
  local corpus=$build/corpus/$t seeds=$build/seeds/$t
  mkdir -p "$corpus" "$seeds" "$build/artifacts/$t"
  # -rss_limit_mb / -malloc_limit_mb: a reader that asks for gigabytes because of a few
  # bytes is a finding. -timeout: a single input taking 10 s is one too (epk_run does not
  # run graphs with huge pooling windows: fuzz/README.md). FUZZ_TIMEOUT raises it for long
  # runs at nice 19 beside other work, where a starved process can stall 10 s on any input.
  local timeout=${FUZZ_TIMEOUT:-10}
  echo "== fuzz $t for ${secs}s"
  EDGEPRESS_RECIPES_DIR="$PWD/recipes" \
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    "$build/fuzz/fuzz_$t" -max_total_time="$secs" -timeout="$timeout" -rss_limit_mb=2560 \
      -seed="${FUZZ_SEED:-0}" \
      -dict="$(dict_of "$t")" -artifact_prefix="$build/artifacts/$t/" -print_final_stats=1 \
      "$corpus" "$seeds"
}

case ${1:-} in
  build) build_fuzzers fuzz_all ;;
  all)
    build_fuzzers fuzz_all
    status=0
    for t in "${targets[@]}"; do run_one "$t" "${2:?seconds}" || status=1; done
    exit $status
    ;;
  "" | -h | --help) sed -n 2,10p "$0"; exit 2 ;;
  *)
    [[ " ${targets[*]} " == *" $1 "* ]] || { echo "fuzz.sh: unknown target '$1' (${targets[*]})"; exit 2; }
    build_fuzzers "fuzz_$1"
    run_one "$1" "${2:?seconds}"
    ;;
esac

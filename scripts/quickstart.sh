#!/usr/bin/env bash
# The README's two commands. Works on a fresh Debian 12 machine as root (no make needed
# beforehand): installs what is missing, builds, then
#   scripts/quickstart.sh demo   runs the main job on the bundled example
#   scripts/quickstart.sh test   runs the whole test suite (Release, then ASan/UBSan)
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  demo) scripts/setup.sh --build; make demo ;;
  test) scripts/setup.sh; make test ;;
  *) echo "usage: scripts/quickstart.sh demo|test" >&2; exit 2 ;;
esac

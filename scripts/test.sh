#!/usr/bin/env bash
# The README's test command. On a fresh Debian machine: installs the build dependencies
# (apt-get; skip with PE_SKIP_INSTALL=1), builds protst-engine (CPU reference and, when nvcc is
# installed, the CUDA backend), and runs every test with CTest.
# Usage: scripts/test.sh [build-dir]      One group: cd build && ctest -L unit|gradcheck|cuda|parity|data|app
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
JOBS=$(nproc)
if [ "${PE_SKIP_INSTALL:-0}" != 1 ]; then bash scripts/install_deps.sh; fi
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j"$JOBS"
cd "$BUILD"
ctest --output-on-failure -j"$JOBS"

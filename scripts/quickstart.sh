#!/usr/bin/env bash
# The README's main job on a fresh Debian machine: install dependencies (skip with
# PE_SKIP_INSTALL=1), build the protst binary, build the Swiss-Prot/GO dataset offline from Debian
# packages (cached in datasets/go), train configs/quickstart.toml, and print held-out retrieval
# next to chance. Extra arguments go to `protst train` (e.g. --steps 2000, --device cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${PE_SKIP_INSTALL:-0}" != 1 ]; then bash scripts/install_deps.sh; fi
# Compile the CUDA backend only when a GPU is present: on a CPU-only machine it would only cost time.
CUDA=OFF
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then CUDA=AUTO; fi
cmake -S . -B build-quickstart -DCMAKE_BUILD_TYPE=Release -DPE_CUDA=$CUDA -DPE_BUILD_TESTS=OFF -DPE_BUILD_BENCH=OFF >/dev/null
cmake --build build-quickstart -j"$(nproc)" --target protst
exec ./build-quickstart/app/protst --config configs/quickstart.toml train "$@"

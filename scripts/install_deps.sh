#!/usr/bin/env bash
# Installs everything protst-engine needs to build and test on a Debian 12 machine.
# Run as root (or with sudo). Safe to run again.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake ccache pkg-config git ca-certificates \
  libeigen3-dev libdnnl-dev doctest-dev nlohmann-json3-dev libcli11-dev \
  zlib1g-dev libpng-dev libutf8proc-dev libomp-dev python3 \
  libopenmpi-dev openmpi-bin \
  clang libclang-rt-dev >/dev/null  # clang + libFuzzer runtime: the fuzz harnesses (scripts/fuzz.sh); Open MPI: dist/ and its mpirun tests
echo "install_deps: system packages ready"

#!/usr/bin/env bash
# Copies this machine's build dependencies (scripts/install_deps.sh) into .gpu-deps/ so that a GPU
# machine with no internet and only some of them installed can build the engine:
#   bash scripts/bundle_gpu_deps.sh          # here, after scripts/install_deps.sh
#   (carry .gpu-deps to the GPU machine; scripts/gpu_check.sh uses it automatically)
# Header-only libraries travel with their CMake package files; utf8proc, libpng and zlib travel as
# headers plus shared libraries (x86-64, glibc). .gpu-deps/ is git-ignored (about 10 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
dst=.gpu-deps
rm -rf "$dst"
mkdir -p "$dst/include" "$dst/lib" "$dst/share/cmake"
arch=/usr/lib/x86_64-linux-gnu
# Header-only: Eigen, doctest, nlohmann-json, CLI11 (headers and CMake package files).
cp -r /usr/include/eigen3 "$dst/include/"
mkdir -p "$dst/share/eigen3" && cp -r /usr/share/eigen3/cmake "$dst/share/eigen3/"
cp -r /usr/include/doctest "$dst/include/"
mkdir -p "$dst/lib/cmake" && cp -r /usr/lib/cmake/doctest "$dst/lib/cmake/"
cp -r /usr/include/nlohmann "$dst/include/" && cp -r /usr/share/cmake/nlohmann_json "$dst/share/cmake/"
cp -r /usr/include/CLI "$dst/include/" && cp -r /usr/share/cmake/CLI11 "$dst/share/cmake/" 2>/dev/null || true
# Compiled: utf8proc, libpng, zlib.
cp /usr/include/utf8proc.h /usr/include/zlib.h /usr/include/zconf.h "$dst/include/"
cp -r /usr/include/libpng16 "$dst/include/" && cp /usr/include/png.h /usr/include/pngconf.h /usr/include/pnglibconf.h "$dst/include/"
for lib in libutf8proc.so libpng16.so libz.so; do
  real=$(readlink -f "$arch/$lib")
  cp "$real" "$dst/lib/"
  soname=$(objdump -p "$real" | awk '/SONAME/ {print $2}')
  ln -sf "$(basename "$real")" "$dst/lib/$soname"
  ln -sf "$(basename "$real")" "$dst/lib/$lib"
done
ln -sf libpng16.so "$dst/lib/libpng.so"
du -sh "$dst"

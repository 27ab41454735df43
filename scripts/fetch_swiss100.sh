#!/usr/bin/env bash
# Re-creates data/samples/SWISS100.dat from the Debian package libswiss-perl (see
# data/samples/README.md) and checks it against the committed checksum. Needs only the Debian archive.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download libswiss-perl >/dev/null)
dpkg-deb -x "$tmp"/libswiss-perl_*.deb "$tmp/root"
src="$tmp/root/usr/share/doc/libswiss-perl/examples/SWISS100.dat"
if [ -f "$src.gz" ]; then gzip -dc "$src.gz" > "$tmp/SWISS100.dat"; src="$tmp/SWISS100.dat"; fi
cp "$src" "$repo/data/samples/SWISS100.dat"
echo "8401229729709a08c10fc0d7e342bd116a2f1681f1940fa04d83ba063de124f9  $repo/data/samples/SWISS100.dat" | sha256sum -c -

#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz, one per reader) with clang, ASan and UBSan in a build
# folder of their own, and runs each for a bounded time. Fails on any finding and prints the input
# that reproduces it. CTest runs this as the test fuzz/readers (label fuzz).
#
# Usage: scripts/fuzz.sh [seconds-per-target] [target...]
#   seconds   default 20 (or $PE_FUZZ_SECONDS)
#   targets   default all: fasta uniprot jsonl descriptions vocab tokenize safetensors config
# Environment:
#   PE_FUZZ_BUILD   build folder (default build-fuzz)
#   PE_FUZZ_JOBS    targets fuzzed at the same time, one core each (default: nproc)
# The inputs each run finds are kept in <build>/fuzz-corpus/<target>/, so later local runs start
# from them; the committed seeds are tests/fuzz/corpus/<target>/ (read only here). Findings go to
# <build>/fuzz-artifacts/<target>/. Reproduce one with: <build>/tests/fuzz/fuzz_<target> <file>.
# Exit codes: 0 no finding, 1 a finding or a build failure, 77 clang/libFuzzer not installed (skip).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECONDS_PER_TARGET=${1:-${PE_FUZZ_SECONDS:-20}}
shift $(( $# > 0 ? 1 : 0 ))
ALL_TARGETS=(fasta uniprot jsonl descriptions vocab tokenize safetensors config)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL_TARGETS[@]}")
BUILD=${PE_FUZZ_BUILD:-build-fuzz}
JOBS=${PE_FUZZ_JOBS:-$(nproc)}
case "$SECONDS_PER_TARGET" in '' | *[!0-9]*) echo "fuzz: seconds must be a whole number, got '$SECONDS_PER_TARGET'" >&2; exit 2 ;; esac
for t in "${TARGETS[@]}"; do
  [ -d "tests/fuzz/corpus/$t" ] || { echo "fuzz: unknown target '$t' (targets: ${ALL_TARGETS[*]})" >&2; exit 2; }
done

# Largest input per target (bytes): a few records of the format, so each run explores structure
# rather than volume.
max_len() {
  case "$1" in
    uniprot) echo 8192 ;;
    tokenize) echo 2048 ;;
    *) echo 4096 ;;
  esac
}
# The JSON-based formats get the JSON syntax dictionary in front of their own keywords.
dict_parts() {
  case "$1" in
    jsonl | descriptions | config | safetensors) echo "tests/fuzz/dict/json.dict tests/fuzz/dict/$1.dict" ;;
    *) echo "tests/fuzz/dict/$1.dict" ;;
  esac
}

# ---- toolchain: clang++ that can link a libFuzzer program (Debian: clang + libclang-rt-dev)
CXX=${PE_FUZZ_CXX:-clang++}
probe_dir=$(mktemp -d)
trap 'rm -rf "$probe_dir"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' > "$probe_dir/p.cpp"
if ! command -v "$CXX" >/dev/null 2>&1 ||
   ! "$CXX" -fsanitize=fuzzer,address,undefined "$probe_dir/p.cpp" -o "$probe_dir/p" >/dev/null 2>&1; then
  echo "fuzz: SKIPPED: no $CXX able to link -fsanitize=fuzzer,address,undefined" \
       "(Debian: apt-get install clang libclang-rt-dev, as scripts/install_deps.sh does)"
  exit 77
fi

# ---- build (only the harnesses and the reader sources they link; never the tensor engine or CUDA)
t0=$(date +%s)
if ! cmake -S . -B "$BUILD" -DCMAKE_CXX_COMPILER="$CXX" -DCMAKE_BUILD_TYPE=Fuzz -DPE_FUZZ=ON \
       -DPE_CUDA=OFF -DPE_SIMT=OFF -DPE_BUILD_TESTS=OFF -DPE_BUILD_BENCH=OFF -DPE_NATIVE=OFF >"$probe_dir/configure.log" 2>&1; then
  cat "$probe_dir/configure.log"
  echo "fuzz: FAILED: configure of $BUILD"
  exit 1
fi
build_targets=()
for t in "${TARGETS[@]}"; do build_targets+=("fuzz_$t"); done
if ! cmake --build "$BUILD" -j"$(nproc)" --target "${build_targets[@]}"; then
  echo "fuzz: FAILED: build of the harnesses in $BUILD"
  exit 1
fi
echo "fuzz: built ${#TARGETS[@]} harnesses in $(( $(date +%s) - t0 )) s; fuzzing each for ${SECONDS_PER_TARGET} s, $JOBS at a time"

# ---- run
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
RUNS="$BUILD/fuzz-runs"
mkdir -p "$RUNS"

run_one() {
  local t=$1
  local corpus="$BUILD/fuzz-corpus/$t" artifacts="$BUILD/fuzz-artifacts/$t" dict="$RUNS/$t.dict"
  rm -rf "$artifacts"  # only this run's findings are reported
  mkdir -p "$corpus" "$artifacts"
  # shellcheck disable=SC2046
  cat $(dict_parts "$t") >"$dict"
  # First corpus folder: where new inputs are written; the committed seeds are only read.
  "$BUILD/tests/fuzz/fuzz_$t" "$corpus" "$ROOT/tests/fuzz/corpus/$t" \
    -dict="$dict" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 -artifact_prefix="$artifacts/" \
    >"$RUNS/$t.log" 2>&1
  echo $? >"$RUNS/$t.rc"
}

running=0
for t in "${TARGETS[@]}"; do
  rm -f "$RUNS/$t.rc"
  if [ "$running" -ge "$JOBS" ]; then
    wait -n
    running=$((running - 1))
  fi
  run_one "$t" &
  running=$((running + 1))
done
wait

failed=0
printf 'fuzz: %-13s %10s %12s %8s  %s\n' target execs exec/s corpus result
for t in "${TARGETS[@]}"; do
  log="$RUNS/$t.log"
  rc=$(cat "$RUNS/$t.rc" 2>/dev/null || echo 1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  units=$(find "$BUILD/fuzz-corpus/$t" -type f | wc -l)
  if [ "$rc" = 0 ]; then
    printf 'fuzz: %-13s %10s %12s %8s  ok\n' "$t" "${execs:-?}" "${rate:-?}" "$units"
  else
    failed=1
    printf 'fuzz: %-13s %10s %12s %8s  FINDING (exit %s)\n' "$t" "${execs:-?}" "${rate:-?}" "$units" "$rc"
  fi
done
for t in "${TARGETS[@]}"; do
  rc=$(cat "$RUNS/$t.rc" 2>/dev/null || echo 1)
  [ "$rc" = 0 ] && continue
  echo
  echo "=============================== fuzz finding in target '$t' (full log: $RUNS/$t.log)"
  # From the first report line (sanitizer, escaped exception, invariant, timeout, memory limit) on.
  first=$(grep -n -m1 -E '^==[0-9]+==|runtime error:|terminate called|fuzz invariant failed|ERROR: libFuzzer' "$RUNS/$t.log" | cut -d: -f1)
  if [ -n "$first" ]; then sed -n "${first},$((first + 45))p" "$RUNS/$t.log"; else tail -n 45 "$RUNS/$t.log"; fi
  for a in "$BUILD/fuzz-artifacts/$t"/*; do
    [ -f "$a" ] || continue
    echo "reproducer: $a"
    echo "  rerun:    $BUILD/tests/fuzz/fuzz_$t $a"
    echo "  bytes:    $(head -c 200 "$a" | od -An -c | tr -s ' ' | head -3 | tr '\n' ' ')"
  done
  echo "After fixing the reader, add the reproducer to tests/fuzz/corpus/$t/ and a regression test."
done
if [ "$failed" != 0 ]; then
  echo "fuzz: FAILED"
  exit 1
fi
echo "fuzz: ${#TARGETS[@]} targets, no finding ($(( $(date +%s) - t0 )) s in all)"

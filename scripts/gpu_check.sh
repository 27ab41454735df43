#!/usr/bin/env bash
# One prepared GPU check, for a machine with an H100/H200, CUDA 13, cmake, Eigen and doctest (and
# the other packages of scripts/install_deps.sh) and no internet. Device time is scarce: it stays
# under 6 minutes, and every step has its own time limit.
#
#   scripts/gpu_check.sh LOG_DIR
#
# 1. configures and builds Release for sm_90 with -j16 (our targets first, then everything else);
# 2. runs `ctest -L cuda`, then every test binary's CUDA suite directly (full doctest output), and
#    reruns a failing binary under PE_CUDA_SYNC=1 so each fault is reported by the op that made it;
# 3. runs the benchmarks (bench/bench_*) and their PyTorch twins (bench/torch_baselines.py, and
#    bench/torch_fused_baselines.py for the fused attention / InfoNCE / masked CE);
# 4. prints a short summary table last. Logs: LOG_DIR/<step>.log; benchmark rows: LOG_DIR/bench_table.md.
# Dependencies the GPU machine lacks: run scripts/bundle_gpu_deps.sh on the development machine and
# carry .gpu-deps along; it is picked up automatically.
# Environment: PE_GPU_BUILD_DIR (default build-gpu-check), PE_DEPS_PREFIX (extra CMAKE_PREFIX_PATH),
# PE_GPU_CHECK_SKIP_TORCH=1 to skip the PyTorch twins.
set -uo pipefail

out=${1:?usage: scripts/gpu_check.sh LOG_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${PE_GPU_BUILD_DIR:-$root/build-gpu-check}
t_start=$(date +%s)
budget=345  # seconds; steps that would start later are skipped
summary=()

elapsed() { echo $(($(date +%s) - t_start)); }

# step NAME LIMIT_SECONDS COMMAND...: runs with a time limit, logs to $out/NAME.log, records a row.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((budget - $(elapsed)))
  if ((left < 10)); then
    summary+=("| $name | skipped (time budget) | 0 s | |")
    return 99
  fi
  ((limit > left)) && limit=$left
  local t0 rc
  t0=$(date +%s)
  timeout --kill-after=5 "$limit" "$@" >"$out/$name.log" 2>&1
  rc=$?
  local dt=$(($(date +%s) - t0)) status=ok
  ((rc == 124 || rc == 137)) && status="TIMEOUT after ${limit} s"
  ((rc != 0 && rc != 124 && rc != 137)) && status="FAILED (rc $rc)"
  summary+=("| $name | $status | $dt s | $(detail "$name") |")
  return $rc
}

# A short detail for the summary row, read from the step's log.
detail() {
  local log="$out/$1.log"
  case $1 in
    ctest_cuda)
      echo "$(grep -E "tests passed|tests failed|No tests were found" "$log" | tail -1);" \
        "$(grep -c "(Skipped)" "$log") skipped"
      ;;
    test_*)
      echo "$(grep -E "^\[doctest\] test cases" "$log" | tail -1 | sed 's/\[doctest\] //');" \
        "$(grep -c "cuda-skipped" "$log") cases without a device"
      ;;
    bench_* | torch_baselines | torch_fused_baselines) echo "$(grep -c '^| [a-z]' "$log") rows" ;;
    build*) grep -m1 -E "error|Error" "$log" | cut -c1-120 ;;
    *) ;;
  esac
}

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null) $(git -C "$root" status --porcelain 2>/dev/null | grep -q . && echo '(with uncommitted changes)')"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1
  nvcc --version 2>&1 | tail -2
  cmake --version 2>&1 | head -1
} >"$out/machine.log"

# ------------------------------------------------------------------ build
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
prefix=()
# Dependencies bundled here by scripts/bundle_gpu_deps.sh (carried as .gpu-deps) are used when present.
[ -z "${PE_DEPS_PREFIX:-}" ] && [ -d "$root/.gpu-deps" ] && PE_DEPS_PREFIX="$root/.gpu-deps"
[ -n "${PE_DEPS_PREFIX:-}" ] && prefix=(-DCMAKE_PREFIX_PATH="$PE_DEPS_PREFIX")
step configure 90 cmake -S "$root" -B "$build" "${generator[@]}" "${prefix[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DPE_CUDA=ON -DPE_CUDA_ARCHITECTURES=90 -DPE_BUILD_TESTS=ON -DPE_BUILD_BENCH=ON -DPE_SIMT=OFF
benches=(bench_gemm bench_rowops bench_adam bench_elementwise bench_attention bench_info_nce bench_masked_ce)
step build 200 cmake --build "$build" -j16 --target protst_engine test_engine "${benches[@]}"
# Everything else (other folders' tests may hold CUDA cases too); a failure here does not stop ours.
step build_all 120 cmake --build "$build" -j16

# ------------------------------------------------------------------ tests
step ctest_cuda 120 ctest --test-dir "$build" -L cuda --output-on-failure --no-tests=error -j4
for bin in "$build"/tests/test_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  if ! step "${name}_cuda" 90 "$bin" --test-suite=cuda --no-intro; then
    PE_CUDA_SYNC=1 step "${name}_cuda_sync" 90 "$bin" --test-suite=cuda --no-intro
  fi
done

# ------------------------------------------------------------------ benchmarks
for b in "${benches[@]}"; do
  [ -x "$build/bench/$b" ] && step "$b" 60 "$build/bench/$b"
done
if [ "${PE_GPU_CHECK_SKIP_TORCH:-0}" != 1 ] && python3 -c "import torch" 2>/dev/null; then
  PYTHONUNBUFFERED=1 step torch_baselines 110 python3 "$root/bench/torch_baselines.py"
  PYTHONUNBUFFERED=1 step torch_fused_baselines 120 python3 "$root/bench/torch_fused_baselines.py"
fi
{
  head -1 "$out/bench_gemm.log" 2>/dev/null
  echo "| bench | op | shape | dtype | impl | median us | p10-p90 us | achieved | of limit |"
  echo "|---|---|---|---|---|---|---|---|---|"
  cat "$out"/bench_*.log "$out"/torch_baselines.log "$out"/torch_fused_baselines.log 2>/dev/null | grep '^| [a-z]' | grep -v '^| bench |' | sort -s -t'|' -k2,4
} >"$out/bench_table.md"

# ------------------------------------------------------------------ summary (last)
echo
echo "gpu_check: $(head -3 "$out/machine.log" | tr '\n' ' ')"
echo "| step | status | time | detail |"
echo "|---|---|---|---|"
printf '%s\n' "${summary[@]}"
echo "total $(elapsed) s; logs in $out; benchmark rows (engine beside raw cuBLASLt and torch) in $out/bench_table.md"

#!/usr/bin/env bash
# `protst train` under mpirun, end to end (CTest label dist; tests/dist/CMakeLists.txt sets the
# variables): failures never hang, and a killed job resumes exactly.
#   fail-throw    rank 1 throws pe::Error at step 2 (test-only fault injection, app/data_parallel.h):
#                 the job must exit non-zero within 60 s with "protst: rank 1/2: error: ..."
#   fail-sigkill  rank 1 raises SIGKILL at step 2: mpirun must end the job, non-zero, within 60 s,
#                 its message naming rank 1
#   resume        an uninterrupted 6-step run on 2 ranks (A); the same run killed at step 5 (rank 1
#                 fails, the step-3 checkpoint is the newest) and resumed on 2 ranks must end bit for
#                 bit equal to A (model, BatchNorm running statistics, optimizer state); the killed
#                 folder resumed on 3 ranks and on 1 process (other world sizes: sums in another
#                 order) must equal A to 1e-12 (f64 run; BERT's key biases, whose exact gradient is
#                 zero, must stay at zero instead: checkpoint_diff.cpp) and print the note on the
#                 world size.
#   hang          rank 1 sleeps for ever at step 2 (PE_TEST_FAIL_MODE=hang), --collective-timeout 5: the
#                 watchdog must end the job non-zero within 60 s with "no progress for 5 s" (with
#                 --collective-timeout 0 the job runs into the 60-s limit: checked by hand)
#   exe-mismatch  rank 1 reports another executable hash (PE_TEST_EXE_HASH_RANK=1, test-only): every rank
#                 must refuse to start, non-zero, the message naming rank 1/2 and "another executable"
#   zero-resume   as resume, with --zero 1 (sharded optimizer state, complete checkpoints): killed at
#                 step 5 and resumed on 2 ranks with --zero 1, bit for bit equal to the uninterrupted
#                 --zero 1 run; resumed on 3 ranks with --zero 1 and on 2 ranks without --zero: 1e-12
# Variables: PE_MPIEXEC, PE_MPIEXEC_FLAGS, PE_PROTST, PE_CKDIFF, PE_SOURCE_DIR.
set -u
scenario=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
read -r -a mpiflags <<<"${PE_MPIEXEC_FLAGS:-}"
tiny=(--train "$PE_SOURCE_DIR/data/samples/SWISS100.dat" --device cpu --precision f64 --batch-size 7 --steps 6
      --lr 1e-3 --embed-dim 16 --fusion-heads 2 --text-hidden 16 --text-heads 2 --text-layers 1
      --text-vocab-size 300 --max-protein-len 40 --max-text-len 24 --log-every 1 --save-every 3 --keep 5 --seed 3)
export OMP_NUM_THREADS=1

fail() {
  echo "FAILED: $*"
  exit 1
}

extra=()  # options added to every run of the scenario

# run NP LOG OUT [ENV=VALUE...]: protst train on NP ranks (NP 0: without mpirun), at most 60 s.
run() {
  local np=$1 log=$2 out=$3
  shift 3
  local t0 rc
  t0=$(date +%s%N)
  if [ "$np" = 0 ]; then
    env "$@" timeout 60 "$PE_PROTST" train "${tiny[@]}" "${extra[@]}" --out "$out" >"$log" 2>&1
  else
    # The ranks inherit the environment (the fault-injection variables) from mpirun.
    env "$@" timeout 60 "$PE_MPIEXEC" "${mpiflags[@]}" -np "$np" "$PE_PROTST" train "${tiny[@]}" "${extra[@]}" --out "$out" >"$log" 2>&1
  fi
  rc=$?
  local ms=$((($(date +%s%N) - t0) / 1000000))
  elapsed=$((ms / 1000)).$(printf %03d $((ms % 1000)))
  echo "np $np: exit status $rc after ${elapsed} s ($log)"
  return $rc
}

case "$scenario" in
  fail-throw|fail-sigkill)
    mode=throw
    [ "$scenario" = fail-sigkill ] && mode=sigkill
    run 2 "$work/log" "$work/run" PE_TEST_FAIL_AT_STEP=2 PE_TEST_FAIL_RANK=1 PE_TEST_FAIL_MODE=$mode
    rc=$?
    tail -n 20 "$work/log"
    [ $rc -eq 124 ] && fail "the job was still running after 60 s (a hang)"
    [ $rc -ne 0 ] || fail "the job exited 0 although rank 1 failed"
    if [ $mode = throw ]; then
      grep -q "protst: rank 1/2: error: test-only fault injection" "$work/log" || fail "no 'protst: rank 1/2: error:' line"
    else
      grep -Eiq "rank 1 .*(signal 9|killed)" "$work/log" || fail "mpirun's message does not name rank 1 and the signal"
    fi
    [ ! -e "$work/run/checkpoints/step-6.safetensors" ] || fail "the run finished although rank 1 failed"
    echo "PASSED: $scenario: exit status $rc after $elapsed s"
    ;;
  hang)
    extra=(--collective-timeout 5)
    run 2 "$work/log" "$work/run" PE_TEST_FAIL_AT_STEP=2 PE_TEST_FAIL_RANK=1 PE_TEST_FAIL_MODE=hang
    rc=$?
    tail -n 20 "$work/log"
    [ $rc -eq 124 ] && fail "the job was still running after 60 s (a hang the watchdog did not end)"
    [ $rc -ne 0 ] || fail "the job exited 0 although rank 1 hung"
    grep -Eq "protst: rank [01]/2: no progress for [0-9]+ s in step 2: " "$work/log" || fail "no 'no progress' line"
    echo "PASSED: hang: exit status $rc after $elapsed s"
    ;;
  exe-mismatch)
    run 2 "$work/log" "$work/run" PE_TEST_EXE_HASH_RANK=1
    rc=$?
    tail -n 20 "$work/log"
    [ $rc -eq 124 ] && fail "the job was still running after 60 s"
    [ $rc -ne 0 ] || fail "the job exited 0 although rank 1 runs another executable"
    grep -q "rank 1/2: another executable (file hash differs)" "$work/log" || fail "the message does not name rank 1/2"
    [ ! -e "$work/run/checkpoints" ] || fail "a checkpoint folder was written"
    echo "PASSED: exe-mismatch: exit status $rc after $elapsed s"
    ;;
  zero-resume)
    extra=(--zero 1)
    run 2 "$work/a.log" "$work/a" || { cat "$work/a.log"; fail "the uninterrupted --zero 1 run failed"; }
    grep -q "ZeRO-1: Adam moments sharded over 2 ranks" "$work/a.log" || fail "no ZeRO-1 memory line"
    run 2 "$work/b1.log" "$work/b" PE_TEST_FAIL_AT_STEP=5 PE_TEST_FAIL_RANK=1 && fail "the killed run exited 0"
    [ -e "$work/b/checkpoints/step-3.safetensors" ] || { cat "$work/b1.log"; fail "no step-3 checkpoint"; }
    cp -r "$work/b" "$work/c"
    cp -r "$work/b" "$work/d"
    run 2 "$work/b2.log" "$work/b" || { cat "$work/b2.log"; fail "the resumed run failed"; }
    grep -q "resuming from .*step-3.safetensors" "$work/b2.log" || fail "the resumed run did not resume from step 3"
    "$PE_CKDIFF" "$work/a/checkpoints/step-6.safetensors" "$work/b/checkpoints/step-6.safetensors" 0 ||
      fail "--zero 1, killed and resumed on 2 ranks: not bit for bit equal to the uninterrupted run"
    run 3 "$work/c.log" "$work/c" || { cat "$work/c.log"; fail "the --zero 1 resume on 3 ranks failed"; }
    "$PE_CKDIFF" "$work/a/checkpoints/step-6.safetensors" "$work/c/checkpoints/step-6.safetensors" 1e-12 ||
      fail "--zero 1 killed on 2 ranks, resumed on 3: differs from the uninterrupted run"
    extra=()
    run 2 "$work/d.log" "$work/d" || { cat "$work/d.log"; fail "the resume without --zero failed"; }
    "$PE_CKDIFF" "$work/a/checkpoints/step-6.safetensors" "$work/d/checkpoints/step-6.safetensors" 1e-12 ||
      fail "--zero 1 killed on 2 ranks, resumed on 2 ranks without --zero: differs from the uninterrupted run"
    echo "PASSED: zero-resume"
    ;;
  resume)
    run 2 "$work/a.log" "$work/a" || { cat "$work/a.log"; fail "the uninterrupted run failed"; }
    # Killed as rank 1 starts step 5: rank 0 wrote step-3 before step 4's collectives, so it is complete.
    run 2 "$work/b1.log" "$work/b" PE_TEST_FAIL_AT_STEP=5 PE_TEST_FAIL_RANK=1 && fail "the killed run exited 0"
    [ -e "$work/b/checkpoints/step-3.safetensors" ] || { cat "$work/b1.log"; fail "no step-3 checkpoint"; }
    [ ! -e "$work/b/checkpoints/step-6.safetensors" ] || fail "the killed run reached step 6"
    cp -r "$work/b" "$work/c"
    cp -r "$work/b" "$work/d"
    run 2 "$work/b2.log" "$work/b" || { cat "$work/b2.log"; fail "the resumed run failed"; }
    grep -q "resuming from .*step-3.safetensors" "$work/b2.log" || fail "the resumed run did not resume from step 3"
    "$PE_CKDIFF" "$work/a/checkpoints/step-6.safetensors" "$work/b/checkpoints/step-6.safetensors" 0 ||
      fail "2 ranks, killed and resumed on 2 ranks: not bit for bit equal to the uninterrupted run"
    run 3 "$work/c.log" "$work/c" || { cat "$work/c.log"; fail "the resume on 3 ranks failed"; }
    grep -q "note: .* was written by a run on 2 process(es); resuming on 3" "$work/c.log" || fail "no world-size note"
    "$PE_CKDIFF" "$work/a/checkpoints/step-6.safetensors" "$work/c/checkpoints/step-6.safetensors" 1e-12 ||
      fail "killed on 2 ranks, resumed on 3: differs from the uninterrupted run"
    run 0 "$work/d.log" "$work/d" || { cat "$work/d.log"; fail "the resume in one process failed"; }
    grep -q "note: .* was written by a run on 2 process(es); resuming on 1" "$work/d.log" || fail "no world-size note"
    "$PE_CKDIFF" "$work/a/checkpoints/step-6.safetensors" "$work/d/checkpoints/step-6.safetensors" 1e-12 ||
      fail "killed on 2 ranks, resumed in one process: differs from the uninterrupted run"
    echo "PASSED: resume"
    ;;
  *)
    fail "unknown scenario $scenario"
    ;;
esac

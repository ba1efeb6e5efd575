#!/usr/bin/env bash
# test_dist_train.sh: `clipcl train` under mpirun (2 ranks, one core each on
# the CPU device), on a small generated CSV manifest and tar shards:
# - 2 ranks x batch 8 give the same losses as 1 rank x batch 16 (1e-5), the
#   global batches being the one-process batches; with --zero 1 too; rank 0
#   alone writes metrics.jsonl (one line per step), checkpoints and model;
#   each rank's device has one compute unit;
# - a 2-rank checkpoint (ZeRO-1: moments gathered) resumes as 1 rank and a
#   1-rank checkpoint as 2 ranks, continuing with the same losses (1e-5);
# - tar shards are split over the ranks; fewer shards than ranks is refused;
# - rank 0 killed half-way through writing a checkpoint, or rank 1 killed
#   mid-run, ends the job with mpirun naming the rank; the last checkpoint
#   stays loadable and resuming continues to the uninterrupted losses.
# Skipped (77) when libclipcl was built without MPI or mpirun is missing.
# Under AddressSanitizer only the ZeRO-1 run, its resumption as 1 rank and
# the tar run are made (the loop's multi-rank paths, checkpoints gathered).
set -u
PY=${PYTHON:-/usr/bin/python3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Under AddressSanitizer: keep Open MPI's and PMIx's plugins loaded at exit and
# unwind fully, so that LeakSanitizer can name (and tests/lsan.supp suppress)
# their allocations; no effect on a normal build.
export OMPI_MCA_mca_base_component_disable_dlclose=1 PMIX_MCA_mca_base_component_disable_dlclose=1
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
command -v mpirun > /dev/null || { echo "mpirun not found: skipped"; exit 77; }
cat "$BUILD"/CMakeFiles/clipcl*.dir/flags.make 2> /dev/null | grep -q "CLIPCL_HAVE_MPI" || { echo "built without MPI: skipped"; exit 77; }
fails=0
check() { local name=$1; shift; if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
C=$CLIPCL
mpi2() { mpirun -np 2 --oversubscribe "$@"; }
$BUILD/datasets/clipcl-synth --out "$T/syn" --size 32 --train 320 --val 32 --zeroshot-per-pair 2 --seen-per-pair 2 \
  --format both --shard-size 80 --quiet || { echo "FAIL generating the data set"; exit 1; }
common=(--model-config clipcl-micro --train-data "$T/syn/train.csv" --lr 1e-3 --warmup 2 --seed 5 --log-every 1
        --workers 1 --steps 8 --save-every 4)
same_losses() {  # a b [first step]
  "$PY" - "$1" "$2" "${3:-1}" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
b = [json.loads(l) for l in open(sys.argv[2] + "/metrics.jsonl")]
first = int(sys.argv[3])
la = {r["step"]: r["loss"] for r in a if r["type"] == "train"}
lb = {r["step"]: r["loss"] for r in b if r["type"] == "train"}
assert sorted(la) == list(range(1, 9)) and sorted(lb) == list(range(1, 9)), (sorted(la), sorted(lb))
bad = [(s, la[s], lb[s]) for s in range(first, 9) if abs(la[s] - lb[s]) > 1e-5 * max(1, abs(la[s]))]
assert not bad, bad
PY
}

asan=0
grep -q "CLIPCL_ASAN:BOOL=ON" "$BUILD/CMakeCache.txt" 2> /dev/null && asan=1
$C train "${common[@]}" --batch-size 16 --out "$T/one" > "$T/one.log" 2>&1
check "1 rank x 16 runs" test $? -eq 0
if [ $asan -eq 0 ]; then
mpi2 $C train "${common[@]}" --batch-size 8 --out "$T/two" > "$T/two.log" 2>&1
check "2 ranks x 8 run" test $? -eq 0
check "2 ranks x 8: the same 8 losses as 1 rank x 16" same_losses "$T/one" "$T/two"
check "rank 0 alone writes metrics (8 lines), checkpoints and the model" bash -c "
  [ \$(grep -c '\"type\": \"train\"' '$T/two/metrics.jsonl') -eq 8 ] && [ -f '$T/two/checkpoints/step_8.optim.safetensors' ] &&
  [ -f '$T/two/model.safetensors' ] && [ \$(grep -c '^done:' '$T/two.log') -eq 1 ]"
check "each rank's CPU device has one compute unit" bash -c "grep -q 'rank 0: .*, 1 compute unit$' '$T/two.log' &&
  grep -q 'rank 1: .*, 1 compute unit$' '$T/two.log'"
fi
mpi2 $C train "${common[@]}" --batch-size 8 --zero 1 --out "$T/zero" > "$T/zero.log" 2>&1
check "2 ranks x 8 with ZeRO-1: the same losses" bash -c "[ $? -eq 0 ]" && check "... (1e-5)" same_losses "$T/one" "$T/zero"

# resume across rank counts: cut a run back to its step-4 checkpoint, resume
cut4() { rm -f "$1/checkpoints/step_8."* "$1/model.safetensors"; }
cp -r "$T/zero" "$T/z2to1"; cut4 "$T/z2to1"
$C train "${common[@]}" --batch-size 16 --out "$T/z2to1" --resume latest > "$T/z2to1.log" 2>&1
check "a 2-rank ZeRO-1 checkpoint resumes as 1 rank" bash -c "[ $? -eq 0 ] && grep -q 'at step 4' '$T/z2to1.log'"
check "... with the same losses" same_losses "$T/one" "$T/z2to1" 5
if [ $asan -eq 0 ]; then
cp -r "$T/one" "$T/1to2"; cut4 "$T/1to2"
mpi2 $C train "${common[@]}" --batch-size 8 --out "$T/1to2" --resume latest > "$T/1to2.log" 2>&1
check "a 1-rank checkpoint resumes as 2 ranks" bash -c "[ $? -eq 0 ] && grep -q 'at step 4' '$T/1to2.log'"
check "... with the same losses" same_losses "$T/one" "$T/1to2" 5

fi
# tar shards: split over the ranks
mpi2 $C train "${common[@]}" --batch-size 8 --train-data "$T/syn/shards/train-{000000..000003}.tar" --steps 4 \
  --out "$T/tar" > "$T/tar.log" 2>&1
check "tar shards: 2 ranks train" bash -c "[ $? -eq 0 ] && [ \$(grep -c '\"type\": \"train\"' '$T/tar/metrics.jsonl') -eq 4 ]"
mpi2 $C train "${common[@]}" --batch-size 8 --train-data "$T/syn/shards/train-000000.tar" --steps 4 \
  --out "$T/tar1" > "$T/tar1.log" 2>&1
check "one shard for 2 ranks is refused, naming the problem" bash -c "[ $? -ne 0 ] && grep -q 'cannot be split over 2 ranks' '$T/tar1.log'"

# rank 0 killed while writing checkpoint 6; rank 1 killed after step 5
if [ $asan -eq 0 ]; then
(CLIPCL_TEST_KILL_CHECKPOINT=6 mpi2 $C train "${common[@]}" --batch-size 8 --save-every 3 --out "$T/k0" > "$T/k0.log" 2>&1)
check "rank 0 killed mid-checkpoint: the job ends, mpirun names rank 0" bash -c "[ $? -ne 0 ] && grep -q 'rank 0' '$T/k0.log'"
check "... the step-3 checkpoint is loadable, no partial step 6" bash -c "$C info '$T/k0/checkpoints/step_3.safetensors' > /dev/null &&
  ! ls '$T/k0/checkpoints' | grep -q 'step_6.safetensors$'"
mpi2 $C train "${common[@]}" --batch-size 8 --save-every 3 --out "$T/k0" --resume latest > "$T/k0r.log" 2>&1
check "... resuming continues to the uninterrupted losses" bash -c "[ $? -eq 0 ]" && check "... (1e-5)" same_losses "$T/one" "$T/k0"
(CLIPCL_TEST_KILL_RANK=1:5 mpi2 $C train "${common[@]}" --batch-size 8 --save-every 3 --out "$T/k1" > "$T/k1.log" 2>&1)
check "rank 1 killed at step 5: the job ends, mpirun names rank 1 and the signal" bash -c "[ $? -ne 0 ] &&
  grep -q 'rank 1' '$T/k1.log' && grep -qi 'signal 9' '$T/k1.log'"
check "... the step-3 checkpoint is loadable" bash -c "$C info '$T/k1/checkpoints/step_3.safetensors' > /dev/null"
fi
echo "$fails failed"
[ $fails -eq 0 ]

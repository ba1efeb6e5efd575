#!/usr/bin/env bash
# test_dist.sh: data-parallel training equals one process. For the CLIP and
# the SigLIP loss, plain, with ZeRO-1, with --accum-freq 2 (and mixtures with
# gradient clipping, activation checkpointing, a locked image tower, small
# gradient buckets): 2 ranks x batch B (mpirun -np 2 on the CPU device, one
# core each) against 1 rank x batch 2B, ten steps of the clipcl-test model
# (tests/dist_check.c):
#  - every loss to 1e-5 relative and the final parameters to 1e-4 of each
#    tensor's norm, both runs free;
#  - every parameter gradient of every step to 1e-5 of its tensor's norm
#    (the scalars logit_scale and logit_bias: of max(|gradient|, 1), as they
#    cancel towards 0 while training balances their pulls), the 2-rank run
#    replaying the parameters the 1-rank run started each step from (free
#    runs drift apart by rounding within a few steps);
# and 3 ranks (SigLIP's bidirectional ring, an odd rank count) against 1.
# Skipped (77) when libclipcl was built without MPI or mpirun is missing.
# Under AddressSanitizer (ten times slower here) only the cases marked
# "asan" run: together they cover ZeRO, accumulation, clipping, small
# buckets, checkpointed activations and the 3-rank ring.
set -u
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Under AddressSanitizer: keep Open MPI's and PMIx's plugins loaded at exit and
# unwind fully, so that LeakSanitizer can name (and tests/lsan.supp suppress)
# their allocations; no effect on a normal build.
export OMPI_MCA_mca_base_component_disable_dlclose=1 PMIX_MCA_mca_base_component_disable_dlclose=1
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
# two processes on a 2-core machine must not each start threads for every core
export OMPI_MCA_rmaps_base_oversubscribe=1
D=$BUILD/tests/dist_check
command -v mpirun > /dev/null || { echo "mpirun not found: skipped"; exit 77; }
cat "$BUILD"/CMakeFiles/clipcl*.dir/flags.make 2> /dev/null | grep -q "CLIPCL_HAVE_MPI" || { echo "built without MPI: skipped"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
check() { local name=$1; shift; if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi; }
mpi() { local np=$1; shift; mpirun -np "$np" --oversubscribe "$@"; }
asan=0
grep -q "CLIPCL_ASAN:BOOL=ON" "$BUILD/CMakeCache.txt" 2> /dev/null && asan=1

case_() {  # [asan] name  ranks  per-rank-batch  extra args...
  local in_asan=0
  [ "$1" = asan ] && { in_asan=1; shift; }
  local name=$1 np=$2 b=$3; shift 3
  [ $asan -eq 1 ] && [ $in_asan -eq 0 ] && return
  local one="$T/$name.one" many="$T/$name.many" replay="$T/$name.replay"
  "$D" run --batch $((b * np)) --steps 10 "$@" --out "$one" > "$T/$name.log" 2>&1 &&
    mpi "$np" "$D" run --batch "$b" --steps 10 "$@" --out "$many" >> "$T/$name.log" 2>&1 &&
    mpi "$np" "$D" run --batch "$b" --steps 10 "$@" --replay "$one" --out "$replay" >> "$T/$name.log" 2>&1
  local rc=$?
  check "$name: runs complete" test $rc -eq 0 || { tail -20 "$T/$name.log"; return; }
  check "$name: $np ranks x $b, ten losses and final parameters == 1 rank x $((b * np))" \
    "$D" compare "$many" "$one" --loss 1e-5 --params 1e-4
  check "$name: every parameter gradient of ten steps == 1 rank (1e-5)" \
    "$D" compare "$replay" "$one" --loss 1e-5 --grads 1e-5
}

case_ clip 2 4
case_ clip_zero1 2 4 --zero 1
case_ clip_accum2 2 2 --accum 2
case_ asan clip_zero1_accum2_clip 2 2 --accum 2 --zero 1 --clip 0.5
case_ siglip 2 4 --siglip
case_ siglip_zero1 2 4 --siglip --zero 1
case_ siglip_accum2 2 2 --siglip --accum 2
CLIPCL_BUCKET_MB=0.01 case_ clip_small_buckets_ckpt_lock 2 4 --grad-ckpt --lock-image --clip 0.5
CLIPCL_BUCKET_MB=0.01 case_ asan siglip_zero1_small_buckets 2 3 --siglip --zero 1 --clip 0.5 --grad-ckpt
case_ asan siglip_3ranks 3 2 --siglip
case_ clip_3ranks_zero1 3 2 --zero 1

echo "$fails failed"
[ $fails -eq 0 ]

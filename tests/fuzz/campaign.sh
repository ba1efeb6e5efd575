#!/usr/bin/env bash
# campaign.sh: the long fuzzing run: every target (or those named) for
# SECONDS each, one after the other, at the lowest CPU priority, continuing
# from the corpus earlier campaigns grew in BUILD/tests/fuzz/campaign/.
#   tests/fuzz/campaign.sh [SECONDS] [TARGET...]     (default 600 s, all)
# Builds build-fuzz (clang) when needed. Prints and appends to
# build-fuzz/fuzz-campaign.tsv one line per target: date, target, seconds,
# executions, edge coverage, features, corpus size, slowest unit, result.
# A crash leaves its input in build-fuzz/tests/fuzz/campaign/<target>/artifacts/;
# reproduce with build-fuzz/tests/fuzz/fuzz_<target> FILE. The unit
# timeout is 1 s (CLIPCL_FUZZ_TIMEOUT overrides).
set -uo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-600}
shift || true
B=${CLIPCL_FUZZ_BUILD:-build-fuzz}
if [ ! -x "$B/tests/fuzz/fuzz_npy" ]; then
  CC=clang nice -n 19 cmake -S . -B "$B" -DCLIPCL_FUZZ=ON -DCLIPCL_WERROR=ON >/dev/null || exit 1
fi
nice -n 19 cmake --build "$B" -j"$(nproc)" >/dev/null || exit 1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in tests/fuzz/fuzz_*.c; do
    n=$(basename "$f" .c)
    [ "$n" = fuzz_common ] || targets+=("${n#fuzz_}")
  done
fi
work=$B/tests/fuzz/campaign
log=$B/fuzz-campaign.tsv
[ -f "$log" ] || printf 'date\ttarget\tseconds\texecs\tcov\tft\tcorpus\tslowest_s\tresult\n' > "$log"
fails=0
for t in "${targets[@]}"; do
  out=$work/$t.log
  mkdir -p "$work"
  CLIPCL_FUZZ_TIMEOUT=${CLIPCL_FUZZ_TIMEOUT:-1} nice -n 19 bash tests/fuzz/run.sh "$B/tests/fuzz/fuzz_$t" "$secs" "$work" \
    > "$out" 2>&1
  rc=$?
  execs=$(awk '/^stat::number_of_executed_units/ {print $NF}' "$out")
  slow=$(awk '/^stat::slowest_unit_time_sec/ {print $NF}' "$out")
  last=$(grep -aE '^#[0-9]+' "$out" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<< "$last")
  res=ok
  [ $rc -eq 0 ] || { res="FAIL (rc $rc, see $out)"; fails=$((fails + 1)); }
  line=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$(date -u +%FT%TZ)" "$t" "$secs" "${execs:-?}" "${cov:-?}" \
         "${ft:-?}" "${corp:-?}" "${slow:-?}" "$res")
  echo "$line" | tee -a "$log"
done
[ $fails -eq 0 ]

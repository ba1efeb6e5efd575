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
# timeout is 1 s (CLIPCL_FUZZ_TIMEOUT overrides); a unit that times out
# counts when it takes that long in CPU time run alone (see below).
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
  : > "$out"
  # A unit that times out is run again alone, three times, without a
  # timeout, and its CPU time measured: this machine is shared, and a process
  # at nice 19 can be kept off the CPU (libFuzzer's timeout is wall time) or
  # even left hung in libFuzzer's own timeout handler, hence the hard cap
  # below. Only a unit that takes the timeout in CPU time is a finding; any
  # other is counted (with the most CPU one took) and the run goes on.
  tmo=${CLIPCL_FUZZ_TIMEOUT:-1}
  start=$(date +%s) execs=0 slow=0 flaky=0 flaky_cpu=0 res=ok
  while :; do
    left=$((secs - ($(date +%s) - start)))
    [ $left -gt 0 ] || break
    CLIPCL_FUZZ_TIMEOUT=$tmo timeout -k 10 $((left + 120)) nice -n 19 bash tests/fuzz/run.sh \
      "$B/tests/fuzz/fuzz_$t" "$left" "$work" > "$out.part" 2>&1
    rc=$?
    cat "$out.part" >> "$out"
    e=$(awk '/^stat::number_of_executed_units/ {print $NF}' "$out.part")
    sl=$(awk '/^stat::slowest_unit_time_sec/ {print $NF}' "$out.part")
    execs=$((execs + ${e:-0}))
    [ "${sl:-0}" -gt "$slow" ] && slow=$sl
    last=$(grep -aE '^#[0-9]+' "$out.part" | tail -1)
    [ -n "$last" ] && keep_last=$last
    [ $rc -eq 0 ] && break
    unit=$(ls -t "$work/$t/artifacts"/timeout-* 2>/dev/null | grep -v '\.not-reproduced$' | head -1)
    if { [ $rc -eq 70 ] || [ $rc -eq 124 ] || [ $rc -eq 137 ]; } && [ -n "$unit" ]; then
      [ $rc -eq 70 ] || echo "campaign: $t: libFuzzer hung after a timeout (rc $rc); checking $unit" >> "$out"
      cpu=0
      for i in 1 2 3; do
        c=$( { timeout 120 /usr/bin/time -f '%U %S' nice -n 19 "$B/tests/fuzz/fuzz_$t" -timeout=0 -runs=1 "$unit" \
               > /dev/null 2> "$out.time"; } ; tail -1 "$out.time" | awk '{print $1 + $2}')
        cpu=$(awk -v a="$cpu" -v b="${c:-999}" 'BEGIN {print (b > a ? b : a)}')
      done
      if awk -v c="$cpu" -v t="$tmo" 'BEGIN {exit !(c < t)}'; then
        flaky=$((flaky + 1))
        flaky_cpu=$(awk -v a="$flaky_cpu" -v b="$cpu" 'BEGIN {print (b > a ? b : a)}')
        mv "$unit" "$unit.not-reproduced"
        echo "campaign: $t: a timeout under load; alone the unit takes $cpu s of CPU ($unit); going on" >> "$out"
        continue
      fi
      echo "campaign: $t: $unit takes $cpu s of CPU alone" >> "$out"
    fi
    res="FAIL (rc $rc, see $out)"
    fails=$((fails + 1))
    break
  done
  rm -f "$out.time"
  rm -f "$out.part"
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "${keep_last:-}")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "${keep_last:-}")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<< "${keep_last:-}")
  [ $flaky -gt 0 ] && [ "$res" = ok ] && res="ok ($flaky timeouts under load; alone each took at most ${flaky_cpu} s CPU)"
  line=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$(date -u +%FT%TZ)" "$t" "$secs" "$execs" "${cov:-?}" \
         "${ft:-?}" "${corp:-?}" "$slow" "$res")
  echo "$line" | tee -a "$log"
  keep_last=
done
[ $fails -eq 0 ]

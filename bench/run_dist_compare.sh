#!/usr/bin/env bash
# run_dist_compare.sh: training throughput of 2 ranks x 1 core (mpirun -np 2,
# per-rank batch B/2, each rank's PoCL device limited to its core) against
# 1 rank x 2 cores (batch B), the same global batch and model, alternating
# the two REPEAT times; prints each run's samples/s (from metrics.jsonl, the
# logged intervals after the warm-up steps) and the median ratio.
#   bench/run_dist_compare.sh [CONFIG] [GLOBAL_BATCH] [STEPS] [REPEAT]
# Defaults: clipcl-tiny 64 40 3. Needs a build with MPI (build/) and mpirun.
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-clipcl-tiny} B=${2:-64} STEPS=${3:-40} REPEAT=${4:-3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
size=$(./build/clipcl info "$CONFIG" | awk '/^vision/ {print $3}' | tr -d ,)
./build/datasets/clipcl-synth --out "$W/syn" --size "$size" --train 4000 --val 8 --quiet
args=(--model-config "$CONFIG" --train-data "$W/syn/train.csv" --steps "$STEPS" --lr 1e-3 --warmup 10 --seed 1
      --log-every 10 --no-report --save-every 100000)
rate() {  # mean samples/s of the logged steps after the warm-up
  /usr/bin/python3 -c "
import json, sys
r = [json.loads(l) for l in open('$1/metrics.jsonl')]
v = [x['samples_per_s'] for x in r if x['type'] == 'train' and x.get('samples_per_s')]
print('%.2f' % (sum(v) / len(v)))"
}
one=() two=()
for i in $(seq "$REPEAT"); do
  ./build/clipcl train "${args[@]}" --batch-size "$B" --out "$W/one$i" > "$W/one$i.log" 2>&1
  mpirun -np 2 --oversubscribe ./build/clipcl train "${args[@]}" --batch-size $((B / 2)) --out "$W/two$i" \
    > "$W/two$i.log" 2>&1
  a=$(rate "$W/one$i") b=$(rate "$W/two$i")
  one+=("$a") two+=("$b")
  echo "run $i: 1 rank x 2 cores (batch $B) $a samples/s; 2 ranks x 1 core (batch $((B / 2)) each) $b samples/s"
done
grep -h "compute unit" "$W/two1.log" || true
/usr/bin/python3 -c "
a = sorted(map(float, '${one[*]}'.split())); b = sorted(map(float, '${two[*]}'.split()))
r = sorted(y / x for x, y in zip(map(float, '${one[*]}'.split()), map(float, '${two[*]}'.split())))
m = lambda v: v[len(v) // 2]
print('median: 1 rank x 2 cores %.1f samples/s, 2 ranks x 1 core %.1f samples/s, ratio %.3f' % (m(a), m(b), m(r)))"

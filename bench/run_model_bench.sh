#!/usr/bin/env bash
# run_model_bench.sh: clipcl (bench_model) and open_clip on PyTorch
# (peer_openclip.py) side by side on the same config and batch, then one JSON
# line per measurement with the ratio clipcl / open_clip.
#   bench/run_model_bench.sh [CONFIG] [BATCH] [STEPS]     (default clipcl-tiny 64 5)
# Needs the reference environment (tests/tools/setup_pyref.sh) in
# PYREF (default /opt/pyref/site). The peer runs at its best here: the
# machine's OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset, OMP_WAIT_POLICY=PASSIVE
# and glibc malloc tuned as REFERENCE.md describes.
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=${1:-clipcl-tiny}; batch=${2:-64}; steps=${3:-5}
B=${BUILD:-build}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$B/clipcl" info "$cfg" --json > "$tmp/cfg.json"
"$B/bench/bench_model" --config "$cfg" --batch "$batch" --steps "$steps" > "$tmp/clipcl.jsonl"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=PASSIVE MALLOC_MMAP_MAX_=0 \
  MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=1073741824 PYTHONPATH="${PYREF:-/opt/pyref/site}" \
  /usr/bin/python3 bench/peer_openclip.py --config "$tmp/cfg.json" --name "$cfg" --batch "$batch" --steps "$steps" \
  > "$tmp/peer.jsonl"
/usr/bin/python3 - "$tmp/clipcl.jsonl" "$tmp/peer.jsonl" <<'PY'
import json, sys
a = {r["what"]: r for r in map(json.loads, open(sys.argv[1]))}
b = {r["what"]: r for r in map(json.loads, open(sys.argv[2]))}
for w in a:
    if w in b:
        print(json.dumps({"what": w, "config": a[w]["config"], "batch": a[w]["batch"],
                          "clipcl_samples_per_s": a[w]["samples_per_s"], "open_clip_samples_per_s": b[w]["samples_per_s"],
                          "ratio": round(a[w]["samples_per_s"] / b[w]["samples_per_s"], 3)}))
PY

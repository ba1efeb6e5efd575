#!/usr/bin/env bash
# run_synth_compare.sh: the synthetic-set demo trained by clipcl and by
# open_clip on PyTorch with the same data, config, steps and hyperparameters,
# then zero-shot top-1 on the held-out colour-shape pairs (pair, colour,
# shape) with the same templates, side by side as JSON lines.
#   bench/run_synth_compare.sh [STEPS] [WORKDIR]   (default 2400, /tmp/clipcl_synth_compare)
# Needs the reference environment (tests/tools/setup_pyref.sh) in PYREF
# (default /opt/pyref/site); open_clip runs with the environment it is fastest
# with here (REFERENCE.md).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-2400}; work=${2:-/tmp/clipcl_synth_compare}
B=${BUILD:-build}
cfg=clipcl-micro; batch=64; lr=1e-3; wd=0.1; warmup=200; seed=1
mkdir -p "$work"
[ -f "$work/synth/train.csv" ] || "$B/datasets/clipcl-synth" --out "$work/synth" --size 32 --train 10000 --quiet
"$B/clipcl" info "$cfg" --json > "$work/cfg.json"
rm -rf "$work/clipcl_run"
t0=$(date +%s.%N)
"$B/clipcl" train --model-config "$cfg" --train-data "$work/synth/train.csv" --batch-size $batch --steps "$steps" \
  --lr $lr --wd $wd --warmup $warmup --seed $seed --out "$work/clipcl_run" --log-every 200 --no-report > "$work/clipcl_train.log"
t1=$(date +%s.%N)
for kind in pair colour shape; do
  "$B/clipcl" zeroshot --model "$work/clipcl_run/model.safetensors" --data "$work/synth/zeroshot/$kind" \
    --classnames "$work/synth/zeroshot/classnames_$kind.txt" --templates datasets/synth_templates.txt \
    --json "$work/clipcl_zs_$kind.json" > /dev/null
done
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=PASSIVE MALLOC_MMAP_MAX_=0 \
  MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=1073741824 PYTHONPATH="${PYREF:-/opt/pyref/site}" \
  /usr/bin/python3 bench/train_openclip_synth.py --data "$work/synth" --config "$work/cfg.json" --steps "$steps" \
  --batch $batch --lr $lr --wd $wd --warmup $warmup --seed $seed --templates datasets/synth_templates.txt \
  > "$work/open_clip.json"
/usr/bin/python3 - "$work" "$steps" "$t0" "$t1" <<'PY'
import json, sys
work, steps, t0, t1 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
oc = json.load(open(work + "/open_clip.json"))
secs = t1 - t0
print(json.dumps({"impl": "clipcl", "steps": steps, "train_seconds": round(secs, 1),
                  "samples_per_s": round(steps * 64 / secs, 1)}))
print(json.dumps({"impl": "open_clip", "steps": oc["steps"], "train_seconds": oc["train_seconds"],
                  "samples_per_s": oc["samples_per_s"]}))
for kind in ("pair", "colour", "shape"):
    c = json.load(open("%s/clipcl_zs_%s.json" % (work, kind)))
    o = oc["zeroshot"][kind]
    print(json.dumps({"zeroshot": kind, "n": c["n"], "chance": round(c["chance"], 4),
                      "clipcl_top1": round(c["top1"], 4), "open_clip_top1": round(o["top1"], 4),
                      "difference_points": round(100 * (c["top1"] - o["top1"]), 1)}))
PY

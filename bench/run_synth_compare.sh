#!/usr/bin/env bash
# run_synth_compare.sh: the synthetic-set demo trained by clipcl and by
# open_clip on PyTorch with the same data, config, steps and hyperparameters,
# for several seeds, then zero-shot top-1 on the held-out colour-shape pairs
# (the 12-way pair classifier, colour-only and shape-only prompts) with the
# same templates, side by side as JSON lines, and the means over seeds.
#   bench/run_synth_compare.sh [STEPS] [WORKDIR] [SEEDS]
#   (default 3000, /tmp/clipcl_synth_compare, "1 2 3"); finished seeds are reused.
# Needs the reference environment (tests/tools/setup_pyref.sh) in PYREF
# (default /opt/pyref/site); open_clip runs with the environment it is fastest
# with here (REFERENCE.md). Training speeds are only comparable when nothing
# else runs on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-3000}; work=${2:-/tmp/clipcl_synth_compare}; seeds=${3:-1 2 3}
B=${BUILD:-build}
cfg=clipcl-micro; batch=64; lr=1e-3; wd=0.1; warmup=200
mkdir -p "$work"
[ -f "$work/synth/train.csv" ] || "$B/datasets/clipcl-synth" --out "$work/synth" --size 32 --train 10000 --quiet
"$B/clipcl" info "$cfg" --json > "$work/cfg.json"
for seed in $seeds; do
  w=$work/seed$seed
  mkdir -p "$w"
  if [ ! -f "$w/clipcl.json" ]; then
    rm -rf "$w/clipcl_run"
    t0=$(date +%s.%N)
    "$B/clipcl" train --model-config "$cfg" --train-data "$work/synth/train.csv" --batch-size $batch --steps "$steps" \
      --lr $lr --wd $wd --warmup $warmup --seed "$seed" --out "$w/clipcl_run" --log-every 500 --no-report \
      > "$w/clipcl_train.log"
    t1=$(date +%s.%N)
    for kind in pair colour shape; do
      "$B/clipcl" zeroshot --model "$w/clipcl_run/model.safetensors" --data "$work/synth/zeroshot/$kind" \
        --classnames "$work/synth/zeroshot/classnames_$kind.txt" --templates datasets/synth_templates.txt \
        --json "$w/zs_$kind.json" > /dev/null
    done
    /usr/bin/python3 - "$w" "$steps" "$t0" "$t1" <<'PY'
import json, sys
w, steps, t0, t1 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
zs = {k: {"top1": json.load(open("%s/zs_%s.json" % (w, k)))["top1"]} for k in ("pair", "colour", "shape")}
json.dump({"impl": "clipcl", "steps": steps, "train_seconds": round(t1 - t0, 1),
           "samples_per_s": round(steps * 64 / (t1 - t0), 1), "zeroshot": zs}, open(w + "/clipcl.json", "w"))
PY
  fi
  if [ ! -f "$w/open_clip.json" ]; then
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=PASSIVE MALLOC_MMAP_MAX_=0 \
      MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=1073741824 PYTHONPATH="${PYREF:-/opt/pyref/site}" \
      /usr/bin/python3 bench/train_openclip_synth.py --data "$work/synth" --config "$work/cfg.json" --steps "$steps" \
      --batch $batch --lr $lr --wd $wd --warmup $warmup --seed "$seed" --templates datasets/synth_templates.txt \
      > "$w/open_clip.json.tmp"
    mv "$w/open_clip.json.tmp" "$w/open_clip.json"
  fi
done
/usr/bin/python3 - "$work" $seeds <<'PY'
import json, sys
work, seeds = sys.argv[1], sys.argv[2:]
chance = {"pair": 1 / 12, "colour": 1 / 6, "shape": 1 / 6}
runs = {s: (json.load(open("%s/seed%s/clipcl.json" % (work, s))), json.load(open("%s/seed%s/open_clip.json" % (work, s))))
        for s in seeds}
for s, (c, o) in runs.items():
    print(json.dumps({"seed": int(s), "clipcl_samples_per_s": c["samples_per_s"], "open_clip_samples_per_s": o["samples_per_s"],
                      **{"%s_%s" % (impl, k): round(r["zeroshot"][k]["top1"], 4) for impl, r in (("clipcl", c), ("open_clip", o))
                         for k in ("pair", "colour", "shape")}}))
for k in ("pair", "colour", "shape"):
    mc = sum(c["zeroshot"][k]["top1"] for c, _ in runs.values()) / len(runs)
    mo = sum(o["zeroshot"][k]["top1"] for _, o in runs.values()) / len(runs)
    print(json.dumps({"zeroshot": k, "seeds": len(runs), "chance": round(chance[k], 4), "clipcl_mean_top1": round(mc, 4),
                      "open_clip_mean_top1": round(mo, 4), "difference_points": round(100 * (mc - mo), 1)}))
PY

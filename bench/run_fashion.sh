#!/usr/bin/env bash
# run_fashion.sh: Fashion-MNIST (Debian's dataset-fashion-mnist, real data)
# through clipcl: convert to 32 px PNGs with varied captions, train
# clipcl-micro on the 60,000 captioned training images, then zero-shot
# classification of the 10,000 test images from the class names, and a linear
# probe (train split -> test split) on the frozen image features.
#   bench/run_fashion.sh [STEPS] [WORKDIR]     (default 2000, /tmp/clipcl_fashion)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-2000}; work=${2:-/tmp/clipcl_fashion}
B=${BUILD:-build}
mkdir -p "$work"
[ -f "$work/fm/train.csv" ] || "$B/datasets/clipcl-fashion-mnist" --out "$work/fm" --size 32
rm -rf "$work/run"
"$B/clipcl" train --model-config clipcl-micro --train-data "$work/fm/train.csv" --batch-size 64 --steps "$steps" \
  --lr 1e-3 --wd 0.1 --warmup 200 --seed 1 --log-every 200 --out "$work/run" --no-report
"$B/clipcl" zeroshot --model "$work/run/model.safetensors" --data "$work/fm/test" \
  --classnames "$work/fm/classnames.txt" --json "$work/zeroshot.json"
"$B/clipcl" probe --model "$work/run/model.safetensors" --train "$work/fm/train" --test "$work/fm/test" \
  --cache "$work/cache" --json "$work/probe.json"

#!/usr/bin/env bash
# run_ann_bench.sh: the million-row approximate search benchmark of
# bench/RESULTS.md. Real embeddings come from clipcl itself: Fashion-MNIST
# (Debian's dataset-fashion-mnist) converted to 32 px, a 512-dim model
# (bench/fashion512.json: clipcl-micro's towers with a 512-dim embedding)
# trained on its 60,000 captioned training images, then
#   - the 10,000 test images' embeddings become rows of the index,
#   - 2,000 training images' embeddings are image queries (not in the index),
#   - 100 caption-like prompts (10 classes x 10 phrasings) are text queries;
# the rest of the million rows are generated (bench/bench_ann.c says how).
# Then bench_ann builds the FAISS index types below over the same rows and
# measures recall@10 against exact search and per-query latency, and the same
# again on uniformly random rows (no neighbourhood structure).
#   bench/run_ann_bench.sh [WORKDIR] [ROWS] [TYPES]
#   (defaults /tmp/clipcl_ann, 1000000, "IVF4096,Flat;IVF4096_HNSW32,Flat;HNSW32")
# Long: run it under nice; it prints how long each part took.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/clipcl_ann}; rows=${2:-1000000}
types=${3:-"IVF4096,Flat;IVF4096_HNSW32,Flat;HNSW32"}
B=${BUILD:-build}
mkdir -p "$work"
[ -f "$work/fm/train.csv" ] || "$B/datasets/clipcl-fashion-mnist" --out "$work/fm" --size 32
if [ ! -f "$work/run/model.safetensors" ]; then
  "$B/clipcl" train --model-config bench/fashion512.json --train-data "$work/fm/train.csv" --batch-size 64 \
    --steps 1500 --lr 1e-3 --wd 0.1 --warmup 150 --seed 1 --log-every 300 --out "$work/run" --no-report
fi
M="$work/run/model.safetensors"
if [ ! -f "$work/real.image.npy" ]; then
  "$B/clipcl" embed --model "$M" --images "$work/fm/test" --out "$work/real"
  # every 30th training image: 2,000 image queries
  (cd "$work/fm" && tail -n +2 train.csv | cut -d, -f1 | awk 'NR % 30 == 1' > "$work/query_images.txt")
  sed -i "s#^#$work/fm/#" "$work/query_images.txt"
  while read -r c; do
    for t in "a photo of a %s" "a picture of a %s" "an image of a %s" "a product photo of a %s" "a small photo of a %s" \
             "a black and white photo of a %s" "a low resolution photo of a %s" "a grayscale image of a %s" \
             "a centred photo of a %s" "there is a %s in this picture"; do
      printf "$t\n" "$c"
    done
  done < "$work/fm/classnames.txt" > "$work/query_texts.txt"
  "$B/clipcl" embed --model "$M" --images "$work/query_images.txt" --texts "$work/query_texts.txt" --out "$work/q"
fi
# zero-shot accuracy of the model, so the "real" embeddings are known to mean something
[ -f "$work/zeroshot.json" ] || "$B/clipcl" zeroshot --model "$M" --data "$work/fm/test" \
  --classnames "$work/fm/classnames.txt" --json "$work/zeroshot.json" | grep -E "top-1|top-5"
"$B/bench/bench_ann" --n "$rows" --real "$work/real.image.npy" --real-queries "$work/q.image.npy" \
  --text-queries "$work/q.text.npy" --queries 1000 --types "$types" --nprobe "${NPROBE:-8,16,32,64,128}" \
  --dir "$work/index_clustered" \
  --json "$work/ann_clustered.json"
"$B/bench/bench_ann" --n "$rows" --data uniform --queries 1000 --types "${UNIFORM_TYPES:-IVF4096,Flat}" \
  --nprobe 16,64,256 --dir "$work/index_uniform" --json "$work/ann_uniform.json"

#!/usr/bin/env bash
# run_serve_load.sh: `clipcl serve` under load and hostile input, for
# bench/RESULTS.md: the 10,000 Fashion-MNIST test images indexed with the
# 512-dim model of bench/run_ann_bench.sh (run that first, or give a model),
# served on a free loopback port; bench/serve_load.py then sends 8 clients x
# 1,000 queries (texts, images, embeddings; 10 results each with their
# images inline), 200 malformed requests (one of them a 100 MB body) and
# checks the server still answers with its memory where it was. Also takes
# the README's screenshot of the page (docs/search_page.png) with headless
# Chromium.
#   bench/run_serve_load.sh [WORKDIR] [MODEL]   (default /tmp/clipcl_ann, WORKDIR/run/model.safetensors)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/clipcl_ann}; M=${2:-$work/run/model.safetensors}
B=${BUILD:-build}
PY=${PYTHON:-/usr/bin/python3}
[ -f "$M" ] || { echo "no model $M: run bench/run_ann_bench.sh first" >&2; exit 1; }
[ -f "$work/fm_test.index/index.json" ] || "$B/clipcl" index --model "$M" --images "$work/fm/test" --out "$work/fm_test.index"
"$B/clipcl" serve --index "fashion=$work/fm_test.index" --model "$M" --port 0 --quiet >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
port=
for _ in $(seq 1 600); do
  port=$(sed -n 's#^serving on http://127.0.0.1:\([0-9]*\)/$#\1#p' "$work/serve.out")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$work/serve.err"; exit 1; }
"$PY" bench/serve_load.py --url "http://127.0.0.1:$port" --index fashion --clients 8 --queries 1000 \
  --malformed 200 --images "$work/fm/train/sneaker" --root "$work/fm/test" --max-rss-growth 16 --rounds 5 \
  --json "$work/serve_load.json"
CHROME=$(command -v chromium || command -v chromium-browser || true)
if [ -n "$CHROME" ]; then
  mkdir -p docs
  "$CHROME" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --user-data-dir="$work/chrome" \
    --hide-scrollbars --window-size=1000,640 --virtual-time-budget=15000 --screenshot="$work/search_page.png" \
    "http://127.0.0.1:$port/?q=a+leather+ankle+boot&k=30" 2>/dev/null
  cp "$work/search_page.png" docs/search_page.png
  ls -l docs/search_page.png
fi
kill -TERM $pid
st=0
wait $pid || st=$?
trap - EXIT
[ $st -eq 0 ] || { echo "clipcl serve exited with status $st after SIGTERM" >&2; tail -3 "$work/serve.err" >&2; exit 1; }

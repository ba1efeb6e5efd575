#!/usr/bin/env bash
# test_serve.sh: `clipcl serve` end to end on a free loopback port, with a
# random clipcl-micro model and two small indexes (a captioned CSV manifest,
# with a FAISS HNSW index when FAISS is built in, and an image folder
# searched exactly). Checks:
#  - clip-retrieval's own ClipClient (clip_retrieval/clip_client.py read from
#    the pinned PyPI wheel scripts/bootstrap downloads into build/pydeps; no
#    other module of the package is imported) queries by text and by image:
#    the answer is the array clip-retrieval returns (id, similarity, caption,
#    image_path, image as base64 of the file), best first, and holds the
#    rows `clipcl search` ranks first for the same queries;
#  - the API: /indices-list, num_result_ids past num_images (id and
#    similarity only), modality "text" on the captions, embedding_input,
#    query_id, image_url file:// inside the collection (and refused outside
#    it or over http), deduplicate on a duplicated image, /metadata,
#    /config.json, CORS headers and the OPTIONS preflight, /image bytes,
#    /healthz, /metrics counters and latency histogram;
#  - bench/serve_load.py at a small size: 4 clients x 40 queries without an
#    error, 60 hostile requests (bad JSON, wrong types, huge numbers, base64
#    garbage, ../ paths, a 100 MB body, ...) each answered 4xx with a JSON
#    error, the server still answering afterwards;
#  - headless Chromium (Debian's chromium) loads the page with ?q=, runs the
#    query, and the rendered DOM holds one result card per hit;
#  - SIGTERM stops the server cleanly (exit 0).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/eval_cli_common.sh"

WHEEL=$(ls "$BUILD"/pydeps/clip_retrieval-*.whl "$SRC"/build/pydeps/clip_retrieval-*.whl 2>/dev/null | head -n 1)
[ -n "$WHEEL" ] || { echo "FAIL: clip-retrieval wheel missing: run scripts/bootstrap deps"; exit 1; }
"$PY" -c "import requests" 2>/dev/null || { echo "FAIL: $PY cannot import requests (python3-requests)"; exit 1; }
CHROME=$(command -v chromium || command -v chromium-browser || true)

S="$T/s"
make_synth "$S"
cp "$S/train/000003.png" "$S/train/dup_of_3.png"
printf 'filepath,title,url\n' > "$S/manifest.csv"
tail -n +2 "$S/train.csv" | awk -F, '{ print $1 "," $2 ",http://example.com/" NR }' >> "$S/manifest.csv"
echo "train/dup_of_3.png,$(sed -n 5p "$S/train.csv" | cut -d, -f2),http://example.com/dup" >> "$S/manifest.csv"
nrows=$(($(wc -l < "$S/manifest.csv") - 1))
$C index --model "$M" --data "$S/manifest.csv" --out "$T/captioned" --index-type HNSW16 >"$T/i1.out" 2>&1 ||
  $C index --model "$M" --data "$S/manifest.csv" --out "$T/captioned" >"$T/i1.out" 2>&1 ||
  { echo "FAIL: clipcl index"; cat "$T/i1.out"; exit 1; }
$C index --model "$M" --images "$S/zeroshot/pair" --out "$T/shapes" >/dev/null 2>&1 || { echo "FAIL: clipcl index"; exit 1; }

$C serve --index "$T/captioned,shapes=$T/shapes" --model "$M" --port 0 --threads 4 >"$T/serve.out" 2>"$T/serve.err" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$T"' EXIT
port=
for _ in $(seq 1 200); do
  port=$(sed -n 's#^serving on http://127.0.0.1:\([0-9]*\)/$#\1#p' "$T/serve.out")
  [ -n "$port" ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.1
done
check "the server starts on a free port and says where" test -n "$port"
[ -n "$port" ] || { cat "$T/serve.err"; finish; exit 1; }
URL="http://127.0.0.1:$port"

# what `clipcl search` ranks first, for the client checks below
q_img="$S/train/000007.png"
$C search --index "$T/captioned" --model "$M" --text "a red circle" -k 5 >"$T/cli_text.out" 2>&1
$C search --index "$T/captioned" --model "$M" --image "$q_img" -k 5 >"$T/cli_image.out" 2>&1

check "ClipClient (clip-retrieval $(basename "$WHEEL" | cut -d- -f2)) by text and by image" \
  "$PY" - "$WHEEL" "$URL" "$S" "$q_img" "$T/cli_text.out" "$T/cli_image.out" "$nrows" <<'PYEOF'
import base64, importlib.util, os, re, sys, zipfile
wheel, url, s, q_img, cli_text, cli_image, nrows = sys.argv[1:8]
# only clip_retrieval/clip_client.py: its imports are the standard library and requests
src = zipfile.ZipFile(wheel).read("clip_retrieval/clip_client.py").decode()
spec = importlib.util.spec_from_loader("clip_client", loader=None)
cc = importlib.util.module_from_spec(spec)
exec(compile(src, "clip_retrieval/clip_client.py", "exec"), cc.__dict__)
client = cc.ClipClient(url=url + "/knn-service", indice_name="captioned", num_images=5, deduplicate=False)
# its defaults (deduplicate, safety model, aesthetic score) are accepted too
assert isinstance(cc.ClipClient(url=url + "/knn-service", indice_name="captioned").query(text="a star"), list)
def cli_paths(f):
    return [os.path.realpath(l.split()[2]) for l in open(f) if re.match(r"^ *\d+  -?\d\.\d{4}  /", l)]
for name, res, cli in (("text", client.query(text="a red circle"), cli_text),
                       ("image", client.query(image=q_img), cli_image)):
    assert isinstance(res, list) and len(res) == 5, (name, res)
    for r in res:
        assert set(r) >= {"id", "similarity", "caption", "image_path", "url", "image"}, (name, sorted(r))
        assert isinstance(r["id"], int) and 0 <= r["id"] < int(nrows) and isinstance(r["similarity"], float)
        with open(os.path.join(s, r["image_path"]), "rb") as f:
            assert base64.b64decode(r["image"]) == f.read(), "image is the file, base64"
    sims = [r["similarity"] for r in res]
    assert sims == sorted(sims, reverse=True), sims
    got = [os.path.realpath(os.path.join(s, r["image_path"])) for r in res]
    want = cli_paths(cli)
    # the rows clipcl search ranks first (a near-tie may swap two neighbours)
    assert got[0] == want[0] and (got == want or sum(a != b for a, b in zip(got, want)) <= 2), (name, got, want)
    print("   %s: %d results, best %s (%.4f)" % (name, len(res), res[0]["image_path"], res[0]["similarity"]))
img = client.query(image=q_img)
assert img[0]["image_path"] == os.path.relpath(q_img, s) and img[0]["similarity"] > 0.998, img[0]["similarity"]
PYEOF

check "the API: shapes, modalities, query kinds, metadata, CORS, images, metrics" \
  "$PY" - "$URL" "$S" "$nrows" <<'PYEOF'
import base64, json, os, sys, urllib.error, urllib.request
url, s, nrows = sys.argv[1], sys.argv[2], int(sys.argv[3])
def req(path, body=None, method=None, ctype="text/plain"):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    r = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(r) as f:
            return f.status, dict(f.headers), f.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
def knn(**kw):
    st, h, b = req("/knn-service", dict({"indice_name": "captioned", "num_images": 3}, **kw))
    return st, json.loads(b)
st, h, b = req("/indices-list")
assert st == 200 and json.loads(b) == ["captioned", "shapes"] and h["Access-Control-Allow-Origin"] == "*", (st, b, h)
st, r = knn(text="a red circle", num_images=3, num_result_ids=8)
assert st == 200 and len(r) == 8, (st, r)
assert all({"image_path", "caption", "image"} <= set(x) for x in r[:3]) and all(set(x) == {"id", "similarity"} for x in r[3:])
st, r2 = knn(text="a red circle", num_images=3, num_result_ids=8, deduplicate=False)
assert [x["id"] for x in r2] == [x["id"] for x in r], "deduplicate defaults to false"
st, t = knn(text="a red circle", modality="text")
assert st == 200 and len(t) == 3 and all("caption" in x for x in t)
st, t = knn(text="a red circle", modality="text", indice_name="shapes")
assert st == 400 and "caption" in t["error"], t
# embedding_input: a stored row's own image finds itself first
row = r[0]
st, e = knn(image=base64.b64encode(open(os.path.join(s, row["image_path"]), "rb").read()).decode(), num_images=1)
st2, e2 = knn(query_id=row["id"], num_images=1)
assert st == 200 and st2 == 200 and e[0]["id"] == row["id"] == e2[0]["id"], (e, e2)
st, emb = knn(embedding_input=[1.0] + [0.0] * 127, num_images=2)
assert st == 200 and len(emb) == 2
# image_url: file:// inside the collection only
st, u = knn(image_url="file://" + os.path.join(os.path.realpath(s), row["image_path"]), num_images=1)
assert st == 200 and u[0]["id"] == row["id"], u
st, u = knn(image_url="file:///etc/hostname")
assert st == 403 and "inside the collection" in u["error"], u
st, u = knn(image_url="https://example.com/x.jpg")
assert st == 400 and "fetches nothing" in u["error"], u
# deduplicate: row 3 and its duplicate are one result
q = base64.b64encode(open(os.path.join(s, "train/000003.png"), "rb").read()).decode()
st, d0 = knn(image=q, num_images=4, deduplicate=False)
st, d1 = knn(image=q, num_images=4, deduplicate=True)
p0, p1 = [x["image_path"] for x in d0], [x["image_path"] for x in d1]
assert {"train/000003.png", "train/dup_of_3.png"} <= set(p0[:2]), p0
# (this random model's images all lie within 0.94 of each other: only the first stays)
assert p1[0] == p0[0] and len({"train/000003.png", "train/dup_of_3.png"} & set(p1)) == 1 and len(p1) < len(p0), (p0, p1)
# the body is JSON whatever the Content-Type
st, h, b = req("/knn-service", {"indice_name": "captioned", "num_images": 1, "text": "x"}, ctype="application/x-www-form-urlencoded")
assert st == 200
st, h, b = req("/metadata", {"indice_name": "captioned", "ids": [0, nrows - 1]})
m = json.loads(b)
assert st == 200 and [x["id"] for x in m] == [0, nrows - 1] and m[1]["metadata"]["url"] == "http://example.com/dup"
assert base64.b64decode(m[1]["metadata"]["image"]) == open(os.path.join(s, "train/dup_of_3.png"), "rb").read()
st, h, b = req("/config.json")
c = json.loads(b)
assert st == 200 and c["defaultIndex"] == "captioned" and c["defaultBackend"].startswith("http://127.0.0.1:"), c
st, h, b = req("/knn-service", method="OPTIONS")
assert st == 204 and "POST" in h["Access-Control-Allow-Methods"], (st, h)
st, h, b = req("/image?index=captioned&id=%d" % (nrows - 1))
assert st == 200 and h["Content-Type"] == "image/png" and b == open(os.path.join(s, "train/dup_of_3.png"), "rb").read()
st, h, b = req("/image?index=shapes&id=99999")
assert st == 400 and "error" in json.loads(b)
st, h, b = req("/healthz")
assert st == 200 and json.loads(b) == "ok"
st, h, b = req("/")
assert st == 200 and h["Content-Type"].startswith("text/html") and b"knn-service" in b
st, h, b = req("/metrics")
text = b.decode()
for want in ('clipcl_http_requests_total{route="knn-service",code="2xx"}', 'clipcl_knn_latency_seconds_bucket{le="+Inf"}',
             'clipcl_knn_queries_total{input="query_id"} 1', 'clipcl_http_errors_total{class="4xx"}',
             "clipcl_resident_memory_bytes", 'clipcl_index_rows{index="shapes"} 48'):
    assert want in text, want
print("   %d result rows checked" % nrows)
PYEOF

"$PY" "$SRC/bench/serve_load.py" --url "$URL" --index shapes --clients 4 --queries 40 --malformed 60 \
  --images "$S/zeroshot/pair" --root "$S/zeroshot/pair" --json "$T/load.json" >"$T/load.out" 2>&1
rc=$?
check "4 clients x 40 queries, 60 hostile requests each 4xx, still up" test $rc -eq 0
[ $rc -eq 0 ] || tail -n 30 "$T/load.out"
"$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print('   %d requests, p50 %.1f ms, p99 %.1f ms; resident %s -> %s MB' % (d['requests'], d['latency_ms']['p50'], d['latency_ms']['p99'], d['rss_mb_before'], d['rss_mb_after']))" "$T/load.json" 2>/dev/null

if [ -n "$CHROME" ]; then
  timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --user-data-dir="$T/chrome" \
    --virtual-time-budget=15000 --dump-dom "$URL/?q=a+red+circle&index=shapes&k=12" >"$T/dom.html" 2>"$T/chrome.err"
  check "headless Chromium: the page ran the query and shows 12 result cards" "$PY" - "$T/dom.html" <<'PYEOF'
import re, sys
dom = open(sys.argv[1], encoding="utf-8").read()
cards = re.findall(r'<div class="card" data-id="(\d+)" data-score="([-0-9.e]+)"', dom)
assert len(cards) == 12, (len(cards), dom[-2000:])
scores = [float(s) for _, s in cards]
assert scores == sorted(scores, reverse=True), scores
assert 'data-state="done"' in dom and "12 results for" in dom
assert re.search(r'<img[^>]+src="image\?index=shapes&amp;id=\d+"', dom)
print("   %d cards, best score %.4f" % (len(cards), scores[0]))
PYEOF
else
  check "headless Chromium available (Debian's chromium; scripts/bootstrap installs it)" false
fi

kill -TERM $pid
wait $pid
rc=$?
check "SIGTERM stops the server cleanly" test $rc -eq 0
grep -q "stopping" "$T/serve.err" || check "the server said it stops" false
finish

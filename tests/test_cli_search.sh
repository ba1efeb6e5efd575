#!/usr/bin/env bash
# test_cli_search.sh: `clipcl index` and `clipcl search` end to end with a
# random clipcl-micro model. Checks: building an index from one class folder
# and then the whole set embeds only the new images (the counters it prints),
# an unreadable image is skipped and named, a run with nothing new leaves
# the index files untouched; the layout is clip-retrieval's (img_emb/ float16
# parts, metadata/ CSV with paths relative to the collection root) and its
# rows are the `clipcl embed` rows of the same files (to float16 rounding);
# text and image queries rank as numpy does on the stored rows (rank by
# rank, near-ties tolerated), on the host and with CLIPCL_SEARCH=device; an
# image finds itself first with score 1; several queries at once; the HTML
# page is well-formed XML with one thumbnail per hit whose URL decodes to
# the printed path; a CSV manifest keeps captions and extra columns and
# embeds the captions (--captions ranks them as numpy does); WebDataset
# shards index their members with the json "url"; --part-rows splits parts;
# a moved collection is found again without embedding anything; --prune
# drops vanished files; a FAISS index (when built in) answers as exact
# search does on these few rows; refusals (another model for index and for
# search, a missing index, an unreadable query image, --html with two
# queries, k = 0) give one line and a non-zero exit, the index unchanged.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/eval_cli_common.sh"

S="$T/s"
make_synth "$S"
cp -r "$S/zeroshot/pair" "$T/imgs"
: > "$T/imgs/blue_star/zz_empty.png"
IX="$T/index"
nall=$(find "$T/imgs" -name '0*.png' | wc -l)
nblue=$(find "$T/imgs/blue_star" -name '0*.png' | wc -l)

$C index --model "$M" --images "$T/imgs/blue_star" --out "$IX" >"$T/i1.out" 2>"$T/i1.err"
check "index of one class folder" bash -c "grep -q 'embedded $nblue new images (0 already indexed, 1 unreadable, 0 pruned); $nblue images in the index' '$T/i1.out'"
check "the unreadable image is named once" bash -c "[ \$(grep -c 'skipped .*zz_empty.png' '$T/i1.err') -eq 1 ]"
$C index --model "$M" --images "$T/imgs" --out "$IX" >"$T/i2.out" 2>/dev/null
check "adding the whole set embeds only the new images" \
  bash -c "grep -q 'embedded $((nall - nblue)) new images ($nblue already indexed, 1 unreadable, 0 pruned); $nall images in the index' '$T/i2.out'"
cp -r "$IX" "$T/index.before"
$C index --model "$M" --images "$T/imgs" --out "$IX" >"$T/i3.out" 2>/dev/null
check "nothing new: nothing embedded, files untouched" \
  bash -c "grep -q 'embedded 0 new images ($nall already indexed' '$T/i3.out' && diff -r '$IX' '$T/index.before' >/dev/null"

# the stored rows (float16 parts, in order) with their absolute paths
cat > "$T/rows.py" <<'PYEOF'
import csv, json, os
import numpy as np
def rows(ix, text=False):
    meta = json.load(open(ix + "/index.json"))
    root = os.path.join(ix, meta["root"]) if "root" in meta else None
    X, paths, cols = [], [], []
    for p in meta["parts"]:
        n = "%04d" % p["id"]
        X.append(np.load("%s/%s/%s_%s.npy" % (ix, "text_emb" if text else "img_emb", "text_emb" if text else "img_emb", n)))
        with open("%s/metadata/metadata_%s.csv" % (ix, n), newline="", encoding="utf-8", errors="surrogateescape") as f:
            r = list(csv.DictReader(f))
        assert len(r) == p["count"] == len(X[-1]), (len(r), p, len(X[-1]))
        cols.extend(r)
        paths.extend(os.path.realpath(os.path.join(root, d["image_path"])) for d in r)
    return meta, np.concatenate(X).astype(np.float64), paths, cols
PYEOF

printf 'a red circle\na blue star in the top left\n' > "$T/q.txt"
$C embed --model "$M" --images "$T/imgs" --texts "$T/q.txt" --out "$T/e" >/dev/null 2>&1
check "clip-retrieval layout; rows = embed rows of the same files" "$PY" - "$IX" "$T/e" "$nall" "$T" <<'PYEOF'
import os, sys
sys.path.insert(0, sys.argv[4])
import numpy as np
from rows import rows
ix, e, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
meta, X, paths, cols = rows(ix)
assert meta["format"] == "clipcl-index" and meta["version"] == 2 and meta["count"] == n and meta["dim"] == 128, meta
assert meta["root"] == "../imgs" and not meta["text_embeddings"], meta
assert np.load(ix + "/img_emb/img_emb_%04d.npy" % meta["parts"][0]["id"]).dtype == np.float16
assert all(not c["image_path"].startswith("/") for c in cols), "paths are relative to the root"
E = np.load(e + ".image.npy")
epaths = [os.path.realpath(l.rstrip("\n")) for l in open(e + ".image.txt")]
assert len(paths) == len(X) == n == len(E), (len(paths), len(X), n, len(E))
assert sorted(paths) == sorted(epaths)
row = {p: i for i, p in enumerate(epaths)}
d = max(abs(X[i] - E[row[p]]).max() for i, p in enumerate(paths))
assert d < 1e-3, d
assert abs(np.linalg.norm(X, axis=1) - 1).max() < 2e-3
PYEOF

# the checker: printed ranks against numpy on the stored rows
cat > "$T/scheck.py" <<'PYEOF'
import os, re, sys
sys.path.insert(0, os.path.dirname(sys.argv[0]))
import numpy as np
from rows import rows
out, ix, e, which, k = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
captions = len(sys.argv) > 6
meta, X, paths, cols = rows(ix, captions)
E = np.load(e + ".image.npy").astype(np.float64)
epaths = [os.path.realpath(l.rstrip("\n")) for l in open(e + ".image.txt")]
if which.startswith("text:"):
    q = np.load(e + ".text.npy").astype(np.float64)[int(which[5:])]
else:
    q = E[epaths.index(os.path.realpath(which[6:]))]
s = X @ q / np.linalg.norm(q)
row = {p: i for i, p in enumerate(paths)}
best = sorted(s, reverse=True)
hits = [l.split() for l in open(out) if re.match(r"^ *\d+  -?\d\.\d{4}  /", l)]
assert len(hits) == k, (len(hits), k)
for r, (rank, score, path) in enumerate(hits):
    assert int(rank) == r + 1
    got = s[row[os.path.realpath(path)]]
    # the hit at rank r scores the r-th best (a near-tie may swap two paths)
    assert abs(got - best[r]) < 1e-5, (r, path, got, best[r])
    assert abs(float(score) - got) < 6e-5, (score, got)
print("   %s: %d hits as numpy ranks them (best %.4f)" % (which, k, best[0]))
PYEOF

$C search --index "$IX" --model "$M" --text "a red circle" -k 5 --html "$T/page.html" >"$T/s1.out" 2>"$T/s1.err"
check "text search runs" test $? -eq 0
check "text query ranks as numpy (host)" bash -c "grep -q 'scored on the host' '$T/s1.out' && '$PY' '$T/scheck.py' '$T/s1.out' '$IX' '$T/e' text:0 5"
CLIPCL_SEARCH=device $C search --index "$IX" --model "$M" --text "a red circle" -k 5 >"$T/s2.out" 2>&1
check "text query ranks as numpy (device)" bash -c "grep -q 'scored on the device' '$T/s2.out' && '$PY' '$T/scheck.py' '$T/s2.out' '$IX' '$T/e' text:0 5"
img=$(find "$T/imgs/red_circle" -name '0*.png' | sort | tail -n 1)
$C search --index "$IX" --model "$M" --image "$img" -k 7 >"$T/s3.out" 2>&1
check "image query ranks as numpy and finds itself first" \
  bash -c "'$PY' '$T/scheck.py' '$T/s3.out' '$IX' '$T/e' 'image:$img' 7 && grep -Eq '^   1  (1\.000[01]|0\.999[89])  $(realpath "$img")\$' '$T/s3.out'"
$C search --index "$IX" --model "$M" --text "a red circle" --image "$img" --text "a blue star in the top left" -k 3 \
  >"$T/s4.out" 2>&1
check "three queries at once" bash -c "[ \$(grep -c '^text \|^image ' '$T/s4.out') -eq 3 ] && [ \$(grep -c '^   [123]  ' '$T/s4.out') -eq 9 ]"
sed -n '/^text "a blue star/,$p' "$T/s4.out" > "$T/s4b.out"
check "the third query ranks as numpy" "$PY" "$T/scheck.py" "$T/s4b.out" "$IX" "$T/e" text:1 3

check "the HTML page parses and shows the hits" "$PY" - "$T/page.html" "$T/s1.out" <<'PYEOF'
import re, sys, urllib.parse
import xml.etree.ElementTree as ET
page, out = sys.argv[1:3]
text = open(page, encoding="utf-8").read()
assert text.startswith("<!DOCTYPE html>")
root = ET.fromstring(text)
assert "a red circle" in root.find("head/title").text
hits = [l.split() for l in open(out) if re.match(r"^ *\d+  -?\d\.\d{4}  /", l)]
items = root.findall("body/ol/li")
assert len(items) == len(hits) == 5, (len(items), len(hits))
for li, (rank, score, path) in zip(items, hits):
    src = li.find("a/img").get("src")
    assert src.startswith("file://") and urllib.parse.unquote(src[7:]) == path, (src, path)
    assert abs(float(li.get("data-score")) - float(score)) < 1e-4
PYEOF

# a CSV manifest: captions embedded, extra columns kept, parts of 7 rows
awk -F, 'NR == 1 { print $0 ",url,note" } NR > 1 { print $0 ",http://example.com/" NR ".png,\"n, " NR "\"" }' \
  "$S/train.csv" > "$S/train_url.csv"
CX="$T/index_csv"
$C index --model "$M" --data "$S/train_url.csv" --out "$CX" --part-rows 7 >"$T/c1.out" 2>&1
ncsv=$(($(wc -l < "$S/train.csv") - 1))
check "CSV manifest indexed in parts of 7" bash -c "grep -q 'embedded $ncsv new images' '$T/c1.out' && [ -f '$CX/img_emb/img_emb_0002.npy' ] && [ -f '$CX/text_emb/text_emb_0002.npy' ]"
check "metadata keeps caption, url and the other columns" "$PY" - "$CX" "$S/train_url.csv" "$T" <<'PYEOF'
import csv, sys
sys.path.insert(0, sys.argv[3])
from rows import rows
meta, X, paths, cols = rows(sys.argv[1])
src = list(csv.DictReader(open(sys.argv[2])))
assert meta["columns"] == ["image_path", "caption", "url", "note"] and meta["text_embeddings"], meta
assert meta["root"].endswith("/s"), meta["root"]
assert [(c["image_path"], c["caption"], c["url"], c["note"]) for c in cols] == \
       [(r["filepath"], r["title"], r["url"], r["note"]) for r in src]
PYEOF
$C embed --model "$M" --images "$S/train" --texts "$T/q.txt" --out "$T/ec" >/dev/null 2>&1
$C search --index "$CX" --model "$M" --text "a red circle" -k 4 --captions >"$T/c2.out" 2>&1
check "--captions ranks the caption embeddings as numpy" bash -c "grep -q '4 of $ncsv captions' '$T/c2.out' && '$PY' '$T/scheck.py' '$T/c2.out' '$CX' '$T/ec' text:0 4 captions"

# WebDataset shards: members as shard.tar/key.png, url from the json
"$PY" - "$S" <<'PYEOF'
import csv, io, json, os, sys, tarfile
s = sys.argv[1]
rows = list(csv.DictReader(open(s + "/train.csv")))
os.makedirs(s + "/shards", exist_ok=True)
for sh in range(2):
    with tarfile.open("%s/shards/%05d.tar" % (s, sh), "w") as t:
        for i, r in enumerate(rows[sh * 6:(sh + 1) * 6]):
            key = "%05d%04d" % (sh, i)
            js = json.dumps({"url": "http://example.com/%s.png" % key, "caption": r["title"]}).encode()
            for ext, data in [("png", open(s + "/" + r["filepath"], "rb").read()), ("json", js)]:
                ti = tarfile.TarInfo("%s.%s" % (key, ext))
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
PYEOF
WX="$T/index_wds"
$C index --model "$M" --data "$S/shards/{00000..00001}.tar" --out "$WX" >"$T/w1.out" 2>&1
$C index --model "$M" --data "$S/shards/{00000..00001}.tar" --out "$WX" >"$T/w2.out" 2>&1
check "WebDataset shards indexed, then skipped as done" bash -c "grep -q 'embedded 12 new images' '$T/w1.out' && grep -q 'embedded 0 new images (12 already indexed' '$T/w2.out'"
check "shard rows: shard.tar/key.png, caption and url from the json" \
  bash -c "grep -q '^00001.tar/000010005.png,[^,]*,http://example.com/000010005.png\$' '$WX/metadata/metadata_0000.csv'"

# the collection moves: nothing embedded again, paths follow
mv "$T/imgs" "$T/imgs_moved"
$C index --model "$M" --images "$T/imgs_moved" --out "$IX" >"$T/m1.out" 2>/dev/null
$C search --index "$IX" --model "$M" --text "a red circle" -k 2 >"$T/m2.out" 2>&1
check "a moved collection: 0 embedded, results under the new place" \
  bash -c "grep -q 'embedded 0 new images ($nall already indexed' '$T/m1.out' && grep -q '^   1  .*/imgs_moved/' '$T/m2.out' && grep -q '\"root\": \"../imgs_moved\"' '$IX/index.json'"
mv "$T/imgs_moved" "$T/imgs"
$C search --index "$IX" --model "$M" --text "a red circle" -k 2 --root "$T/imgs" >"$T/m3.out" 2>&1
check "--root points a search at the collection" grep -q "^   1  [0-9.]*  $T/imgs/" "$T/m3.out"
# --prune
cp -r "$IX" "$T/index.prune"
rm "$T/imgs/blue_star/000000.png"
$C index --model "$M" --images "$T/imgs" --out "$T/index.prune" --prune >"$T/p1.out" 2>/dev/null
check "--prune drops the vanished file" bash -c "grep -q '1 pruned); $((nall - 1)) images in the index' '$T/p1.out' && ! grep -q 'blue_star/000000.png' '$T/index.prune'/metadata/*.csv"

# FAISS (when built in): on these few rows it finds what exact search finds
FX="$T/index_faiss"
if $C index --model "$M" --images "$T/imgs" --out "$FX" --index-type HNSW16 >"$T/f1.out" 2>"$T/f1.err"; then
  $C search --index "$FX" --model "$M" --text "a red circle" -k 5 >"$T/f2.out" 2>&1
  check "HNSW16 index built and searched" bash -c "grep -q 'FAISS index HNSW16 built' '$T/f1.out' && grep -q 'FAISS HNSW16' '$T/f2.out' && ls '$FX'/image_*.index >/dev/null"
  check "FAISS ranks as numpy on these rows" "$PY" "$T/scheck.py" "$T/f2.out" "$FX" "$T/e" text:0 5
else
  check "HNSW16 index built (or FAISS missing from this build)" grep -q "built without FAISS" "$T/f1.err"
fi

# refusals: another model, missing or unreadable inputs
cp -r "$IX" "$T/index.ref"
refuse "index refuses another model" "was built with model" \
  $C index --model "$T/other.safetensors" --images "$T/imgs" --out "$IX"
check "the refused index is untouched" diff -r "$IX" "$T/index.ref"
refuse "search refuses another model" "was built with model" \
  $C search --index "$IX" --model "$T/other.safetensors" --text "a red circle"
refuse "missing index" "index.json missing" $C search --index "$T/noindex" --model "$M" --text "x"
refuse "unreadable query image" "zz_empty.png" \
  $C search --index "$IX" --model "$M" --image "$T/imgs/blue_star/zz_empty.png"
refuse "--html with two queries" "one query" \
  $C search --index "$IX" --model "$M" --text a --text b --html "$T/p2.html"
refuse "k = 0" "-k 0" $C search --index "$IX" --model "$M" --text a -k 0
refuse "index of a missing folder" "nofolder" $C index --model "$M" --images "$T/nofolder" --out "$T/ix2"
refuse "--captions on an index without them" "no caption embeddings" \
  $C search --index "$IX" --model "$M" --text a --captions
out=$($C search --model "$M" --text a 2>&1); rc=$?
check "no --index: usage, exit 2" bash -c "[ $rc -eq 2 ] && printf '%s' \"\$0\" | grep -q 'usage: clipcl search'" "$out"

finish

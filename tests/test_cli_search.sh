#!/usr/bin/env bash
# test_cli_search.sh: `clipcl index` and `clipcl search` end to end with a
# random clipcl-micro model. Checks: building an index from one class folder
# and then the whole set embeds only the new images (the counters it prints),
# an unreadable image is skipped and named, a run with nothing new leaves
# the index files untouched; the stored rows are the `clipcl embed` rows of
# the same files; text and image queries rank as numpy does on the embed
# outputs (rank by rank, near-ties tolerated), on the host and with
# CLIPCL_SEARCH=device; an image finds itself first with score 1; several
# queries at once; the HTML page is well-formed XML with one thumbnail per
# hit whose URL decodes to the printed path; refusals (another model for
# index and for search, a missing index, an unreadable query image, --html
# with two queries, k = 0) give one line and a non-zero exit, the index
# unchanged.
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
check "index of one class folder" bash -c "grep -q 'embedded $nblue new images (0 already indexed, 1 unreadable, 0 missing); $nblue images in the index' '$T/i1.out'"
check "the unreadable image is named once" bash -c "[ \$(grep -c 'skipped .*zz_empty.png' '$T/i1.err') -eq 1 ]"
$C index --model "$M" --images "$T/imgs" --out "$IX" >"$T/i2.out" 2>/dev/null
check "adding the whole set embeds only the new images" \
  bash -c "grep -q 'embedded $((nall - nblue)) new images ($nblue already indexed, 1 unreadable, 0 missing); $nall images in the index' '$T/i2.out'"
cp -r "$IX" "$T/index.before"
$C index --model "$M" --images "$T/imgs" --out "$IX" >"$T/i3.out" 2>/dev/null
check "nothing new: nothing embedded, files untouched" \
  bash -c "grep -q 'embedded 0 new images ($nall already indexed' '$T/i3.out' && diff -r '$IX' '$T/index.before' >/dev/null"

printf 'a red circle\na blue star in the top left\n' > "$T/q.txt"
$C embed --model "$M" --images "$T/imgs" --texts "$T/q.txt" --out "$T/e" >/dev/null 2>&1
check "index rows = embed rows of the same files" "$PY" - "$IX" "$T/e" "$nall" <<'PYEOF'
import json, os, sys
import numpy as np
ix, e, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
meta = json.load(open(ix + "/index.json"))
assert meta["format"] == "clipcl-index" and meta["count"] == n and meta["dim"] == 128, meta
g = meta["generation"]
X = np.load("%s/embeddings-%d.npy" % (ix, g))
paths = [l.rstrip("\n") for l in open("%s/paths-%d.txt" % (ix, g), encoding="utf-8")]
E = np.load(e + ".image.npy")
epaths = [os.path.realpath(l.rstrip("\n")) for l in open(e + ".image.txt")]
assert len(paths) == len(X) == n == len(E), (len(paths), len(X), n, len(E))
assert all(os.path.isabs(p) for p in paths) and sorted(paths) == sorted(epaths)
row = {p: i for i, p in enumerate(epaths)}
d = max(abs(X[i] - E[row[p]]).max() for i, p in enumerate(paths))
assert d < 1e-6, d
PYEOF

# the checker: printed ranks against numpy on the embed outputs
cat > "$T/scheck.py" <<'PYEOF'
import os, re, sys
import numpy as np
out, e, which, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
E = np.load(e + ".image.npy").astype(np.float64)
epaths = [os.path.realpath(l.rstrip("\n")) for l in open(e + ".image.txt")]
row = {p: i for i, p in enumerate(epaths)}
if which.startswith("text:"):
    q = np.load(e + ".text.npy").astype(np.float64)[int(which[5:])]
else:
    q = E[row[os.path.realpath(which[6:])]]
s = E @ q / np.linalg.norm(q)
best = sorted(s, reverse=True)
hits = [l.split() for l in open(out) if re.match(r"^ *\d+  -?\d\.\d{4}  /", l)]
assert len(hits) == k, (len(hits), k)
for r, (rank, score, path) in enumerate(hits):
    assert int(rank) == r + 1
    got = s[row[path]]
    # the hit at rank r scores the r-th best (a near-tie may swap two paths)
    assert abs(got - best[r]) < 1e-5, (r, path, got, best[r])
    assert abs(float(score) - got) < 6e-5, (score, got)
print("   %s: %d hits as numpy ranks them (best %.4f)" % (which, k, best[0]))
PYEOF

$C search --index "$IX" --model "$M" --text "a red circle" -k 5 --html "$T/page.html" >"$T/s1.out" 2>"$T/s1.err"
check "text search runs" test $? -eq 0
check "text query ranks as numpy (host)" bash -c "grep -q 'scored on the host' '$T/s1.out' && '$PY' '$T/scheck.py' '$T/s1.out' '$T/e' text:0 5"
CLIPCL_SEARCH=device $C search --index "$IX" --model "$M" --text "a red circle" -k 5 >"$T/s2.out" 2>&1
check "text query ranks as numpy (device)" bash -c "grep -q 'scored on the device' '$T/s2.out' && '$PY' '$T/scheck.py' '$T/s2.out' '$T/e' text:0 5"
img=$(find "$T/imgs/red_circle" -name '0*.png' | sort | tail -n 1)
$C search --index "$IX" --model "$M" --image "$img" -k 7 >"$T/s3.out" 2>&1
check "image query ranks as numpy and finds itself first" \
  bash -c "'$PY' '$T/scheck.py' '$T/s3.out' '$T/e' 'image:$img' 7 && grep -q '^   1  1.0000  $(realpath "$img")\$' '$T/s3.out'"
$C search --index "$IX" --model "$M" --text "a red circle" --image "$img" --text "a blue star in the top left" -k 3 \
  >"$T/s4.out" 2>&1
check "three queries at once" bash -c "[ \$(grep -c '^text \|^image ' '$T/s4.out') -eq 3 ] && [ \$(grep -c '^   [123]  ' '$T/s4.out') -eq 9 ]"
sed -n '/^text "a blue star/,$p' "$T/s4.out" > "$T/s4b.out"
check "the third query ranks as numpy" "$PY" "$T/scheck.py" "$T/s4b.out" "$T/e" text:1 3

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

# refusals: another model, missing or unreadable inputs
refuse "index refuses another model" "was built with model" \
  $C index --model "$T/other.safetensors" --images "$T/imgs" --out "$IX"
check "the refused index is untouched" diff -r "$IX" "$T/index.before"
refuse "search refuses another model" "was built with model" \
  $C search --index "$IX" --model "$T/other.safetensors" --text "a red circle"
refuse "missing index" "index.json missing" $C search --index "$T/noindex" --model "$M" --text "x"
refuse "unreadable query image" "zz_empty.png" \
  $C search --index "$IX" --model "$M" --image "$T/imgs/blue_star/zz_empty.png"
refuse "--html with two queries" "one query" \
  $C search --index "$IX" --model "$M" --text a --text b --html "$T/p2.html"
refuse "k = 0" "-k 0" $C search --index "$IX" --model "$M" --text a -k 0
refuse "index of a missing folder" "nofolder" $C index --model "$M" --images "$T/nofolder" --out "$T/ix2"
out=$($C search --model "$M" --text a 2>&1); rc=$?
check "no --index: usage, exit 2" bash -c "[ $rc -eq 2 ] && printf '%s' \"\$0\" | grep -q 'usage: clipcl search'" "$out"

finish

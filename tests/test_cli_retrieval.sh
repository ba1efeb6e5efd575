#!/usr/bin/env bash
# test_cli_retrieval.sh: `clipcl retrieval` end to end with a random
# clipcl-micro model on a manifest built here from the synthetic set: rows
# shuffled, several captions per image (not adjacent), one caption text
# shared by many images (exact ties among captions), a byte-identical copy
# of an image (exact ties among images), a quoted caption with a comma, an
# empty caption and a missing image (both skipped and named). Recall@1/5/10
# both ways and the mean and median ranks are recomputed here by brute force
# from `clipcl embed` outputs, with the scores summed in float32 in the
# library's order (so they are the same bits) and ties broken by the lower
# index, and must match the JSON to 1e-12. Also: JSON keys, refusals.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/eval_cli_common.sh"

S="$T/s"
make_synth "$S"
Z="$S/zeroshot"
mkdir -p "$Z/extra"
cp "$Z/pair/red_circle/$(ls "$Z/pair/red_circle" | head -n 1)" "$Z/extra/copy.png"

"$PY" - "$Z" <<'PYEOF'
import csv, random, sys
z = sys.argv[1]
rows = list(csv.DictReader(open(z + "/retrieval.csv", encoding="utf-8")))
rng = random.Random(5)
rng.shuffle(rows)
out = [(r["filepath"], r["title"]) for r in rows]
# second captions for every third image, appended later in the file
out += [(r["filepath"], "a blue star") for r in rows[::3]]
out.insert(7, ("extra/copy.png", 'a copy, "quoted"'))
out.insert(50, ("extra/copy.png", "a copy"))  # two captions: the tie order moves the mean rank
out.insert(20, (rows[0]["filepath"], ""))                  # empty caption: skipped
out.insert(30, ("extra/missing.png", "a missing image"))   # missing image: skipped
out.insert(40, (rows[2]["filepath"], "a third caption for this image"))
with open(z + "/pairs.csv", "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["filepath", "title"])
    w.writerows(out)
PYEOF
nrows=$(($(wc -l < "$Z/pairs.csv") - 1))

$C retrieval --model "$M" --data "$Z/pairs.csv" --max-bad-fraction 0.05 --json "$T/r.json" >"$T/r.out" 2>"$T/r.err"
check "retrieval runs" test $? -eq 0
check "the table has both directions" bash -c "grep -q 'text -> image' '$T/r.out' && grep -q 'image -> text' '$T/r.out'"
check "the empty caption and the missing image are skipped and named" \
  bash -c "[ \$(grep -c 'skipped' '$T/r.err') -eq 2 ] && grep -q 'pairs.csv:[0-9]* (row 21).*empty caption' '$T/r.err' && grep -q 'skipped .*missing.png' '$T/r.err'"

# the usable rows as the test reads them, for `clipcl embed`
"$PY" - "$Z" "$T" <<'PYEOF'
import csv, os, sys
z, t = sys.argv[1:3]
images, caps, cap_image = [], [], []
for r in csv.DictReader(open(z + "/pairs.csv", encoding="utf-8")):
    p = os.path.join(z, r["filepath"])
    if not r["title"].strip() or not os.path.exists(p):
        continue
    if p not in images:
        images.append(p)
    caps.append(r["title"])
    cap_image.append(images.index(p))
open(t + "/images.txt", "w").write("".join(p + "\n" for p in images))
open(t + "/caps.txt", "w").write("".join(c + "\n" for c in caps))
open(t + "/cap_image.txt", "w").write("".join("%d\n" % i for i in cap_image))
PYEOF
$C embed --model "$M" --images "$T/images.txt" --texts "$T/caps.txt" --out "$T/e" >/dev/null 2>&1
check "embed of the images and captions" test -s "$T/e.image.npy" -a -s "$T/e.text.npy"

check "recall@k and ranks match a brute-force reference (ties included)" "$PY" - "$T" "$nrows" <<'PYEOF'
import json, sys
import numpy as np
t, nrows = sys.argv[1], int(sys.argv[2])
js = json.load(open(t + "/r.json"))
I = np.load(t + "/e.image.npy")
X = np.load(t + "/e.text.npy")
cap_image = [int(l) for l in open(t + "/cap_image.txt")]
assert I.dtype == np.float32 and X.dtype == np.float32
nI, nT = len(I), len(X)
assert js["n_images"] == nI and js["n_texts"] == nT, (js["n_images"], js["n_texts"], nI, nT)
assert js["skipped_rows"] == 2 and nrows == nT + 2
assert nT > nI, "no image has several captions"
# scores: one float32 sum per pair in the order e = 0..dim-1, as the library
S = np.zeros((nI, nT), dtype=np.float32)
for e in range(I.shape[1]):
    S += I[:, e, None] * X[None, :, e]
# the data must hold exact ties on both sides, or the tie rule goes untested
assert any(len(set(S[:, c].tolist())) < nI for c in range(nT)), "no tied images"
assert any(len(set(S[i].tolist())) < nT for i in range(nI)), "no tied captions"

def rank(row, target):  # 1 + items before the target: higher score, or equal and lower index
    s = row[target]
    return 1 + int(np.sum(row > s)) + int(np.sum(row[:target] == s))

img_rank = [rank(S[:, c], cap_image[c]) for c in range(nT)]      # text -> image
txt_rank = []
for i in range(nI):                                             # image -> text: best own caption
    own = [c for c in range(nT) if cap_image[c] == i]
    best = min(own, key=lambda c: (-S[i, c], c))
    txt_rank.append(rank(S[i], best))

def close(a, b):
    return abs(a - b) < 1e-12

for k in (1, 5, 10):
    a = np.mean([r <= k for r in img_rank]); b = np.mean([r <= k for r in txt_rank])
    assert close(js["image_retrieval_recall@%d" % k], a), (k, js["image_retrieval_recall@%d" % k], a)
    assert close(js["text_retrieval_recall@%d" % k], b), (k, js["text_retrieval_recall@%d" % k], b)
assert close(js["image_retrieval_mean_rank"], np.mean(img_rank)), (js["image_retrieval_mean_rank"], np.mean(img_rank))
assert close(js["text_retrieval_mean_rank"], np.mean(txt_rank))
assert close(js["image_retrieval_median_rank"], float(np.median(img_rank)))
assert close(js["text_retrieval_median_rank"], float(np.median(txt_rank)))
print("   %d images, %d captions: R@1/5/10 t->i %s i->t %s" % (nI, nT,
      [js["image_retrieval_recall@%d" % k] for k in (1, 5, 10)], [js["text_retrieval_recall@%d" % k] for k in (1, 5, 10)]))
PYEOF

# refusals
ONE_LINE=0 refuse "too many bad rows for the default limit" "unusable" $C retrieval --model "$M" --data "$Z/pairs.csv"
refuse "missing caption column" "nope" $C retrieval --model "$M" --data "$Z/pairs.csv" --csv-caption-key nope
refuse "missing manifest" "absent.csv" $C retrieval --model "$M" --data "$T/absent.csv"
refuse "label key does not apply" "label-key" $C retrieval --model "$M" --data "$Z/pairs.csv" --csv-label-key y
printf 'filepath,title\n' > "$T/empty.csv"
refuse "a manifest without rows" "no rows" $C retrieval --model "$M" --data "$T/empty.csv"
refuse "missing model" "nope.safetensors" $C retrieval --model "$T/nope.safetensors" --data "$Z/pairs.csv"

finish

#!/usr/bin/env bash
# test_cli_zeroshot.sh: `clipcl zeroshot` end to end on a tiny synthetic set
# with a random clipcl-micro model. Checks: the JSON parses and has the
# issue's keys; predictions are recomputed here from `clipcl embed` outputs
# (images, and the prompts written out by the test) with the classifier done
# in numpy (normalise, average, renormalise), agreeing image by image except
# where two classes score within 1e-5 (counted; few allowed); top-1/top-5,
# per-class recall and the confusion CSV agree with the predictions; the PNG
# has the documented size; a folder without --classnames uses its folder
# names; a CSV data set (rows shuffled) gives the same prediction per image;
# bad inputs (class-name count, template without {}, duplicate class name,
# CSV without class names, a label beyond the names, missing files, an
# unreadable image) fail with one line naming the problem.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/eval_cli_common.sh"

S="$T/s"
make_synth "$S"
Z="$S/zeroshot"
D="$Z/pair"
NAMES="$Z/classnames_pair.txt"
nimg=$(find "$D" -name '*.png' | wc -l)

# 1. folder + class names, default template
$C zeroshot --model "$M" --data "$D" --classnames "$NAMES" --json "$T/z.json" --predictions "$T/z.csv" \
  --confusion "$T/conf" >"$T/z.out" 2>"$T/z.err"
rc=$?
check "zeroshot runs" test $rc -eq 0
check "the table names top-1, top-5, mean per-class recall and chance" \
  bash -c "grep -q 'top-1 ' '$T/z.out' && grep -q 'top-5 ' '$T/z.out' && grep -q 'mean per-class recall' '$T/z.out' && grep -q 'chance (1/classes)  *8.33%' '$T/z.out'"
check "nothing on stderr" test ! -s "$T/z.err"
check "outputs exist" test -s "$T/z.json" -a -s "$T/z.csv" -a -s "$T/conf.csv" -a -s "$T/conf.png"

# the prompts the command should have built, embedded by `clipcl embed`
sed 's/.*/a photo of a &./' "$NAMES" > "$T/prompts.txt"
$C embed --model "$M" --images "$D" --texts "$T/prompts.txt" --out "$T/e" >/dev/null 2>&1
check "embed of the images and prompts" test -s "$T/e.image.npy" -a -s "$T/e.text.npy"

cat > "$T/zcheck.py" <<'PYEOF'
import csv, json, struct, sys
import numpy as np
jpath, ppath, names_path, eprefix, ntmpl, conf = sys.argv[1:7]
ntmpl = int(ntmpl)
names = [l.strip() for l in open(names_path, encoding="utf-8") if l.strip()]
C = len(names)
js = json.load(open(jpath))
for key in ("top1", "top5", "mean_per_class_recall", "n", "per_class", "chance", "classnames", "confusion_matrix"):
    assert key in js, "JSON lacks " + key
assert js["classnames"] == names, js["classnames"]
assert abs(js["chance"] - 1.0 / C) < 1e-12
rows = list(csv.DictReader(open(ppath, encoding="utf-8")))
assert len(rows) == js["n"], (len(rows), js["n"])
img = np.load(eprefix + ".image.npy").astype(np.float64)
paths = [l.rstrip("\n") for l in open(eprefix + ".image.txt", encoding="utf-8")]
txt = np.load(eprefix + ".text.npy").astype(np.float64).reshape(C, ntmpl, -1)
txt /= np.linalg.norm(txt, axis=2, keepdims=True)
cls = txt.mean(1)
cls /= np.linalg.norm(cls, axis=1, keepdims=True)
S = img @ cls.T
row_of = {p: i for i, p in enumerate(paths)}
amb1 = amb5 = agree = hit1 = hit5 = 0
for r in rows:
    i = row_of[r["path"]]
    s = S[i]
    order = sorted(range(C), key=lambda c: (-s[c], c))
    y = names.index(r["true_label"])
    assert y == names.index(r["path"].split("/")[-2].replace("_", " ")), r
    if s[order[0]] - s[order[1]] < 1e-5:
        amb1 += 1
    else:
        assert r["predicted_label"] == names[order[0]], (r, names[order[0]])
        assert abs(float(r["score"]) - s[order[0]]) < 1e-5, (r["score"], s[order[0]])
        agree += 1
    hit1 += order[0] == y
    k5 = min(5, C)
    if C > k5 and abs(s[y] - s[order[k5 - 1]]) < 1e-5:
        amb5 += 1
    hit5 += y in order[:k5]
n = len(rows)
assert amb1 <= max(2, n // 10), "too many near-ties to judge: %d" % amb1
# JSON against the predictions file (JSON keeps 15 digits)
pred_correct = sum(r["true_label"] == r["predicted_label"] for r in rows)
assert abs(js["top1"] - pred_correct / n) < 1e-12, (js["top1"], pred_correct, n)
# JSON against the numpy recomputation: within the near-ties
assert abs(js["top1"] - hit1 / n) <= amb1 / n + 1e-12, (js["top1"], hit1 / n, amb1)
assert abs(js["top5"] - hit5 / n) <= amb5 / n + 1e-12, (js["top5"], hit5 / n, amb5)
support = {c: 0 for c in names}
good = {c: 0 for c in names}
M = {(a, b): 0 for a in names for b in names}
for r in rows:
    support[r["true_label"]] += 1
    good[r["true_label"]] += r["true_label"] == r["predicted_label"]
    M[(r["true_label"], r["predicted_label"])] += 1
for c in names:
    want = good[c] / support[c] if support[c] else None
    got = js["per_class"][c]
    assert (got is None and want is None) or abs(got - want) < 1e-12, (c, got, want)
present = [good[c] / support[c] for c in names if support[c]]
assert abs(js["mean_per_class_recall"] - sum(present) / len(present)) < 1e-12
assert js["confusion_matrix"] == [[M[(a, b)] for b in names] for a in names]
cr = list(csv.reader(open(conf + ".csv", encoding="utf-8")))
assert cr[0] == ["true\\predicted"] + names, cr[0]
for a, line in zip(names, cr[1:]):
    assert line[0] == a and [int(x) for x in line[1:]] == [M[(a, b)] for b in names], line
assert len(cr) == C + 1
png = open(conf + ".png", "rb").read()
assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
w, h = struct.unpack(">II", png[16:24])
cell = max(1, min(32, 640 // C))
side = C * cell + (cell >= 6)
assert (w, h) == (side, side), (w, h, side)
print("   %d images: %d agree with numpy, %d near-ties; top1 %.4f top5 %.4f" % (n, agree, amb1, js["top1"], js["top5"]))
PYEOF
check "predictions, metrics and confusion agree with numpy on the embed outputs" \
  "$PY" "$T/zcheck.py" "$T/z.json" "$T/z.csv" "$NAMES" "$T/e" 1 "$T/conf"
check "JSON n counts every image" bash -c "grep -q '\"n\": $nimg,' '$T/z.json'"

# 2. a template file with two templates: the ensemble
printf 'a photo of a {}.\n{} on a plain background\n' > "$T/tmpl.txt"
$C zeroshot --model "$M" --data "$D" --classnames "$NAMES" --templates "$T/tmpl.txt" --json "$T/z2.json" \
  --predictions "$T/z2.csv" --confusion "$T/conf2" >"$T/z2.out" 2>&1
check "zeroshot with a template file" bash -c "grep -q '2 templates' '$T/z2.out'"
while IFS= read -r c; do printf 'a photo of a %s.\n%s on a plain background\n' "$c" "$c"; done < "$NAMES" > "$T/prompts2.txt"
$C embed --model "$M" --images "$D" --texts "$T/prompts2.txt" --out "$T/e2" >/dev/null 2>&1
check "two-template ensemble agrees with numpy" "$PY" "$T/zcheck.py" "$T/z2.json" "$T/z2.csv" "$NAMES" "$T/e2" 2 "$T/conf2"
check "built-in template sets load" bash -c "$C zeroshot --model '$M' --data '$D' --templates simple | grep -q '7 templates (simple)'"

# 3. a folder without class names: folder names, '_' read as a space
$C zeroshot --model "$M" --data "$D" --predictions "$T/z3.csv" --json "$T/z3.json" >/dev/null 2>&1
check "folder names as class texts give the same predictions" cmp -s "$T/z.csv" "$T/z3.csv"
check "folder names appear with spaces" bash -c "grep -q '\"blue star\"' '$T/z3.json'"

# 4. a CSV data set with integer labels, rows in reverse order
"$PY" - "$Z" "$NAMES" "$T/z.csv" <<'PYEOF'
import csv, os, sys
z, names_path, pred = sys.argv[1:4]
names = [l.strip() for l in open(names_path, encoding="utf-8") if l.strip()]
rows = []
for c in sorted(os.listdir(z + "/pair")):
    for f in sorted(os.listdir(z + "/pair/" + c)):
        rows.append(("pair/%s/%s" % (c, f), names.index(c.replace("_", " "))))
with open(z + "/pair_labels.csv", "w") as f:
    f.write("filepath,label\n")
    for p, y in reversed(rows):
        f.write("%s,%d\n" % (p, y))
PYEOF
$C zeroshot --model "$M" --data "$Z/pair_labels.csv" --classnames "$NAMES" --predictions "$T/z4.csv" \
  --json "$T/z4.json" >/dev/null 2>&1
check "CSV data set: same prediction and score per image as the folder" "$PY" - "$T/z.csv" "$T/z4.csv" <<'PYEOF'
import csv, sys
a = {r["path"]: r for r in csv.DictReader(open(sys.argv[1]))}
b = list(csv.DictReader(open(sys.argv[2])))
assert [r["path"] for r in b] == list(reversed(list(a))), "rows not in the CSV's (reversed) order"
for r in b:
    assert a[r["path"]] == r, (a[r["path"]], r)
PYEOF
check "CSV data set: same top-1" bash -c "[ \"\$(grep '\"top1\"' '$T/z.json')\" = \"\$(grep '\"top1\"' '$T/z4.json')\" ]"

# 5. refusals
head -n 11 "$NAMES" > "$T/names11.txt"
refuse "class-name count mismatch" "11 class names for the 12 class folders" \
  $C zeroshot --model "$M" --data "$D" --classnames "$T/names11.txt"
printf 'a photo of a {}.\na photo without a slot\n' > "$T/bad_tmpl.txt"
refuse "template without {}" "bad_tmpl.txt:2:" $C zeroshot --model "$M" --data "$D" --templates "$T/bad_tmpl.txt"
{ head -n 2 "$NAMES"; head -n 1 "$NAMES"; tail -n 9 "$NAMES"; } > "$T/dup.txt"
refuse "duplicate class name" "dup.txt:3:" $C zeroshot --model "$M" --data "$D" --classnames "$T/dup.txt"
refuse "CSV without class names" "needs --classnames" $C zeroshot --model "$M" --data "$Z/pair_labels.csv"
refuse "CSV label beyond the class names" "has label 11" \
  $C zeroshot --model "$M" --data "$Z/pair_labels.csv" --classnames "$T/names11.txt"
refuse "missing data folder" "nowhere" $C zeroshot --model "$M" --data "$T/nowhere"
refuse "missing class-name file" "nonames.txt" $C zeroshot --model "$M" --data "$D" --classnames "$T/nonames.txt"
refuse "missing model" "nope.safetensors" $C zeroshot --model "$T/nope.safetensors" --data "$D"
out=$($C zeroshot --model "$M" 2>&1); rc=$?
check "no --data: usage, exit 2" bash -c "[ $rc -eq 2 ] && printf '%s' \"\$0\" | grep -q 'usage: clipcl zeroshot'" "$out"

# 6. an unreadable image: over the default 1% it fails, under a raised limit it is skipped and named
cp -r "$D" "$T/badpair"
: > "$T/badpair/blue_star/zz_empty.png"
ONE_LINE=0 refuse "an unreadable image over the allowed fraction" "too many bad samples" \
  $C zeroshot --model "$M" --data "$T/badpair"
$C zeroshot --model "$M" --data "$T/badpair" --max-bad-fraction 0.1 --json "$T/z6.json" >/dev/null 2>"$T/z6.err"
check "under --max-bad-fraction: skipped and named once" \
  bash -c "[ \$(grep -c 'skipped.*zz_empty.png' '$T/z6.err') -eq 1 ] && grep -q '\"n\": $nimg,' '$T/z6.json' && grep -q '\"bad_samples\": 1' '$T/z6.json'"

finish

#!/usr/bin/env bash
# test_cli_probe.sh: `clipcl probe` end to end with a random clipcl-micro
# model: colour classification, training on the synthetic set's seen pairs
# and testing on the held-out pairs. Checks: the cached features are the
# `clipcl embed` embeddings of the same files in the same order, with the
# folder labels; a second run reads them ("from the cache", same result);
# touching one training image re-encodes that set only; another model
# misses the cache; the default cache lives under XDG_CACHE_HOME; --cache off
# writes nothing; scikit-learn's LogisticRegression (lbfgs, multinomial) at
# the reported C on the cached features predicts the test set as the probe
# says (at most one test image apart); refusals (classes that differ between
# train and test, a bad --val-fraction, a CSV paired with a folder, missing
# folders) give one line and a non-zero exit.
# Needs numpy and Debian's python3-sklearn.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/eval_cli_common.sh"
"$PY" -c "import sklearn" 2>/dev/null || { echo "FAIL: $PY cannot import sklearn (install python3-sklearn)"; exit 1; }

S="$T/s"
make_synth "$S" --seen-per-pair 10
TR="$S/zeroshot_seen/colour"
TE="$S/zeroshot/colour"
CACHE="$T/cache"

$C probe --model "$M" --train "$TR" --test "$TE" --cache "$CACHE" --json "$T/p1.json" >"$T/p1.out" 2>"$T/p1.err"
check "probe runs" test $? -eq 0
check "first run encodes both sets" bash -c "[ \$(grep -c 'features: encoded' '$T/p1.out') -eq 2 ]"
check "prints test top-1 and the chosen strength with its scikit-learn C" \
  bash -c "grep -q 'test top-1' '$T/p1.out' && grep -q 'lambda .*scikit-learn C' '$T/p1.out'"
check "cache holds features, labels and a description for each set" bash -c "[ \$(ls '$CACHE' | wc -l) -eq 6 ]"
$C probe --model "$M" --train "$TR" --test "$TE" --cache "$CACHE" --json "$T/p2.json" >"$T/p2.out" 2>&1
check "second run reads both sets from the cache" bash -c "[ \$(grep -c 'from the cache' '$T/p2.out') -eq 2 ] && ! grep -q encoded '$T/p2.out'"

$C embed --model "$M" --images "$TR" --out "$T/etr" >/dev/null 2>&1
$C embed --model "$M" --images "$TE" --out "$T/ete" >/dev/null 2>&1
check "cached features = embed outputs, labels = folders; same result from the cache" "$PY" - "$T" "$CACHE" <<'PYEOF'
import glob, json, sys
import numpy as np
t, cache = sys.argv[1:3]
a, b = json.load(open(t + "/p1.json")), json.load(open(t + "/p2.json"))
assert a["cache_hits"] == 0 and b["cache_hits"] == 2, (a["cache_hits"], b["cache_hits"])
for k in ("test_top1", "lambda", "sklearn_C", "val_top1", "n_train", "n_val", "n_test", "trials"):
    assert a[k] == b[k], k
for part, pre in (("zeroshot_seen-colour", "etr"), ("zeroshot-colour", "ete")):
    (f,) = glob.glob("%s/%s-*.json" % (cache, part))
    meta = json.load(open(f))
    X = np.load(f[:-5] + ".npy")
    y = np.load(f[:-5] + ".labels.npy")
    E = np.load("%s/%s.image.npy" % (t, pre))
    paths = [l.rstrip("\n") for l in open("%s/%s.image.txt" % (t, pre))]
    assert X.shape == E.shape and meta["n"] == len(X), (X.shape, E.shape)
    assert np.array_equal(X, E), abs(X - E).max()
    names = sorted({p.split("/")[-2] for p in paths})
    assert [int(v) for v in y] == [names.index(p.split("/")[-2]) for p in paths]
assert a["n_train"] + a["n_val"] == 240 and a["n_test"] == 48, (a["n_train"], a["n_val"], a["n_test"])
PYEOF

check "scikit-learn at the reported C agrees on the cached features" "$PY" - "$T" "$CACHE" <<'PYEOF'
import glob, json, sys, warnings
import numpy as np
from sklearn.linear_model import LogisticRegression
t, cache = sys.argv[1:3]
js = json.load(open(t + "/p1.json"))
def load(part):
    (f,) = glob.glob("%s/%s-*.json" % (cache, part))
    return np.load(f[:-5] + ".npy").astype(np.float64), np.load(f[:-5] + ".labels.npy").astype(int)
Xtr, ytr = load("zeroshot_seen-colour")
Xte, yte = load("zeroshot-colour")
assert abs(js["sklearn_C"] - 1 / (js["lambda"] * len(ytr))) <= 1e-9 * js["sklearn_C"]
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    clf = LogisticRegression(C=js["sklearn_C"], solver="lbfgs", multi_class="multinomial", max_iter=1000, tol=1e-8)
    clf.fit(Xtr, ytr)
acc = float(np.mean(clf.predict(Xte) == yte))
print("   lambda %g: probe test top-1 %.4f, scikit-learn %.4f" % (js["lambda"], js["test_top1"], acc))
assert abs(acc - js["test_top1"]) <= 1.0 / len(yte) + 1e-12, (acc, js["test_top1"])
PYEOF

# a changed file re-encodes its set only
f=$(find "$TR" -name '*.png' | sort | head -n 1)
touch -d '2001-01-01' "$f"
$C probe --model "$M" --train "$TR" --test "$TE" --cache "$CACHE" >"$T/p3.out" 2>&1
check "touching a training image re-encodes the training set only" \
  bash -c "grep -q 'train features: encoded' '$T/p3.out' && grep -q 'test features: .*from the cache' '$T/p3.out'"
$C probe --model "$T/other.safetensors" --train "$TR" --test "$TE" --cache "$CACHE" >"$T/p4.out" 2>&1
check "another model misses the cache" bash -c "[ \$(grep -c 'features: encoded' '$T/p4.out') -eq 2 ]"
with_xdg "$T/xdg" $C probe --model "$M" --train "$TR" --test "$TE" >/dev/null 2>&1
check "default cache under XDG_CACHE_HOME" bash -c "[ \$(ls '$T/xdg/clipcl/features' | wc -l) -eq 6 ]"
with_xdg "$T/xdg2" $C probe --model "$M" --train "$TR" --test "$TE" --cache off >"$T/p5.out" 2>&1
check "--cache off encodes and writes nothing" \
  bash -c "[ \$(grep -c 'features: encoded' '$T/p5.out') -eq 2 ] && [ ! -e '$T/xdg2/clipcl/features' ]"

# refusals
refuse "train and test classes differ" "not the same names" \
  $C probe --model "$M" --train "$TR" --test "$S/zeroshot/pair" --cache off
refuse "val fraction outside (0, 1)" "val-fraction 1.5" \
  $C probe --model "$M" --train "$TR" --test "$TE" --val-fraction 1.5
printf 'filepath,label\npair/red_circle/x.png,0\n' > "$S/zeroshot/l.csv"
refuse "a CSV with a folder" "both be image folders or both CSVs" \
  $C probe --model "$M" --train "$S/zeroshot/l.csv" --test "$TE" --cache off
refuse "missing training folder" "nothere" $C probe --model "$M" --train "$T/nothere" --test "$TE"
out=$($C probe --model "$M" --train "$TR" 2>&1); rc=$?
check "no --test: usage, exit 2" bash -c "[ $rc -eq 2 ] && printf '%s' \"\$0\" | grep -q 'usage: clipcl probe'" "$out"

finish

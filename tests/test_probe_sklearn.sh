#!/usr/bin/env bash
# test_probe_sklearn.sh: the linear probe against scikit-learn.
# tests/test_probe writes clustered, row-normalised features (8 classes, 32
# dims, 2400 train / 1200 test), fits at four lambdas and runs the full sweep;
# scikit-learn's LogisticRegression(lbfgs, multinomial, max_iter=1000) is fit
# on the same features at C = 1/(lambda * n_train). Checks: test accuracy
# within 1 point at every lambda and for the sweep's refit, and our objective
# (mean CE + lambda/2 ||W||^2) at our solution within 1e-5 relative of its
# value at sklearn's, which shows both solve the same problem (a factor 2 or
# n in the strength would move it by far more).
# Needs Debian's python3-sklearn (and numpy); fails without them.
# Env: BUILD (build dir, from ctest); PYTHON overrides the interpreter.
set -euo pipefail
py=${PYTHON:-/usr/bin/python3}
bin=${BUILD:?BUILD not set}/tests/test_probe
"$py" -c "import sklearn, numpy" || { echo "FAIL: $py cannot import sklearn and numpy (python3-sklearn)"; exit 1; }
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin" sklearn "$tmp"
"$py" - "$tmp" <<'PYEOF'
import json, sys, warnings
import numpy as np
from sklearn.linear_model import LogisticRegression

d = sys.argv[1]
Xtr, ytr = np.load(d + "/train_X.npy").astype(np.float64), np.load(d + "/train_y.npy").astype(int)
Xte, yte = np.load(d + "/test_X.npy").astype(np.float64), np.load(d + "/test_y.npy").astype(int)
n = len(ytr)

def objective(W, b, lam):
    z = Xtr @ W.T + b
    z -= z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(lse - z[np.arange(n), ytr]) + 0.5 * lam * np.sum(W * W))

def fit(C):
    clf = LogisticRegression(C=C, solver="lbfgs", multi_class="multinomial", max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(Xtr, ytr)
    return clf

failed = 0
for f in json.load(open(d + "/fits.json")):
    lam = f["lambda"]
    clf = fit(1.0 / (lam * n))
    acc = float(np.mean(clf.predict(Xte) == yte))
    obj = objective(clf.coef_, clf.intercept_, lam)
    ok_acc = abs(acc - f["test_top1"]) <= 0.01
    ok_obj = abs(f["objective"] - obj) <= 1e-5 * obj
    failed += not (ok_acc and ok_obj)
    print("%s lambda %-6g test top-1 clipcl %.4f sklearn %.4f | objective clipcl %.8f sklearn %.8f (%d iterations)"
          % ("ok  " if ok_acc and ok_obj else "FAIL", lam, f["test_top1"], acc, f["objective"], obj, clf.n_iter_[0]))

run = json.load(open(d + "/run.json"))
clf = fit(run["sklearn_C"])
acc = float(np.mean(clf.predict(Xte) == yte))
ok = abs(acc - run["test_top1"]) <= 0.01
failed += not ok
print("%s sweep: lambda %g (C %g), refit test top-1 clipcl %.4f sklearn %.4f"
      % ("ok  " if ok else "FAIL", run["lambda"], run["sklearn_C"], run["test_top1"], acc))
sys.exit(1 if failed else 0)
PYEOF
echo "linear probe matches scikit-learn $("$py" -c 'import sklearn; print(sklearn.__version__)')"

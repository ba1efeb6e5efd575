#!/usr/bin/env bash
# test_npy_numpy.sh: .npy files cross between clipcl and the real numpy.
#  - files written by clipcl (tests/test_npy write) load with numpy.load with
#    the right dtype, shape and exact values, and are byte-identical to
#    numpy.save's output when numpy has the 1.24 header layout;
#  - files written by numpy.save (2-D, 1-D, empty, random with NaN/inf/-0/
#    subnormals, format 2.0) read in clipcl exactly (bitwise against the raw
#    float32 bytes numpy writes with tofile);
#  - numpy files clipcl does not handle (float64, big-endian, Fortran order,
#    3-D) are refused with a message;
#  - float16 both ways equals numpy's conversion bit for bit.
# Needs python3 with numpy (Debian's python3-numpy on CI); fails without it.
# Env: BUILD (build dir, from ctest); PYTHON overrides the interpreter.
set -euo pipefail
py=${PYTHON:-/usr/bin/python3}
bin=${BUILD:?BUILD not set}/tests/test_npy
"$py" -c "import numpy" || { echo "FAIL: $py cannot import numpy"; exit 1; }
[ -x "$bin" ] || { echo "FAIL: $bin not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin" write "$tmp"
"$py" - "$tmp" <<'EOF'
import io, sys
import numpy as np
d = sys.argv[1]
for name, shape in [("c_2d.npy", (37, 11)), ("c_1d.npy", (9,)), ("c_empty.npy", (0, 4)), ("c_3d.npy", (5, 3, 4))]:
    a = np.load("%s/%s" % (d, name))
    want = (np.arange(int(np.prod(shape)), dtype=np.float32) * 0.25 - 3).reshape(shape)
    assert a.dtype == np.float32 and a.shape == shape, (name, a.dtype, a.shape)
    assert np.array_equal(a, want), name
    with open("%s/%s" % (d, name), "rb") as f:
        ours = f.read()
    b = io.BytesIO()
    np.save(b, want)
    if hasattr(np.lib.format, "GROWTH_AXIS_MAX_DIGITS"):
        assert ours == b.getvalue(), "%s differs from numpy.save's bytes" % name
        print("ok  ", name, "loads in numpy and equals numpy.save byte for byte")
    else:
        print("ok  ", name, "loads in numpy (numpy %s predates the 1.24 header layout)" % np.__version__)

rng = np.random.default_rng(5)
np.save(d + "/py_2d.npy", (np.arange(42, dtype=np.float32) * 0.25 - 3).reshape(6, 7))
np.save(d + "/py_1d.npy", np.arange(13, dtype=np.float32) * 0.25 - 3)
np.save(d + "/py_empty.npy", np.zeros((0, 3), np.float32))
r = rng.standard_normal((50, 17)).astype(np.float32)
r.ravel()[:6] = [np.nan, np.inf, -np.inf, -0.0, 1e-45, 3.4028235e38]
np.save(d + "/py_rand.npy", r)
r.tofile(d + "/py_rand.raw")
with open(d + "/py_v2.npy", "wb") as f:
    np.lib.format.write_array(f, r, version=(2, 0))
np.save(d + "/py_f64.npy", r.astype(np.float64))
np.save(d + "/py_be.npy", r.astype(">f4"))
np.save(d + "/py_fortran.npy", np.asfortranarray(r))
np.save(d + "/py_3d.npy", np.zeros((2, 3, 4), np.float32))
EOF

"$bin" check "$tmp/py_2d.npy" 6 7
"$bin" check "$tmp/py_1d.npy" 13 0
"$bin" check "$tmp/py_empty.npy" 0 3
"$bin" same "$tmp/py_rand.npy" "$tmp/py_rand.raw"
"$bin" same "$tmp/py_v2.npy" "$tmp/py_rand.raw"
for f in py_f64 py_be py_fortran py_3d; do "$bin" refuse "$tmp/$f.npy"; done

# float16 (search index parts): values of every kind, subnormals and exact
# rounding ties included, converted by clipcl and by numpy, bit for bit
"$py" - "$tmp" <<'EOF'
import sys
import numpy as np
d = sys.argv[1]
rng = np.random.default_rng(6)
x = np.concatenate([rng.standard_normal(4000), rng.standard_normal(500) * 1e-5, rng.standard_normal(500) * 7e4,
                    [np.nan, np.inf, -np.inf, -0.0, 65504, 65520, 65519.99, 2.0**-24, 2.0**-25, 3 * 2.0**-25,
                     1 + 2.0**-11, 1 + 3 * 2.0**-11]]).astype(np.float32)
x.tofile(d + "/h_src.raw")
np.save(d + "/h_py.npy", x.astype(np.float16))
x.astype(np.float16).astype(np.float32).tofile(d + "/h_want.raw")
EOF
"$bin" half-write "$tmp/h_c.npy" "$tmp/h_src.raw"
"$py" - "$tmp" <<'EOF'
import sys
import numpy as np
d = sys.argv[1]
c, want = np.load(d + "/h_c.npy"), np.fromfile(d + "/h_src.raw", np.float32).astype(np.float16)
assert c.dtype == np.float16 and c.shape == want.shape
bad = np.flatnonzero(c.view(np.uint16) != want.view(np.uint16))
assert len(bad) == 0, (bad[:5], c[bad[:5]], want[bad[:5]])
print("ok   float16 written by clipcl equals numpy's astype(float16) bit for bit")
EOF
"$bin" half-read "$tmp/h_py.npy" "$tmp/h_want.raw"
echo "npy interop with numpy $("$py" -c 'import numpy; print(numpy.__version__)'): all passed"

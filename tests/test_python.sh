#!/usr/bin/env bash
# test_python.sh: the Python package (python/) as a user installs it: a venv
# of Debian's python3 (with its numpy and Pillow), `pip install` of a copy of
# python/ (offline: no build isolation, no index; the library comes from this
# build folder through CLIPCL_BUILD_DIR instead of a second compilation),
# then python/tests/test_clipcl.py against the installed package and the
# `clipcl` command. Under the sanitizer build the instrumented library needs
# the ASan runtime preloaded into Python (leak checks off: the interpreter's
# own allocations are not freed at exit).
set -euo pipefail
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
for m in ensurepip numpy PIL setuptools wheel; do
  "$PY" -c "import $m" 2>/dev/null || { echo "FAIL: $PY cannot import $m (scripts/bootstrap installs it)"; exit 1; }
done
"$PY" -m venv --system-site-packages "$T/v"
cp -r "$SRC/python" "$T/python"
rm -rf "$T/python/build" "$T/python"/*.egg-info
CLIPCL_SOURCE_DIR=$SRC CLIPCL_BUILD_DIR=$BUILD "$T/v/bin/pip" install -q --no-build-isolation --no-index --no-deps \
  "$T/python" >"$T/pip.log" 2>&1 || { cat "$T/pip.log"; echo "FAIL: pip install"; exit 1; }
echo "ok   pip install of python/ into a venv"
if ldd "$BUILD/libclipcl.so" | grep libasan > /dev/null; then  # (not -q: with pipefail an early exit would SIGPIPE ldd)
  export LD_PRELOAD=$(cc -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0
fi
cd "$T"
CLIPCL=$CLIPCL SRC=$SRC "$T/v/bin/python" -m unittest discover -s "$SRC/python/tests" -v

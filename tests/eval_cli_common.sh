# eval_cli_common.sh: sourced by the evaluation command tests
# (test_cli_zeroshot.sh, test_cli_retrieval.sh, test_cli_probe.sh,
# test_cli_search.sh): check/refuse helpers, a temporary folder, a tiny
# synthetic data set (32 px) and a freshly initialised clipcl-micro model.
# Nothing here depends on model quality: the model is random.
# Env: CLIPCL, SRC, BUILD (from ctest); PYTHON overrides the interpreter,
# which needs numpy (Debian's python3-numpy); KEEP=DIR keeps the files.
set -u
fails=0
check() { # name, command...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}
# refuse NAME FRAGMENT CMD...: non-zero exit, stderr's last line starts with
# "clipcl " and holds FRAGMENT (grep -i pattern); with ONE_LINE=1 (default)
# stderr is exactly that one line.
refuse() {
  local name=$1 frag=$2; shift 2
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  local last; last=$(printf '%s\n' "$err" | tail -n 1)
  local lines; lines=$(printf '%s\n' "$err" | grep -c .)
  if [ $rc -ne 0 ] && [ "${last#clipcl }" != "$last" ] && printf '%s' "$last" | grep -qi -- "$frag" &&
     { [ "${ONE_LINE:-1}" != 1 ] || [ "$lines" -eq 1 ]; }; then
    echo "ok   $name"
  else
    echo "FAIL $name (rc $rc, $lines lines): $err"
    fails=$((fails + 1))
  fi
}
finish() { # KEEP=DIR keeps a copy of the temporary folder for debugging
  if [ -n "${KEEP:-}" ]; then cp -r "$T" "$KEEP"; fi
  echo "$fails failed"
  [ $fails -eq 0 ]
}
C=${CLIPCL:?CLIPCL not set}
PY=${PYTHON:-/usr/bin/python3}
"$PY" -c "import numpy" 2>/dev/null || { echo "FAIL: $PY cannot import numpy (install python3-numpy)"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# with_xdg DIR CMD...: CMD with XDG_CACHE_HOME=DIR (the default feature
# cache goes there) while the kernel caches of clipcl and PoCL stay where
# they were: cold caches would recompile every kernel (seconds per command)
with_xdg() {
  local dir=$1; shift
  local base=${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}
  XDG_CACHE_HOME=$dir CLIPCL_CACHE_DIR=${CLIPCL_CACHE_DIR:-$base/clipcl} \
    POCL_CACHE_DIR=${POCL_CACHE_DIR:-$base/pocl/kcache} "$@"
}
SYNTH=${BUILD:?BUILD not set}/datasets/clipcl-synth
# make_synth DIR [extra clipcl-synth options]
make_synth() {
  local out=$1; shift
  "$SYNTH" --out "$out" --size 32 --train 20 --val 10 --zeroshot-per-pair 4 --seen-per-pair 3 --quiet "$@" ||
    { echo "FAIL: clipcl-synth"; exit 1; }
}
$C init --model-config clipcl-micro --seed 7 --out "$T/m.safetensors" >/dev/null ||
  { echo "FAIL: clipcl init"; exit 1; }
$C init --model-config clipcl-micro --seed 8 --out "$T/other.safetensors" >/dev/null ||
  { echo "FAIL: clipcl init"; exit 1; }
M="$T/m.safetensors"

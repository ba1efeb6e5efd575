#!/usr/bin/env bash
# test_cli_model.sh: the model commands end to end (info, init, convert,
# embed) and their refusals: bad safetensors files (truncated, a header
# claiming 2^60 bytes, a wrong shape, a missing tensor, an extra tensor) and
# bad images (zero-byte, truncated JPEG, PNG with a bad CRC) give a one-line
# error naming the file and a non-zero exit, or a counted skip; a failed
# command leaves the existing output files untouched. Also a kernel with a
# syntax error: readable build log, non-zero exit.
set -u
PY=${PYTHON:-/usr/bin/python3}  # Debian's, with python3-numpy (the PATH one may lack it)
fails=0
check() { # name, condition command...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
C=$CLIPCL
W=$SRC/tests/data/parity/weights.safetensors

# info / init
check "info prints the parameter count of ViT-B-32" bash -c "$C info ViT-B-32 | grep -q '151277313'"
check "init writes a model" $C init --model-config clipcl-micro --seed 3 --out "$T/a.safetensors"
check "info reads the config back from metadata" bash -c "$C info '$T/a.safetensors' | grep -q 'config from the file.s metadata'"
check "init is deterministic" bash -c "$C init --model-config clipcl-micro --seed 3 --out '$T/b.safetensors' >/dev/null && cmp -s '$T/a.safetensors' '$T/b.safetensors'"
check "init with another seed differs" bash -c "$C init --model-config clipcl-micro --seed 4 --out '$T/c.safetensors' >/dev/null && ! cmp -s '$T/a.safetensors' '$T/c.safetensors'"

# embed: images (some bad) and texts
mkdir -p "$T/img"
for f in png_rgb8_64x48.png jpg_444_50x77.jpg png_pal4_45x46.png; do
  [ -f "$SRC/tests/data/images/$f" ] && cp "$SRC/tests/data/images/$f" "$T/img/"
done
cp "$SRC/tests/data/images/bad_trunc.jpg" "$T/img/zz_truncated.jpg"
cp "$SRC/tests/data/images/bad_crc_idat.png" "$T/img/zz_badcrc.png"
: > "$T/img/zz_empty.png"
ngood=$(ls "$T/img" | grep -vc '^zz_')
printf 'a photo of a cat\nred circle\n\xff\xfe not utf-8\nthird\n' > "$T/texts.txt"
$C embed --model "$T/a.safetensors" --images "$T/img" --texts "$T/texts.txt" --out "$T/e" >"$T/embed.out" 2>"$T/embed.err"
rc=$?
check "embed succeeds with bad inputs skipped" test $rc -eq 0
check "embed reports 3 skipped images" grep -q "($((3)) skipped as unreadable)" "$T/embed.out"
check "each bad image named once on stderr" bash -c "[ \$(grep -c 'zz_' '$T/embed.err') -eq 3 ]"
check "the invalid UTF-8 line is reported with its line number" grep -q "texts.txt line 3" "$T/embed.err"
check "image .txt lists the good images in row order" bash -c "[ \$(wc -l < '$T/e.image.txt') -eq $ngood ] && ! grep -q zz_ '$T/e.image.txt'"
check "text .txt has 3 rows" bash -c "[ \$(wc -l < '$T/e.text.txt') -eq 3 ]"
check "npy files load in numpy with unit rows" "$PY" -c "
import numpy as np
a = np.load('$T/e.image.npy'); b = np.load('$T/e.text.npy')
assert a.shape == ($ngood, 128) and b.shape == (3, 128), (a.shape, b.shape)
assert abs(np.linalg.norm(a, axis=1) - 1).max() < 1e-5 and abs(np.linalg.norm(b, axis=1) - 1).max() < 1e-5
"

# convert: OpenAI -> HF -> OpenAI gives identical embeddings
check "convert to HF names" bash -c "$C convert '$T/a.safetensors' '$T/hf.safetensors' | grep -q 'HF transformers'"
check "info sees HF names" bash -c "$C info '$T/hf.safetensors' | grep -q 'names       HF'"
check "convert back to OpenAI names" bash -c "$C convert '$T/hf.safetensors' '$T/back.safetensors' | grep -q 'OpenAI'"
$C embed --model "$T/back.safetensors" --images "$T/img" --out "$T/e2" >/dev/null 2>&1
check "embeddings identical after the round trip" cmp -s "$T/e.image.npy" "$T/e2.image.npy"
$C embed --model "$T/hf.safetensors" --images "$T/img" --out "$T/e3" >/dev/null 2>&1
check "an HF-named file embeds identically" cmp -s "$T/e.image.npy" "$T/e3.image.npy"

# bad weights files: one-line error naming the file, non-zero exit, no output touched
cp "$T/e.image.npy" "$T/keep.npy"
refuse() { # name, file, expected message fragment
  local out
  out=$($C embed --model "$2" --images "$T/img" --out "$T/e" 2>&1 >/dev/null)
  local rc=$?
  check "$1: non-zero exit" test $rc -ne 0
  check "$1: one line naming the file" bash -c "[ \$(printf '%s\n' \"\$0\" | grep -c .) -eq 1 ] && printf '%s' \"\$0\" | grep -q -- '$2' && printf '%s' \"\$0\" | grep -qi -- '$3'" "$out"
  check "$1: existing output untouched" cmp -s "$T/e.image.npy" "$T/keep.npy"
}
size=$(stat -c %s "$W")
head -c $((size / 2)) "$W" > "$T/truncated.safetensors"
refuse "truncated safetensors" "$T/truncated.safetensors" "short\|truncat\|beyond\|past\|size"
"$PY" - "$T/huge.safetensors" <<'PY'
import struct, sys
open(sys.argv[1], "wb").write(struct.pack("<Q", 1 << 60) + b"{}")
PY
refuse "header claiming 2^60 bytes" "$T/huge.safetensors" "header"
"$PY" - "$W" "$T/shape.safetensors" "$T/missing.safetensors" "$T/extra.safetensors" <<'PY'
import json, struct, sys
src = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", src[:8])[0]
head = json.loads(src[8:8 + n]); data = src[8 + n:]
def write(path, h, d):
    js = json.dumps(h).encode(); js += b" " * ((8 - len(js) % 8) % 8)
    open(path, "wb").write(struct.pack("<Q", len(js)) + js + d)
h = json.loads(json.dumps(head)); t = h["visual.ln_pre.weight"]; t["shape"] = [t["shape"][0] // 2, 2]
write(sys.argv[2], h, data)
h = json.loads(json.dumps(head)); del h["ln_final.bias"]
write(sys.argv[3], h, data)
h = json.loads(json.dumps(head)); h["visual.extra_thing"] = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
write(sys.argv[4], h, data)
PY
refuse "wrong shape" "$T/shape.safetensors" "visual.ln_pre.weight"
refuse "missing tensor" "$T/missing.safetensors" "ln_final.bias"
refuse "extra tensor" "$T/extra.safetensors" "visual.extra_thing"
out=$($C embed --model "$T/nope.safetensors" --images "$T/img" --out "$T/e" 2>&1); rc=$?
check "missing weights file refused" bash -c "[ $rc -ne 0 ] && printf '%s' \"\$0\" | grep -q nope.safetensors" "$out"

# clipcl tune: a quick search writes this device's row to the tune file
CLIPCL_TUNE_FILE="$T/tune.txt" $C tune --quick > "$T/tune.out" 2>&1
check "tune --quick finishes and reports the best parameters" bash -c "grep -q '^best: MR=' '$T/tune.out'"
vw=$($C devices | grep -o 'kernels in float[0-9]*' | head -1 | grep -o '[0-9]*$')
check "tune file holds a row for this device and vector width" \
  bash -c "grep -q 'VW=$vw MR=.* NV=.* KU=.* MB=.* PA=.* KC=' '$T/tune.txt'"

# a kernel with a syntax error: readable build log, non-zero exit, no crash
mkdir -p "$T/kernels"
cp "$SRC"/kernels/*.cl "$T/kernels/"
printf '\n__kernel void broken(__global float *x) { x[0] = undefined_thing + ; }\n' >> "$T/kernels/elementwise.cl"
out=$(CLIPCL_KERNEL_DIR="$T/kernels" CLIPCL_CACHE_DIR=off $C devices --build 2>&1); rc=$?
check "broken kernel: exit code 1" test $rc -eq 1
check "broken kernel: build log names the file and the error" bash -c "printf '%s' \"\$0\" | grep -q 'elementwise.cl: build failed' && printf '%s' \"\$0\" | grep -q 'undefined_thing'" "$out"
check "broken kernel: the log's line numbers are the file's own" \
  bash -c "printf '%s' \"\$0\" | grep -q 'elementwise.cl:$(wc -l < "$T/kernels/elementwise.cl")'" "$out"

echo "$fails failed"
[ $fails -eq 0 ]

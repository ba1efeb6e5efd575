#!/usr/bin/env bash
# test_cli_firstrun.sh: what a first run shows on a terminal and in a pipe.
#  - with an empty kernel cache the command says once (not once per kernel
#    file) that the kernels are being compiled and where they are cached; the
#    next run, with the cache filled, does not;
#  - on a terminal (util-linux `script` gives one) `embed` and `zeroshot`
#    draw a progress line with the count and, after the first batch, a rate
#    and an ETA; piped, stderr holds no progress at all.
set -u
fails=0
check() { # name, condition command...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
C=$CLIPCL
D=$SRC/tests/data/hidden
IM=$SRC/tests/data/images

export CLIPCL_CACHE_DIR=$T/cache
$C embed --model "$D/model.safetensors" --model-config "$D/config.json" --texts "$D/texts.txt" --out "$T/a" \
  >/dev/null 2>"$T/first.err"
check "first run: one notice that kernels are compiled and cached" \
  bash -c "[ \$(grep -c 'compiling the OpenCL kernels' '$T/first.err') -eq 1 ] && grep -q 'cached in $T/cache' '$T/first.err'"
check "the cache was filled" bash -c "ls '$T/cache'/*.bin >/dev/null"
$C embed --model "$D/model.safetensors" --model-config "$D/config.json" --texts "$D/texts.txt" --out "$T/a" \
  >/dev/null 2>"$T/second.err"
check "second run: no notice, nothing on stderr" test ! -s "$T/second.err"

# 8 good images, one per batch
mkdir -p "$T/img/a" "$T/img/b"
i=0
for f in png_rgb8_50x77.png jpg_444_50x77.jpg png_pal4_45x46.png jpg_rgb_45x31.jpg png_grey8_33x65.png \
         jpg_420_333x222.jpg png_rgb8_129x7.png jpg_grey_129x31.jpg; do
  cp "$IM/$f" "$T/img/$([ $i -lt 4 ] && echo a || echo b)/$f"; i=$((i + 1))
done
M=$D/model.safetensors
MC=$D/config.json
$C embed --model $M --model-config $MC --images "$T/img" --batch 1 --out "$T/p" >/dev/null 2>"$T/pipe.err"
check "embed piped: no progress on stderr" test ! -s "$T/pipe.err"
script -qec "$C embed --model $M --model-config $MC --images $T/img --batch 1 --out $T/t" /dev/null >"$T/tty.out" </dev/null
check "embed on a terminal: count, rate and ETA" grep -Eq 'images 5/8  [0-9.]+/s  ETA [0-9]+ s' "$T/tty.out"
check "embed on a terminal: the first batch has no rate" grep -Eq 'images 1/8 *'$'\r' "$T/tty.out"
check "embed on a terminal: same embeddings" cmp -s "$T/p.image.npy" "$T/t.image.npy"
$C zeroshot --model $M --model-config $MC --data "$T/img" --batch 1 >/dev/null 2>"$T/zpipe.err"
check "zeroshot piped: no progress on stderr" test ! -s "$T/zpipe.err"
script -qec "$C zeroshot --model $M --model-config $MC --data $T/img --batch 1" /dev/null >"$T/ztty.out" </dev/null
check "zeroshot on a terminal: count, rate and ETA" grep -Eq 'images 6/8  [0-9.]+/s  ETA [0-9]+ s' "$T/ztty.out"

[ $fails -eq 0 ] && echo "all passed" || { echo "$fails failed"; exit 1; }

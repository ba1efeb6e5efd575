#!/usr/bin/env bash
# test_cli_oom.sh: what does not fit is answered in one line, never a crash
# or a bare OpenCL code. `clipcl train --model-config ViT-B-32 --batch-size
# 100000` says what does not fit, how much it needs, what the device has and
# the largest batch that fits (test_memory_plan checks that answer);
# `clipcl embed` on a 100,000 x 100,000 PNG and on a 60,000 x
# 60,000 JPEG (a JPEG cannot declare more than 65,535 a side) says what the
# pixels would take against the limit, and names the file.
set -u
fails=0
check() { local name=$1; shift; if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
C=$CLIPCL
printf 'filepath,title\na.png,a red circle\n' > "$T/m.csv"
$C init --model-config clipcl-micro --seed 1 --out "$T/micro.safetensors" > /dev/null || { echo "FAIL init"; exit 1; }
cp "$SRC/tests/data/images/png_rgb8_1x1.png" "$T/a.png"

$C train --model-config ViT-B-32 --train-data "$T/m.csv" --batch-size 100000 --steps 1 --warmup 0 --out "$T/run" \
  > "$T/train.out" 2> "$T/train.err"
rc=$?
echo "  stderr: $(cat "$T/train.err")"
check "train exits 1 (not a crash)" test $rc -eq 1
check "... with one line on stderr" test "$(wc -l < "$T/train.err")" -eq 1
check "... saying what does not fit, how much, and the device's memory" \
  grep -qE '^clipcl train: a batch of 100000 does not fit on .*: .*(vision|text) activations.* [0-9.]+ (GiB|TiB).* has [0-9.]+ (GiB|MiB)' "$T/train.err"
check "... and the largest batch that fits" grep -qE 'the largest batch that fits is [0-9]+$' "$T/train.err"
check "... without an OpenCL error code" bash -c "! grep -q 'CL_' '$T/train.err'"
for img in bad_huge.png:100000 bad_huge.jpg:60000; do
  f=${img%%:*} side=${img##*:}
  $C embed --model "$T/micro.safetensors" --images "$SRC/tests/data/images/$f" --out "$T/e" \
    > "$T/embed.out" 2> "$T/embed.err"
  rc=$?
  echo "  stderr: $(cat "$T/embed.err")"
  check "embed $f ($side x $side): exits 1" test $rc -eq 1
  check "... one line naming the file, what its pixels would take and the limit" \
    grep -qE "^clipcl embed: skipped .*$f: (PNG|JPEG) of $side x $side pixels is over the limit of 268435456 pixels: decoding it would allocate [0-9.]+ GiB for its RGB pixels \(limit 768 MiB\)" "$T/embed.err"
  check "... and nothing written" test ! -e "$T/e.image.npy"
done
echo "$fails failed"
[ $fails -eq 0 ]

#!/usr/bin/env bash
# test_train_cli.sh: `clipcl train` end to end on a tiny generated data set
# (clipcl-micro): metrics.jsonl keys, checkpoints, report.html, the final
# model; resume exactness through the CLI (8 steps == 4 + resumed 4, losses
# equal to 1e-5, loader position restored); SIGKILL half-way through a
# checkpoint write leaves the previous checkpoint loadable and --resume latest
# continues; bad samples (missing file, corrupt JPEG, empty caption, non-UTF-8
# caption) are skipped and reported; --max-bad-fraction stops the run; a NaN
# loss stops with the step number.
set -u
PY=${PYTHON:-/usr/bin/python3}  # Debian's, with python3-numpy (the PATH one may lack it)
fails=0
check() { local name=$1; shift; if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
C=$CLIPCL
$BUILD/datasets/clipcl-synth --out "$T/syn" --size 32 --train 400 --val 64 --zeroshot-per-pair 4 --seen-per-pair 2 --quiet \
  || { echo "FAIL generating the data set"; exit 1; }
common=(--model-config clipcl-micro --train-data "$T/syn/train.csv" --batch-size 16 --lr 1e-3 --warmup 2 --seed 5
        --log-every 1 --workers 2)

# a full run: outputs
$C train "${common[@]}" --val-data "$T/syn/val.csv" --steps 8 --save-every 4 --out "$T/full" > "$T/full.log" 2>&1
check "train exits 0" test $? -eq 0
check "metrics.jsonl has a line per step with the documented keys" "$PY" -c "
import json
rows = [json.loads(l) for l in open('$T/full/metrics.jsonl')]
tr = [r for r in rows if r['type'] == 'train']
assert [r['step'] for r in tr] == list(range(1, 9)), [r['step'] for r in tr]
for k in ('step', 'epoch', 'loss', 'lr', 'logit_scale', 'samples_per_s', 'bad_samples'):
    assert all(k in r for r in tr), k
assert any(r['type'] == 'val' for r in rows)
"
check "checkpoints at steps 4 and 8" bash -c "ls '$T/full/checkpoints' | grep -q '^step_4.safetensors$' && ls '$T/full/checkpoints' | grep -q '^step_8.optim.safetensors$'"
check "the final model loads" bash -c "$C info '$T/full/model.safetensors' | grep -q 'clipcl-micro'"
check "a checkpoint is a plain model file" bash -c "$C info '$T/full/checkpoints/step_8.safetensors' | grep -q 'parameters'"
check "report.html parses and shows the loss curve" "$PY" -c "
from html.parser import HTMLParser
class P(HTMLParser):
    imgs = []
    def handle_starttag(self, tag, attrs):
        if tag == 'img': self.imgs.append(dict(attrs)['src'])
p = P(); p.feed(open('$T/full/report.html').read())
assert 'loss.png' in p.imgs, p.imgs
import os; assert os.path.getsize('$T/full/loss.png') > 1000
"

# resume through the CLI: 4 steps, then --resume latest to 8 == the full run
# (run to the end, then cut the history back to step 4 as if it had stopped there)
$C train "${common[@]}" --steps 8 --save-every 4 --out "$T/half" > /dev/null 2>&1
rm -f "$T/half/checkpoints/step_8."* "$T/half/model.safetensors"
$C train "${common[@]}" --steps 8 --save-every 4 --out "$T/half" --resume latest > "$T/resume.log" 2>&1
check "resume run exits 0 and says where it resumed" bash -c "grep -q 'resumed from .*step_4.safetensors at step 4' '$T/resume.log'"
check "losses of 4 + resumed 4 steps == 8 steps (1e-5)" "$PY" -c "
import json
a = [json.loads(l) for l in open('$T/full/metrics.jsonl')]; b = [json.loads(l) for l in open('$T/half/metrics.jsonl')]
la = [r['loss'] for r in a if r['type'] == 'train']; lb = [r['loss'] for r in b if r['type'] == 'train']
assert len(la) == len(lb) == 8, (len(la), len(lb))
assert all(abs(x - y) <= 1e-5 * max(1, abs(x)) for x, y in zip(la, lb)), (la, lb)
"

# SIGKILL half-way through writing checkpoint 6: step 3's stays loadable, resume continues
(CLIPCL_TEST_KILL_CHECKPOINT=6 exec $C train "${common[@]}" --steps 8 --save-every 3 --out "$T/kill" > "$T/kill.log" 2>&1)
rc=$?
check "the run died by SIGKILL (137)" test $rc -eq 137
check "no partial file under a checkpoint name" bash -c "! ls '$T/kill/checkpoints' | grep -q 'step_6.safetensors$'"
check "previous checkpoint loadable" bash -c "$C info '$T/kill/checkpoints/step_3.safetensors' > /dev/null"
$C train "${common[@]}" --steps 8 --save-every 3 --out "$T/kill" --resume latest > "$T/kill2.log" 2>&1
check "--resume latest continues from step 3 to the end" bash -c "[ $? -eq 0 ] && grep -q 'at step 3' '$T/kill2.log' && grep -q 'done: 5 steps' '$T/kill2.log'"
check "... and ends with the same losses as an uninterrupted run" "$PY" -c "
import json
a = [json.loads(l) for l in open('$T/full/metrics.jsonl')]; b = [json.loads(l) for l in open('$T/kill/metrics.jsonl')]
la = [r['loss'] for r in a if r['type'] == 'train']; lb = [r['loss'] for r in b if r['type'] == 'train']
assert [r['step'] for r in b if r['type'] == 'train'] == list(range(1, 9))
assert all(abs(x - y) <= 1e-5 * max(1, abs(x)) for x, y in zip(la, lb)), (la, lb)
"

# bad samples: missing file, corrupt JPEG, empty caption, non-UTF-8 caption
"$PY" - "$T/syn" <<'PY'
import sys, shutil
d = sys.argv[1]
rows = open(d + "/train.csv", encoding="utf-8").read().splitlines()
open(d + "/bad.jpg", "wb").write(b"\xff\xd8\xff\xe0 this is not a jpeg")
out = rows[:1] + rows[1:101]
out[5] = "train/does_not_exist.png,a red circle"
out[10] = "bad.jpg,a blue star"
out[20] = out[20].split(",")[0] + ","
lines = "\n".join(out).encode() + b"\n" + out[30].split(",")[0].encode() + b",caf\xe9 au lait\n"
open(d + "/bad.csv", "wb").write(lines)
PY
$C train "${common[@]}" --train-data "$T/syn/bad.csv" --epochs 1 --out "$T/bad" --max-bad-fraction 0.1 > "$T/bad.log" 2>&1
check "bad samples: training continues" test $? -eq 0
check "each bad sample reported with its row" bash -c "grep -c 'skipped .*bad.csv' '$T/bad.log' | grep -qx 4"
check "... for the right reasons" bash -c "grep -q 'does_not_exist' '$T/bad.log' && grep -q 'bad.jpg' '$T/bad.log' && grep -qi 'empty' '$T/bad.log' && grep -qi 'utf-8' '$T/bad.log'"
$C train "${common[@]}" --train-data "$T/syn/bad.csv" --epochs 1 --out "$T/bad2" --max-bad-fraction 0.01 > "$T/bad2.log" 2>&1
check "--max-bad-fraction 0.01 stops the run with a message" bash -c "[ $? -ne 0 ] && grep -qi 'bad' '$T/bad2.log'"

# bad options
$C train --model-config clipcl-micro --train-data "$T/syn/train.csv" --steps 2 --out "$T/x" > "$T/opt.log" 2>&1
check "missing --batch-size refused" bash -c "[ $? -eq 2 ] && grep -q -- '--batch-size' '$T/opt.log'"
echo "$fails failed"
[ $fails -eq 0 ]

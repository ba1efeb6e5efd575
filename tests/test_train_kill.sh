#!/usr/bin/env bash
# test_train_kill.sh: kill anywhere. A small training run (a 1.6 M-parameter
# config on a 64-image generated set: 64 steps, a checkpoint every step, the
# newest 2 kept, validation and zero-shot evaluation every 8-step epoch) is
# SIGKILLed at 24 moments and restarted with --resume latest each time, as a
# job scheduler would. Most kills fall at random times from the process start
# (so also inside start-up and checkpoint loading); the rest are aimed: in the
# middle of a checkpoint file (CLIPCL_TEST_KILL_CHECKPOINT), right after a
# checkpoint's rename (directory sync, pruning), and just after an epoch's
# last step (evaluation). After every kill: every kept file (checkpoints,
# model, metrics.jsonl) is whole, and the newest complete checkpoint never
# goes back; every restart resumes from the newest complete checkpoint; in
# the end the model is byte for byte, and metrics.jsonl value for value
# (except throughput), those of an uninterrupted run, and no temporary or
# half-pruned file is left. Prints where each kill landed, as seen from
# /proc just before it (approximate: the process keeps running meanwhile).
# CLIPCL_KILLS (default 24) and CLIPCL_KILL_SEED change the schedule.
set -u
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
$BUILD/datasets/clipcl-synth --out "$T/syn" --size 16 --train 64 --val 16 --zeroshot-per-pair 1 --seen-per-pair 1 \
  --quiet || { echo "FAIL generating the data set"; exit 1; }
cat > "$T/tiny.json" <<'EOF'
{"embed_dim": 32, "quick_gelu": false,
 "vision_cfg": {"image_size": 16, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16, "mlp_ratio": 2.0},
 "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1, "mlp_ratio": 2.0}}
EOF
exec "$PY" - "$CLIPCL" "$T" <<'PY'
import json, os, random, re, signal, struct, subprocess, sys, threading, time
from collections import Counter

C, T = sys.argv[1], sys.argv[2]
KILLS = int(os.environ.get("CLIPCL_KILLS", "24"))
rng = random.Random(int(os.environ.get("CLIPCL_KILL_SEED", "20261206")))
N, EPOCH, KEEP = 64, 8, 2
ARGS = ["train", "--model-config", T + "/tiny.json", "--train-data", T + "/syn/train.csv",
        "--val-data", T + "/syn/val.csv", "--batch-size", "8", "--steps", str(N), "--save-every", "1",
        "--keep", str(KEEP), "--log-every", "1", "--lr", "1e-3", "--warmup", "2", "--seed", "3", "--workers", "1",
        "--zeroshot-data", T + "/syn/zeroshot/pair", "--zeroshot-classnames", T + "/syn/zeroshot/classnames_pair.txt",
        "--zeroshot-frequency", "1", "--no-report"]
fails = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + str(detail)), flush=True)
    if not ok:
        fails.append(name)


class Run:
    """clipcl train in the background, its output lines collected with times."""

    def __init__(self, out, resume, env=None):
        cmd = [C] + ARGS + ["--out", out] + (["--resume", "latest"] if resume else [])
        e = dict(os.environ)
        e.update(env or {})
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=e)
        self.lines = []  # (seconds since start, text)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.p.stdout:
            self.lines.append((time.monotonic() - self.t0, raw.decode("utf-8", "replace").rstrip("\n")))

    def wait(self, timeout=None):
        rc = self.p.wait(timeout)
        self.reader.join(5)
        return rc

    def text(self):
        return "\n".join(l for _, l in self.lines)


def st_whole(path):
    """A safetensors file is whole when its size is exactly header + data."""
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 8:
        return False
    n = struct.unpack("<Q", b[:8])[0]
    try:
        h = json.loads(b[8:8 + n])
    except ValueError:
        return False
    end = max([v["data_offsets"][1] for k, v in h.items() if k != "__metadata__"] or [0])
    return len(b) == 8 + n + end


def step_of(name):
    m = re.fullmatch(r"step_(\d+)\.safetensors", name)
    return int(m.group(1)) if m else None


def newest_complete(out):
    d = out + "/checkpoints"
    if not os.path.isdir(d):
        return None
    steps = sorted((s for s in map(step_of, os.listdir(d)) if s is not None), reverse=True)
    for s in steps:
        o = "%s/step_%d.optim.safetensors" % (d, s)
        if os.path.exists(o) and st_whole("%s/step_%d.safetensors" % (d, s)) and st_whole(o):
            return s
    return None


def kept_files_whole(out):
    """Every file a user keeps is whole; returns the broken ones."""
    bad = []
    d = out + "/checkpoints"
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if name.startswith("."):
            continue  # a temporary: not a kept file
        if not st_whole(d + "/" + name):
            bad.append(name)
    if os.path.exists(out + "/model.safetensors") and not st_whole(out + "/model.safetensors"):
        bad.append("model.safetensors")
    mp = out + "/metrics.jsonl"
    if os.path.exists(mp):
        text = open(mp, encoding="utf-8").read()
        if text and not text.endswith("\n"):
            bad.append("metrics.jsonl (last line cut)")
        for line in text.splitlines():
            try:
                json.loads(line)
            except ValueError:
                bad.append("metrics.jsonl: " + line[:60])
                break
    return bad


def where(run):
    """Where the process is, from its open files and its last output line."""
    try:
        fds = [os.readlink("/proc/%d/fd/%s" % (run.p.pid, fd)) for fd in os.listdir("/proc/%d/fd" % run.p.pid)]
    except OSError:
        fds = []
    tmp = [f for f in fds if ".tmp-" in f]
    if tmp:
        return "writing " + ("a checkpoint" if "/checkpoints/" in tmp[0] else os.path.basename(tmp[0]).split(".tmp")[0])
    lines = [l for _, l in run.lines]
    last = lines[-1] if lines else ""
    if not any(l.startswith("step ") for l in lines) and not any(l.startswith("training") for l in lines):
        return "start-up or resume loading"
    m = re.match(r"step (\d+)/", last)
    if m and int(m.group(1)) % EPOCH == 0 or last.startswith("validation loss"):
        return "evaluation"
    if last.startswith("zero-shot"):
        return "after evaluation (checkpoint, pruning)"
    return "inside a step"


def strip(rows):
    for r in rows:
        r.pop("samples_per_s", None)
    return rows


# ---- the uninterrupted run ---------------------------------------------------
ref = Run(T + "/ref", False)
rc = ref.wait(300)
check("uninterrupted run exits 0", rc == 0, ref.text()[-500:])
steps_t = [t for t, l in ref.lines if l.startswith("step ")]
startup = steps_t[0] if steps_t else 1.0
per_step = (steps_t[-1] - steps_t[0]) / max(1, len(steps_t) - 1) if steps_t else 0.2
print("reference: first step after %.2f s, %.3f s per step (checkpoint included)" % (startup, per_step), flush=True)

# ---- killed again and again ------------------------------------------------------
out = T + "/kill"
modes = ["checkpoint", "after-rename", "epoch-end"] * 2 + ["random"] * max(0, KILLS - 6)
rng.shuffle(modes)
landed = Counter()
kills = 0
newest = None
completed = False
for mode in modes:
    resume = newest is not None
    env = {}
    if mode == "checkpoint":  # dies half-way through writing the next checkpoint's model file
        env["CLIPCL_TEST_KILL_CHECKPOINT"] = str((newest or 0) + 1 + rng.randrange(2))
    r = Run(out, resume, env)
    deadline = r.t0 + 60
    label = None
    if mode == "random":
        at = r.t0 + rng.uniform(0, startup + 2.5 * per_step)
        while time.monotonic() < at and r.p.poll() is None:
            time.sleep(0.001)
    elif mode == "after-rename":  # the moment a new checkpoint appears
        d = out + "/checkpoints"
        while r.p.poll() is None and time.monotonic() < deadline:
            s = [x for x in map(step_of, os.listdir(d) if os.path.isdir(d) else []) if x is not None]
            if s and max(s) > (newest or 0):
                break
            time.sleep(0.0005)
    elif mode == "epoch-end":  # just after an epoch's last step: evaluation
        while r.p.poll() is None and time.monotonic() < deadline:
            if any(re.match(r"step (\d+)/", l) and int(re.match(r"step (\d+)/", l).group(1)) % EPOCH == 0
                   for _, l in r.lines):
                break
            time.sleep(0.0005)
        time.sleep(rng.uniform(0, 0.01))
    if r.p.poll() is None:
        label = where(r)
        r.p.send_signal(signal.SIGKILL)
    rc = r.wait(120)
    if mode == "checkpoint" and rc == -signal.SIGKILL:
        label = "inside a checkpoint file (hook)"
    if rc == 0:
        completed = True
        print("run finished before its kill (%s)" % mode)
        break
    kills += 1
    landed[label or "?"] += 1
    got = re.search(r"resumed from \S+ at step (\d+)", r.text())
    if resume and got:
        check("kill %d: resumed from the newest complete checkpoint" % kills, int(got.group(1)) == newest,
              (got.group(1), newest))
    if rc != -signal.SIGKILL:
        check("kill %d (%s): the run died by SIGKILL" % (kills, mode), False, "rc %s: %s" % (rc, r.text()[-400:]))
    bad = kept_files_whole(out)
    check("kill %d (%s, %s): every kept file whole" % (kills, mode, label), not bad, bad)
    now = newest_complete(out)
    if newest is not None:
        check("kill %d: the newest complete checkpoint did not go back" % kills, now is not None and now >= newest,
              (newest, now))
    newest = now

check(">= 20 kills", kills >= 20, kills)
print("where the kills landed: " + ", ".join("%s %d" % kv for kv in landed.most_common()), flush=True)
check("a kill inside a checkpoint file", landed["inside a checkpoint file (hook)"] >= 1, landed)

# ---- to the end, then compare with the uninterrupted run --------------------------------
if not completed:
    fin = Run(out, newest is not None)
    rc = fin.wait(300)
    check("the last resume runs to the end", rc == 0, fin.text()[-500:])
    got = re.search(r"resumed from \S+ at step (\d+)", fin.text())
    check("... from the newest complete checkpoint", got is not None and int(got.group(1)) == newest,
          (got and got.group(1), newest))
a = open(T + "/ref/model.safetensors", "rb").read()
b = open(out + "/model.safetensors", "rb").read() if os.path.exists(out + "/model.safetensors") else b""
check("final model identical to the uninterrupted run's", a == b, "%d vs %d bytes" % (len(a), len(b)))
ma = strip([json.loads(l) for l in open(T + "/ref/metrics.jsonl")])
mb = strip([json.loads(l) for l in open(out + "/metrics.jsonl")])
first = next((i for i, (x, y) in enumerate(zip(ma, mb)) if x != y), None)
check("metrics.jsonl equal to the uninterrupted run's (losses, lr, evaluations)", ma == mb,
      "%d vs %d rows, first difference at row %s" % (len(ma), len(mb), first))
left = sorted(os.listdir(out + "/checkpoints"))
check("only the newest %d checkpoint pairs remain, nothing half-written or half-pruned" % KEEP,
      left == ["step_%d.%ssafetensors" % (s, o) for s in (N - 1, N) for o in ("optim.", "")], left)
tmp = [f for f in os.listdir(out) if ".tmp-" in f]
check("no temporary files left beside the model", not tmp, tmp)
print("%d kills, %d failed checks" % (kills, len(fails)))
sys.exit(1 if fails else 0)
PY

#!/usr/bin/env bash
# race.sh: clipcl against its peers in one run, same threads, fp32, random
# weights and data: open_clip 2.20 on PyTorch (tuned environment), ONNX
# Runtime (CPU EP) and OpenVINO on the open_clip towers exported to ONNX
# (bench/peer_race.py), for ViT-B-32 image and text towers at batch 1, 8 and
# 32, and training steps (clipcl-tiny at 64, ViT-B-32 at 32) against
# open_clip. Prints the JSON lines of every measurement, then one JSON line
# per (case, peer) with "ratio" = clipcl / peer, then a Markdown table.
#   bench/race.sh [--quick] [--threads N] [--seconds S] [--out FILE]
#     --quick    ViT-B-32 encoders at batch 32 only, no training
# Under scripts/as-cpu (kernels compiled for an AVX2 class on an AVX-512 host)
# the peers are held to AVX2: their CPUID instructions answer without
# AVX-512/AMX (scripts/as-cpu, where the kernel offers CPUID faulting), which
# is what ONNX Runtime's MLAS dispatches on; besides, OpenBLAS through
# OPENBLAS_CORETYPE=Haswell, PyTorch's own kernels through
# ATEN_CPU_CAPABILITY=avx2, oneDNN (PyTorch, OpenVINO) through
# ONEDNN_MAX_CPU_ISA=AVX2. Without CPUID faulting ONNX Runtime cannot be held
# to AVX2 (its figure is then an upper bound for an AVX2 machine).
# Needs: build/ (bench_model), tests/tools/setup_pyref.sh's PYREF (default
# /opt/pyref/site), and a venv with onnxruntime + openvino (PEERS_VENV,
# default /opt/peers; made here when missing: python3 -m venv
# --system-site-packages, which keeps Debian's torch and numpy 1.24).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0 threads=2 seconds=3 out=""
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --threads) threads=$2; shift ;;
    --seconds) seconds=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "usage: bench/race.sh [--quick] [--threads N] [--seconds S] [--out FILE]" >&2; exit 2 ;;
  esac
  shift
done
B=${BUILD:-build}
pyref=${PYREF:-/opt/pyref/site}
venv=${PEERS_VENV:-/opt/peers}
[ -x "$B/bench/bench_model" ] || { echo "race: build first ($B/bench/bench_model missing)" >&2; exit 2; }
[ -d "$pyref/open_clip" ] || { echo "race: no open_clip in $pyref (run tests/tools/setup_pyref.sh)" >&2; exit 2; }
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import onnxruntime, openvino' 2>/dev/null; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
  # keep Debian's numpy 1.24 (torch 1.13 is built against it)
  "$venv/bin/pip" install -q onnxruntime openvino -c <(/usr/bin/python3 -c 'import numpy; print("numpy==" + numpy.__version__)')
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
res=${out:-$tmp/race.jsonl}
: > "$res"

# the peers' environment: open_clip at its best (REFERENCE.md), same threads
peer_env=(env -u OPENBLAS_L2_SIZE)
# under as-cpu the peers keep its preload (the CPUID answers without AVX-512)
[ -n "${CLIPCL_AS_CPU:-}" ] || peer_env+=(-u OPENBLAS_CORETYPE -u LD_PRELOAD)
peer_env+=(OMP_NUM_THREADS="$threads" OMP_WAIT_POLICY=PASSIVE MALLOC_MMAP_MAX_=0
  MALLOC_TRIM_THRESHOLD_=100000000000 MALLOC_TOP_PAD_=1073741824 PYTHONPATH="$pyref")
if [ -n "${CLIPCL_AS_CPU:-}" ]; then
  peer_env+=(OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2)
fi
# clipcl on as many cores as the peers get
pocl_env=()
ncpu=$(nproc)
[ "$threads" -lt "$ncpu" ] && pocl_env=(POCL_MAX_PTHREAD_COUNT="$threads")

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
dev=$("$B/clipcl" devices | sed -n 1p)
echo "# $(date -u +%F) cpu: $cpu; clipcl device: $dev${CLIPCL_AS_CPU:+ (as-cpu $CLIPCL_AS_CPU, CPUID masked: ${CLIPCL_AS_CPU_CPUID:-0})}; threads $threads" >&2
"$B/clipcl" info ViT-B-32 --json > "$tmp/vitb32.json"
"$B/clipcl" info clipcl-tiny --json > "$tmp/tiny.json"

clipcl() { env "${pocl_env[@]}" "$B/bench/bench_model" --seconds "$seconds" "$@" | tee -a "$res"; }
peer() { "${peer_env[@]}" "$venv/bin/python" bench/peer_race.py --threads "$threads" --seconds "$seconds" "$@" | tee -a "$res"; }

if [ $quick = 1 ]; then enc_batches=32; else enc_batches=1,8,32; fi
for w in image text; do
  clipcl --config ViT-B-32 --what $w --batches $enc_batches --profile
  peer --config "$tmp/vitb32.json" --name ViT-B-32 --what $w --batches $enc_batches
done
if [ $quick = 0 ]; then
  clipcl --config clipcl-tiny --what train --batches 64 --profile
  peer --config "$tmp/tiny.json" --name clipcl-tiny --what train --batches 64
  clipcl --config ViT-B-32 --what train --batches 32 --profile
  peer --config "$tmp/vitb32.json" --name ViT-B-32 --what train --batches 32
fi

/usr/bin/python3 - "$res" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
mine = {(r["what"], r["config"], r["batch"]): r for r in rows if r["impl"] == "clipcl" and "samples_per_s" in r}
peers = ["open_clip", "onnxruntime", "openvino"]
table = []
for r in rows:
    if r["impl"] == "clipcl" or "samples_per_s" not in r:
        continue
    k = (r["what"], r["config"], r["batch"])
    if k in mine:
        ratio = mine[k]["samples_per_s"] / r["samples_per_s"]
        print(json.dumps({"what": k[0], "config": k[1], "batch": k[2], "peer": r["impl"],
                          "clipcl_samples_per_s": mine[k]["samples_per_s"], "peer_samples_per_s": r["samples_per_s"],
                          "ratio": round(ratio, 3)}))
print("\n| case | batch | clipcl | " + " | ".join(peers) + " |")
print("|---|---:|---:|" + "---:|" * len(peers))
for k, r in mine.items():
    cells = []
    for p in peers:
        pr = [x for x in rows if x["impl"] == p and (x["what"], x["config"], x["batch"]) == k]
        cells.append(f"{pr[0]['samples_per_s']:.1f} ({r['samples_per_s'] / pr[0]['samples_per_s']:.2f}x)" if pr else "-")
    print(f"| {k[1]} {k[0]} | {k[2]} | {r['samples_per_s']:.1f} | " + " | ".join(cells) + " |")
for r in rows:
    if r.get("what") == "profile":
        top = ", ".join(f"{t['kernel']} {100 * t['share']:.0f}%" for t in r["top"])
        g = mine.get((r["of"], r["config"], r["batch"]))
        print(f"profile {r['config']} {r['of']} batch {r['batch']}: {top}" +
              (f"; {g['gflops']:.0f} GFLOP/s achieved" if g else ""))
    if r.get("what") == "gemm_rate":
        print(f"GEMM {r['m']}x{r['n']}x{r['k']} in the same run: {r['gflops']:.0f} GFLOP/s")
PY

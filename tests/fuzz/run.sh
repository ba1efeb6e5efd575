#!/usr/bin/env bash
# run.sh: runs one fuzz target for a bounded time, as ctest does in CI and
# campaign.sh does for the long runs.
#   run.sh [--fresh] TARGET_BINARY SECONDS WORK_DIR [libFuzzer options...]
# The committed seeds (corpus/<name>/) are replayed first and never written;
# new inputs go to WORK_DIR/<name>/corpus (kept between runs so a campaign
# can continue; --fresh empties it first, as CI does), crashes to
# WORK_DIR/<name>/artifacts/. Exit status non-zero on a crash, a leak, a
# sanitizer report or a unit slower than the timeout (CLIPCL_FUZZ_TIMEOUT
# seconds, default 10).
set -euo pipefail
fresh=0
[ "${1:-}" = --fresh ] && { fresh=1; shift; }
bin=$1 secs=$2 work=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
name=$(basename "$bin")
name=${name#fuzz_}
seeds=$here/corpus/$name
[ -d "$seeds" ] || { echo "run.sh: no seed corpus $seeds" >&2; exit 2; }
[ $fresh -eq 0 ] || rm -rf "$work/$name"
mkdir -p "$work/$name/corpus" "$work/$name/artifacts"
opts=(-max_total_time="$secs" -timeout="${CLIPCL_FUZZ_TIMEOUT:-10}" -rss_limit_mb=2048
      -artifact_prefix="$work/$name/artifacts/" -print_final_stats=1)
[ -f "$here/dict/$name.dict" ] && opts+=(-dict="$here/dict/$name.dict")
# LeakSanitizer stays on: a leak on an error path is a finding like any other
exec "$bin" "${opts[@]}" "$@" "$work/$name/corpus" "$seeds"

#!/usr/bin/env bash
# setup_pyref.sh: prepares the reference implementation used to (re)generate
# the committed parity fixtures: Debian's python3-torch 1.13 plus
# open_clip_torch 2.20.0, ftfy and wcwidth from PyPI, unpacked into a private
# folder (Debian's Python refuses system-wide pip installs). CI never runs this:
# the fixtures are committed.
#   tests/tools/setup_pyref.sh [DIR]      (default /opt/pyref)
# then: PYTHONPATH=DIR/site /usr/bin/python3 tests/tools/<script>.py
set -euo pipefail
dir=${1:-/opt/pyref}
apt-get install -y -qq python3-torch python3-torchvision python3-pil python3-numpy \
  python3-regex python3-tqdm python3-sklearn >/dev/null
mkdir -p "$dir/whl" "$dir/site"
pip download -q --no-deps open_clip_torch==2.20.0 ftfy wcwidth -d "$dir/whl"
for w in "$dir"/whl/*.whl; do python3 -m zipfile -e "$w" "$dir/site"; done
PYTHONPATH="$dir/site" /usr/bin/python3 -c "import open_clip, torch; print('open_clip ready, torch', torch.__version__)"

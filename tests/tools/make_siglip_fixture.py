#!/usr/bin/env python3
"""make_siglip_fixture.py: parity fixture for the SigLIP loss, computed by
open_clip's SigLipLoss (open_clip >= 2.23; 2.20, the project's reference
environment, has no SigLIP), one process:

  tests/data/siglip_loss.fx  for each case cK: img, txt (raw features), the
                             logit_scale and logit_bias parameters, the loss
                             of the L2-normalised features with scale
                             exp(logit_scale) and the bias, its logits, and
                             the gradients of img, txt, logit_scale and
                             logit_bias.

Run (open_clip's loss.py is read from a newer wheel; torch from Debian):
  python3 -m pip download open_clip_torch==2.24.0 --no-deps -d /tmp/oc
  PYTHONPATH=/opt/pyref/site /usr/bin/python3 tests/tools/make_siglip_fixture.py /tmp/oc/open_clip_torch-2.24.0-py3-none-any.whl
The data are random numbers from a fixed seed; the file format is the one
of make_train_fixtures.py (read by tests/ref/ref_fixture.c).
"""
import importlib.util
import math
import os
import sys
import tempfile
import zipfile

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_train_fixtures import OUT, write_fx  # noqa: E402


def load_siglip(wheel):
    """open_clip/loss.py from the wheel, imported on its own (it needs torch only)."""
    with zipfile.ZipFile(wheel) as z:
        src = z.read("open_clip/loss.py")
    d = tempfile.mkdtemp()
    path = os.path.join(d, "open_clip_loss.py")
    with open(path, "wb") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("open_clip_loss", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.SigLipLoss


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    SigLipLoss = load_siglip(sys.argv[1])
    arrays = []
    # (N, E, logit_scale, logit_bias): open_clip's SigLIP init (log 10, -10),
    # then a trained-looking state where positives and negatives both matter
    cases = [(8, 16, math.log(10.0), -10.0), (13, 40, math.log(1 / 0.07), -3.0), (5, 7, 2.0, 0.5)]
    for k, (N, E, s0, b0) in enumerate(cases):
        g = torch.Generator().manual_seed(777 + k)
        img = torch.randn(N, E, generator=g)
        txt = (0.5 * img + torch.randn(N, E, generator=g)).requires_grad_(True)
        img.requires_grad_(True)
        logit_scale = torch.tensor(s0).requires_grad_(True)
        logit_bias = torch.tensor(b0).requires_grad_(True)
        img_n = F.normalize(img, dim=-1)
        txt_n = F.normalize(txt, dim=-1)
        loss = SigLipLoss()(img_n, txt_n, logit_scale.exp(), logit_bias)
        loss.backward()
        with torch.no_grad():
            logits = logit_scale.exp() * img_n @ txt_n.T + logit_bias
        p = "c%d." % k
        arrays += [(p + "img", img), (p + "txt", txt), (p + "logit_scale", logit_scale.reshape(1)),
                   (p + "logit_bias", logit_bias.reshape(1)), (p + "loss", loss.reshape(1)),
                   (p + "logits", logits), (p + "dimg", img.grad), (p + "dtxt", txt.grad),
                   (p + "dlogit_scale", logit_scale.grad.reshape(1)),
                   (p + "dlogit_bias", logit_bias.grad.reshape(1))]
    write_fx(os.path.join(OUT, "siglip_loss.fx"), arrays)


if __name__ == "__main__":
    main()

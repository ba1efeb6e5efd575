#!/usr/bin/env python3
"""make_train_fixtures.py: parity fixtures for the CLIP head and the optimiser,
computed by the reference implementation (PyTorch 1.13, open_clip 2.20):

  tests/data/clip_loss.fx  open_clip.loss.ClipLoss on L2-normalised random
                           features: loss, logits, gradients of the raw
                           features and of the logit-scale parameter.
  tests/data/adamw.fx      torch.optim.AdamW (foreach=False, amsgrad=False)
                           over a small parameter set with decayed, undecayed
                           and frozen tensors, several steps with a changing
                           learning rate, once plain and once after
                           torch.nn.utils.clip_grad_norm_.

Run: PYTHONPATH=/opt/pyref/site /usr/bin/python3 tests/tools/make_train_fixtures.py
(setup: tests/tools/setup_pyref.sh). The data are random numbers from a fixed
seed, generated here; no third-party data.

File format (.fx, little-endian): 8 bytes magic b"CLIPCLFX", u32 version 1,
u32 array count; then per array: u32 name length, the name (ASCII), u32 ndim,
u32 dims[ndim], float32 data in C order. Read by tests/ref/ref_fixture.c.
"""
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")


def write_fx(path, arrays):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"CLIPCLFX")
        f.write(struct.pack("<II", 1, len(arrays)))
        for name, t in arrays:
            t = torch.as_tensor(t, dtype=torch.float32).detach().contiguous()
            nb = name.encode("ascii")
            f.write(struct.pack("<I", len(nb)))
            f.write(nb)
            f.write(struct.pack("<I", t.dim()))
            f.write(struct.pack("<%dI" % t.dim(), *t.shape))
            f.write(t.numpy().astype("<f4").tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    print("wrote", os.path.relpath(path), os.path.getsize(path), "bytes")


def clip_loss_fixture():
    arrays = []
    for case, (N, E) in enumerate([(8, 16), (13, 40)]):
        g = torch.Generator().manual_seed(1234 + case)
        img = torch.randn(N, E, generator=g).requires_grad_(True)
        txt = torch.randn(N, E, generator=g).requires_grad_(True)
        # the initial CLIP value ln(1/0.07), then a second case at the clamp
        logit_scale = torch.tensor(math.log(1 / 0.07) if case == 0 else math.log(100.0)).requires_grad_(True)
        img_n = F.normalize(img, dim=-1)
        txt_n = F.normalize(txt, dim=-1)
        loss = ClipLoss()(img_n, txt_n, logit_scale.exp())
        loss.backward()
        with torch.no_grad():
            logits = logit_scale.exp() * img_n @ txt_n.T
        p = "c%d." % case
        arrays += [(p + "img", img), (p + "txt", txt), (p + "logit_scale", logit_scale.reshape(1)),
                   (p + "loss", loss.reshape(1)), (p + "logits", logits), (p + "dimg", img.grad),
                   (p + "dtxt", txt.grad), (p + "dlogit_scale", logit_scale.grad.reshape(1))]
    write_fx(os.path.join(OUT, "clip_loss.fx"), arrays)


def adamw_fixture():
    # mask values as in src/ops/ops.h: 0 no decay, 1 decay, 2 frozen
    shapes = [((33, 17), 1), ((13,), 0), ((4, 3), 2), ((1,), 0), ((2, 9), 1)]
    lr0, betas, eps, wd, max_norm = 1e-3, (0.9, 0.98), 1e-6, 0.2, 1.0
    steps = 6
    gmag = [0.05, 0.2, 0.01, 0.3, 0.02, 0.1]  # clipping is active on some steps only
    g = torch.Generator().manual_seed(4321)
    init = [torch.randn(s, generator=g) for s, _ in shapes]
    grads = [[torch.randn(s, generator=g) * gmag[k] for s, _ in shapes] for k in range(steps)]
    flat = lambda ts: torch.cat([t.reshape(-1) for t in ts])
    arrays = [("init", flat(init)),
              ("mask", torch.cat([torch.full((math.prod(s),), float(m)) for s, m in shapes])),
              ("hparams", torch.tensor([lr0, betas[0], betas[1], eps, wd, max_norm, steps]))]
    for k in range(steps):
        gk = [t.clone() for t in grads[k]]
        for t, (_, m) in zip(gk, shapes):
            if m == 2:
                t.zero_()  # frozen: no gradient exists in PyTorch
        arrays.append(("grad%d" % k, flat(gk)))
    for run, clip in enumerate([False, True]):
        params = [torch.nn.Parameter(t.clone()) for t in init]
        for p, (_, m) in zip(params, shapes):
            p.requires_grad_(m != 2)
        decay = [p for p, (_, m) in zip(params, shapes) if m == 1]
        nodecay = [p for p, (_, m) in zip(params, shapes) if m == 0]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                                 {"params": nodecay, "weight_decay": 0.0}],
                                lr=lr0, betas=betas, eps=eps, foreach=False, amsgrad=False)
        for k in range(steps):
            lr = lr0 * (k + 1) / steps  # a warmup-like schedule: lr changes every step
            for group in opt.param_groups:
                group["lr"] = lr
            for p, gr in zip(params, grads[k]):
                p.grad = gr.clone() if p.requires_grad else None
            if clip:
                norm = torch.nn.utils.clip_grad_norm_([p for p in params if p.requires_grad], max_norm)
                arrays.append(("r%d.norm%d" % (run, k), norm.reshape(1)))
            opt.step()
            arrays.append(("r%d.params%d" % (run, k), flat([p.detach() for p in params])))
            arrays.append(("r%d.m%d" % (run, k), flat([opt.state[p]["exp_avg"] if p in opt.state
                                                        else torch.zeros_like(p) for p in params])))
            arrays.append(("r%d.v%d" % (run, k), flat([opt.state[p]["exp_avg_sq"] if p in opt.state
                                                        else torch.zeros_like(p) for p in params])))
    write_fx(os.path.join(OUT, "adamw.fx"), arrays)


if __name__ == "__main__":
    torch.set_num_threads(1)
    print("torch", torch.__version__, file=sys.stderr)
    clip_loss_fixture()
    adamw_fixture()

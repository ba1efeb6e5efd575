"""train_openclip_synth.py: the peer of clipcl's synthetic-set demo. Trains the
same config with open_clip 2.20 on PyTorch (same data, steps, batch size and
hyperparameters, open_clip's own augmentation, loss, AdamW parameter groups
and cosine schedule), then measures zero-shot top-1 on the held-out
colour-shape pairs with the same templates, and prints one JSON object.

  PYTHONPATH=/opt/pyref/site /usr/bin/python3 bench/train_openclip_synth.py \
     --data SYNTH_DIR --config CFG.json --steps 3600 --batch 64 --lr 1e-3 --wd 0.1 --warmup 200

(bench/run_synth_compare.sh runs this and clipcl side by side.)
"""
import argparse
import csv
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import open_clip
from open_clip.model import CLIP
from open_clip.transform import image_transform


class Pairs(torch.utils.data.Dataset):
    def __init__(self, root, csv_name, size, tokenizer, ctx):
        with open(os.path.join(root, csv_name), newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        self.items = [(os.path.join(root, r["filepath"]), r["title"]) for r in rows]
        self.tf = image_transform(size, is_train=True)
        self.tok, self.ctx = tokenizer, ctx

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        p, cap = self.items[i]
        return self.tf(Image.open(p)), self.tok([cap], context_length=self.ctx)[0]


def zeroshot(model, root, size, templates, tok, ctx):
    tf = image_transform(size, is_train=False)
    out = {}
    model.eval()
    with torch.no_grad():
        for kind in ("pair", "colour", "shape"):
            d = os.path.join(root, "zeroshot", kind)
            classes = sorted(os.listdir(d))
            with open(os.path.join(root, "zeroshot", "classnames_%s.txt" % kind), encoding="utf-8") as f:
                names = [l.strip() for l in f if l.strip()]
            cls = []
            for n in names:
                e = F.normalize(model.encode_text(tok([t.replace("{}", n) for t in templates], context_length=ctx)), dim=-1)
                cls.append(F.normalize(e.mean(0), dim=-1))
            cls = torch.stack(cls)
            correct = total = 0
            for ci, c in enumerate(classes):
                files = sorted(os.listdir(os.path.join(d, c)))
                x = torch.stack([tf(Image.open(os.path.join(d, c, f))) for f in files])
                pred = (F.normalize(model.encode_image(x), dim=-1) @ cls.t()).argmax(1)
                correct += int((pred == ci).sum())
                total += len(files)
            out[kind] = {"top1": correct / total, "chance": 1.0 / len(classes), "n": total}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--config", required=True, help="open_clip-style JSON (clipcl info NAME --json)")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--templates", required=True)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    with open(args.config) as f:
        cfg = json.load(f)
    model = CLIP(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"],
                 quick_gelu=cfg.get("quick_gelu", False))
    size, ctx = cfg["vision_cfg"]["image_size"], cfg["text_cfg"]["context_length"]
    tok = open_clip.get_tokenizer("ViT-B-32")
    with open(args.templates, encoding="utf-8") as f:
        templates = [l.strip() for l in f if l.strip()]
    data = Pairs(args.data, "train.csv", size, tok, ctx)
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch, shuffle=True, drop_last=True,
                                         num_workers=args.workers, persistent_workers=args.workers > 0)
    exclude = lambda n, p: p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n  # noqa: E731
    named = list(model.named_parameters())
    opt = torch.optim.AdamW([{"params": [p for n, p in named if exclude(n, p)], "weight_decay": 0.0},
                             {"params": [p for n, p in named if not exclude(n, p)], "weight_decay": args.wd}],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    step, t0, losses = 0, time.time(), []
    model.train()
    while step < args.steps:
        for images, texts in loader:
            if step >= args.steps:
                break
            lr = args.lr * (step + 1) / args.warmup if step < args.warmup else \
                0.5 * (1 + math.cos(math.pi * (step - args.warmup) / (args.steps - args.warmup))) * args.lr
            for g in opt.param_groups:
                g["lr"] = lr
            img = F.normalize(model.encode_image(images), dim=-1)
            txt = F.normalize(model.encode_text(texts), dim=-1)
            logits = model.logit_scale.exp() * img @ txt.t()
            labels = torch.arange(len(images))
            loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(float(loss))
            step += 1
    seconds = time.time() - t0
    zs = zeroshot(model, args.data, size, templates, tok, ctx)
    print(json.dumps({"impl": "open_clip", "steps": step, "batch": args.batch, "train_seconds": round(seconds, 1),
                      "samples_per_s": round(step * args.batch / seconds, 1),
                      "final_loss": float(np.mean(losses[-50:])), "zeroshot": zs}))


if __name__ == "__main__":
    main()

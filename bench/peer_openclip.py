"""peer_openclip.py: open_clip 2.20 on PyTorch timed like bench/bench_model.c
(training step with AdamW, image and text encoders, fp32, random data), one
JSON object per measurement. Run through bench/run_model_bench.sh, which sets
the environment open_clip is fastest with here.
  peer_openclip.py --config CFG.json --name NAME [--batch B] [--steps N] [--what train|image|text|all]
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
from open_clip.model import CLIP


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--what", default="all")
    a = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    cfg = json.load(open(a.config))
    m = CLIP(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"],
             quick_gelu=cfg.get("quick_gelu", False))
    S, T, V = cfg["vision_cfg"]["image_size"], cfg["text_cfg"]["context_length"], cfg["text_cfg"]["vocab_size"]
    x = torch.randn(a.batch, 3, S, S)
    ids = torch.randint(1, min(V, 40000), (a.batch, T))
    ids[:, 0], ids[:, 20:], ids[:, 20] = V - 2, 0, V - 1
    B = a.batch

    def emit(what, seconds):
        print(json.dumps({"impl": "open_clip", "what": what, "config": a.name, "batch": B,
                          "samples_per_s": round(B * a.steps / seconds, 2)}), flush=True)

    if a.what in ("train", "all"):
        opt = torch.optim.AdamW(m.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2)

        def step():
            i = F.normalize(m.encode_image(x), dim=-1)
            t = F.normalize(m.encode_text(ids), dim=-1)
            lg = m.logit_scale.exp() * i @ t.t()
            lab = torch.arange(B)
            loss = (F.cross_entropy(lg, lab) + F.cross_entropy(lg.t(), lab)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
        step()
        t0 = time.time()
        for _ in range(a.steps):
            step()
        emit("train_step", time.time() - t0)
    with torch.no_grad():
        for what, fn in (("encode_image", lambda: m.encode_image(x)), ("encode_text", lambda: m.encode_text(ids))):
            if a.what not in (what.split("_")[1], "all"):
                continue
            fn()
            t0 = time.time()
            for _ in range(a.steps):
                fn()
            emit(what, time.time() - t0)


if __name__ == "__main__":
    main()

"""make_parity_fixtures.py: runs open_clip 2.20 (PyTorch) on the small
`clipcl-test` config with random init and fixed random inputs, and writes
  tests/data/parity/weights.safetensors   the model (open_clip names, F32)
  tests/data/parity/parity_gelu.safetensors, parity_quickgelu.safetensors
      inputs (images, ids), outputs (image/text features before and after
      normalisation, logits, loss) and the gradient of every parameter
      ("grad.<name>"), with __metadata__ {format, version, config}.
Both activations use the same weights. Run with the reference environment:
  PYTHONPATH=/opt/pyref/site /usr/bin/python3 tests/tools/make_parity_fixtures.py
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
from open_clip.model import CLIP  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "parity")
# must equal the built-in "clipcl-test" config (src/model/config.c)
CFG = {
    "embed_dim": 24,
    "vision_cfg": {"image_size": 24, "layers": 2, "width": 48, "patch_size": 8, "head_width": 16, "mlp_ratio": 4.0},
    "text_cfg": {"context_length": 11, "vocab_size": 300, "width": 40, "heads": 5, "layers": 2},
}
B = 5


def make_inputs(gen):
    images = torch.randn(B, 3, 24, 24, generator=gen)
    ctx, V = CFG["text_cfg"]["context_length"], CFG["text_cfg"]["vocab_size"]
    ids = torch.zeros(B, ctx, dtype=torch.int32)
    lengths = [2, 5, 11, 7, 9]  # with SOT/EOT; 11 fills the context
    for b, n in enumerate(lengths):
        ids[b, 0] = V - 2  # "SOT"
        ids[b, 1:n - 1] = torch.randint(1, V - 2, (n - 2,), generator=gen, dtype=torch.int32)
        ids[b, n - 1] = V - 1  # "EOT": the largest id, found by argmax
    ids[3, 2] = ids[3, 4]  # a duplicate id inside one caption
    return images, ids


def run(model, images, ids):
    model.zero_grad()
    img = model.encode_image(images)
    txt = model.encode_text(ids.long())
    img_n, txt_n = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    scale = model.logit_scale.exp()
    logits_per_image = scale * img_n @ txt_n.t()
    logits_per_text = logits_per_image.t()
    labels = torch.arange(B)
    loss = (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)) / 2
    loss.backward()
    out = {
        "images": images.numpy(), "ids": ids.numpy(),
        "image_features": img.detach().numpy(), "text_features": txt.detach().numpy(),
        "image_embeds": img_n.detach().numpy(), "text_embeds": txt_n.detach().numpy(),
        "logits_per_image": logits_per_image.detach().numpy(), "loss": loss.detach().reshape(1).numpy(),
    }
    for name, p in model.named_parameters():
        out["grad." + name] = p.grad.numpy().copy()
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(1234)
    model = CLIP(**CFG, quick_gelu=False)
    # move logit_scale off its init so its gradient path is exercised generally
    with torch.no_grad():
        model.logit_scale.fill_(np.log(1 / 0.07) - 0.3)
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    st.write(os.path.join(OUT, "weights.safetensors"), sd,
             {"format": "pt", "source": "open_clip 2.20.0 CLIP(clipcl-test), torch.manual_seed(1234)"})
    gen = torch.Generator().manual_seed(99)
    images, ids = make_inputs(gen)
    for quick in (False, True):
        m = CLIP(**CFG, quick_gelu=quick)
        m.load_state_dict(model.state_dict(), strict=True)
        cfg = dict(CFG, quick_gelu=quick)
        out = run(m, images, ids)
        name = "parity_quickgelu.safetensors" if quick else "parity_gelu.safetensors"
        st.write(os.path.join(OUT, name), out,
                 {"format": "clipcl-parity", "version": "1", "config": json.dumps(cfg),
                  "source": "open_clip 2.20.0, torch %s" % torch.__version__})
        print(name, "loss", float(out["loss"][0]))


if __name__ == "__main__":
    main()

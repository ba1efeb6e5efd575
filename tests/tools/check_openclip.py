"""check_openclip.py: end-to-end checks of clipcl against open_clip 2.20 on
full-size models (too large to commit as fixtures), run by hand or by
bench/, never by CI (needs torch):

  parity  ViT-B-32 (exact GELU) and ViT-B-32-quickgelu: open_clip creates a
          seeded random model, clipcl loads its weights; both embed the same
          PNG images (through their own decoding and preprocessing) and
          captions (through their own tokenizers); embeddings must agree
          within 1e-4 (max abs difference of unit vectors).
  roundtrip  `clipcl init` writes a model; open_clip loads it with
          load_state_dict(strict=True) and must give clipcl's embeddings.

  PYTHONPATH=/opt/pyref/site /usr/bin/python3 tests/tools/check_openclip.py \
      --clipcl build/clipcl [--models ViT-B-32,ViT-B-32-quickgelu] [--work DIR]
Prints one JSON line per check and exits non-zero if any fails.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402
import open_clip  # noqa: E402

CAPTIONS = ["a photo of a fox", "a diagram", "two red circles on a blue background",
            "A Long Caption, with punctuation! And numbers: 1234 and émojis 🦊 " * 3]


def make_images(d, n=4):
    rng = np.random.default_rng(5)
    paths = []
    for i, (w, h) in enumerate([(224, 224), (301, 257), (640, 480), (97, 333)][:n]):
        y, x = np.mgrid[0:h, 0:w]
        img = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)),
                        rng.integers(0, 256, (h, w))], -1).astype(np.uint8)
        p = os.path.join(d, "img%d.png" % i)
        Image.fromarray(img, "RGB").save(p)
        paths.append(p)
    return paths


def openclip_embed(model, preprocess, paths, captions):
    tok = open_clip.get_tokenizer("ViT-B-32")
    with torch.no_grad():
        x = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths])
        img = model.encode_image(x)
        txt = model.encode_text(tok(captions))
        return (torch.nn.functional.normalize(img, dim=-1).numpy(),
                torch.nn.functional.normalize(txt, dim=-1).numpy())


def clipcl_embed(clipcl, weights, config, paths, captions, work):
    listf = os.path.join(work, "images.txt")
    with open(listf, "w") as f:
        f.write("\n".join(paths) + "\n")
    capf = os.path.join(work, "captions.txt")
    with open(capf, "w") as f:
        f.write("\n".join(captions) + "\n")
    prefix = os.path.join(work, "emb")
    cmd = [clipcl, "embed", "--model", weights, "--images", listf, "--texts", capf, "--out", prefix]
    if config:
        cmd += ["--model-config", config]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return np.load(prefix + ".image.npy"), np.load(prefix + ".text.npy")


def report(name, a, b, tol=1e-4):
    d = float(np.abs(a - b).max())
    ok = d <= tol and a.shape == b.shape
    print(json.dumps({"check": name, "max_abs_diff": d, "tolerance": tol, "ok": ok}), flush=True)
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clipcl", required=True)
    ap.add_argument("--models", default="ViT-B-32,ViT-B-32-quickgelu")
    ap.add_argument("--work", default=None)
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="clipcl_check_")
    paths = make_images(work)
    ok = True
    for name in args.models.split(","):
        torch.manual_seed(0)
        model, _, preprocess = open_clip.create_model_and_transforms(name)
        model.eval()
        weights = os.path.join(work, name + ".safetensors")
        st.write(weights, {k: v.numpy() for k, v in model.state_dict().items()}, {"format": "pt"})
        want_i, want_t = openclip_embed(model, preprocess, paths, CAPTIONS)
        got_i, got_t = clipcl_embed(args.clipcl, weights, name, paths, CAPTIONS, work)
        ok &= report(name + " image embeddings", got_i, want_i)
        ok &= report(name + " text embeddings", got_t, want_t)
        os.remove(weights)
    # round trip: clipcl's own initialisation into open_clip
    name = args.models.split(",")[0]
    weights = os.path.join(work, "clipcl_init.safetensors")
    subprocess.run([args.clipcl, "init", "--model-config", name, "--seed", "7", "--out", weights], check=True,
                   stdout=subprocess.DEVNULL)
    tensors, meta = st.read(weights)
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    missing = model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=True)
    print(json.dumps({"check": "open_clip load_state_dict(strict=True) of clipcl init", "ok": True,
                      "tensors": len(tensors), "result": str(missing)}), flush=True)
    model.eval()
    want_i, want_t = openclip_embed(model, preprocess, paths, CAPTIONS)
    got_i, got_t = clipcl_embed(args.clipcl, weights, None, paths, CAPTIONS, work)
    ok &= report("round trip image embeddings", got_i, want_i)
    ok &= report("round trip text embeddings", got_t, want_t)
    os.remove(weights)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

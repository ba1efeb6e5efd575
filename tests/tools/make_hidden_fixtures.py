"""make_hidden_fixtures.py: the reference for `clipcl embed --hidden-states`:
Hugging Face transformers' CLIPTextModel (as Stable Diffusion uses it) on a
tiny random CLIP with the real 49,408-token vocabulary, and writes
  tests/data/hidden/model.safetensors  the weights as transformers saves them
      (HF names, F16; token rows the texts do not use are zero, so the file
      packs small)
  tests/data/hidden/config.json        the same model as an open_clip config
  tests/data/hidden/texts.txt          the captions, one per line
  tests/data/hidden/ids.npy            (N, 16) int32, open_clip's tokenizer
  tests/data/hidden/last.npy           (N, 16, 32) float32: last_hidden_state
  tests/data/hidden/penultimate.npy    (N, 16, 32) float32:
      text_model.final_layer_norm(hidden_states[-2])
computed in float32 from the F16-rounded weights. Run with transformers from
PyPI in a venv that keeps Debian's torch, plus open_clip for the tokenizer:
  /usr/bin/python3 -m venv --system-site-packages /tmp/hf && /tmp/hf/bin/pip install transformers==4.36.2
  PYTHONPATH=/opt/pyref/site /tmp/hf/bin/python tests/tools/make_hidden_fixtures.py
"""
import json
import os

import numpy as np
import open_clip
import torch
import transformers
from transformers import CLIPConfig, CLIPModel

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "hidden")
CTX, WIDTH = 16, 32
TEXTS = [
    "a photo of a cat",
    "",
    "A long caption that goes well beyond sixteen tokens, so it is cut and ends with the end token.",
    "caf\u00e9 cr\u00e8me & <b>bold</b> \U0001f642 emoji",
    "   spaces   and\ttabs  ",
]


def main():
    os.makedirs(OUT, exist_ok=True)
    act = "quick_gelu"  # OpenAI's text towers (Stable Diffusion 1.x) use it
    cfg = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=WIDTH, intermediate_size=4 * WIDTH, num_hidden_layers=3,
                         num_attention_heads=2, max_position_embeddings=CTX, hidden_act=act),
        vision_config=dict(hidden_size=WIDTH, intermediate_size=4 * WIDTH, num_hidden_layers=1,
                           num_attention_heads=2, image_size=16, patch_size=8, hidden_act=act),
        projection_dim=16)
    torch.manual_seed(12)
    model = CLIPModel(cfg).eval()
    ids = open_clip.tokenizer.tokenize(TEXTS, context_length=CTX).to(torch.int32)
    used = torch.unique(ids.long())
    with torch.no_grad():
        for name, p in model.named_parameters():
            # HF initialises LayerNorms to (1, 0) and biases to 0: random
            # values make every parameter count in the comparison
            p.add_(0.05 * torch.randn_like(p))
            if name == "text_model.embeddings.token_embedding.weight":
                keep = torch.zeros(p.shape[0], dtype=torch.bool)
                keep[used] = True
                p[~keep] = 0
            p.copy_(p.half().float())  # the F16 file holds exactly these values
        out = model.text_model(input_ids=ids.long(), output_hidden_states=True)
        last = out.last_hidden_state.numpy()
        penult = model.text_model.final_layer_norm(out.hidden_states[-2]).numpy()
    model.half().save_pretrained(OUT, safe_serialization=True)
    for junk in ("config.json",):  # transformers' own config: the open_clip one replaces it
        os.remove(os.path.join(OUT, junk))
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump({"embed_dim": 16, "quick_gelu": act == "quick_gelu",
                   "vision_cfg": {"image_size": 16, "layers": 1, "width": WIDTH, "patch_size": 8, "head_width": 16,
                                  "mlp_ratio": 4.0},
                   "text_cfg": {"context_length": CTX, "vocab_size": 49408, "width": WIDTH, "heads": 2,
                                "layers": 3}}, f, indent=1)
        f.write("\n")
    with open(os.path.join(OUT, "texts.txt"), "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in TEXTS))
    np.save(os.path.join(OUT, "ids.npy"), ids.numpy())
    np.save(os.path.join(OUT, "last.npy"), last.astype(np.float32))
    np.save(os.path.join(OUT, "penultimate.npy"), penult.astype(np.float32))
    print("wrote", OUT, "with transformers", transformers.__version__, "torch", torch.__version__,
          "shapes", last.shape, penult.shape)


if __name__ == "__main__":
    main()

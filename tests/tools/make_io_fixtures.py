#!/usr/bin/env python3
"""make_io_fixtures.py: writes the fixtures of the io tests into tests/data/.

  st_dtypes.safetensors   float conversions: every F16 bit pattern, a spread of
                          BF16 patterns and F64 values with their float32 values
                          as numpy computes them, and F32 sources with the F16
                          (numpy astype) and BF16 (round to nearest even on the
                          bits; checked against torch when it is importable)
                          encodings; an I64 position_ids buffer; metadata.
                          The safetensors bytes are written by hand here with
                          struct/json (no safetensors package is used).
  npy_v1_2d.npy           numpy.save of a 3x5 float32 array (format 1.0)
  npy_v2_1d.npy           format 2.0, 1-D, written with numpy.lib.format
  npy_v1_align16.npy      format 1.0 as numpy < 1.9 wrote it (16-byte padding)
  names_vitb32_openai.txt open_clip ViT-B-32 state_dict names and shapes
                          (only rewritten when open_clip is importable)
  names_vitb32_hf.txt     HF transformers CLIPModel names and shapes for the
                          same config, spelled out here from the module layout

Values in the npy files are (i * 0.25 - 3) for element i, exactly
representable, so the C test checks them without a second fixture.

Source and licence: all values are generated here (same licence as the
project); names_vitb32_openai.txt lists the tensor names and shapes that
open_clip 2.20.0 (MIT licence) reports for an untrained ViT-B-32, no weights.
Run: PYTHONPATH=/opt/pyref/site /usr/bin/python3 tests/tools/make_io_fixtures.py
"""
import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, dtype string, shape, raw little-endian bytes)."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    off = 0
    blobs = []
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)


def bf16_rne(x):
    """float32 array -> uint16 BF16 bits, round to nearest even, NaN kept."""
    u = x.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(x)
    r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return r


def le(a, dt):
    return np.ascontiguousarray(a, dtype=np.dtype(dt).newbyteorder("<")).tobytes()


def dtypes_fixture(rng):
    t = []
    # every F16 pattern: zeros, subnormals, normals, inf, NaN payloads
    f16 = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    t.append(("f16_all", "F16", [256, 256], le(f16, "<u2")))
    t.append(("f16_all_f32", "F32", [256, 256], le(f16.view(np.float16).astype(np.float32), "<f4")))

    # BF16: every exponent with a few mantissas, both signs
    mant = np.array([0, 1, 2, 0x3F, 0x40, 0x41, 0x7E, 0x7F], dtype=np.uint32)
    e = np.arange(256, dtype=np.uint32)
    pos = ((e[:, None] << 7) | mant[None, :]).ravel()
    bf = np.concatenate([pos, pos | 0x8000, rng.integers(0, 65536, 1024, dtype=np.uint32)]).astype(np.uint16)
    t.append(("bf16_some", "BF16", [bf.size], le(bf, "<u2")))
    t.append(("bf16_some_f32", "F32", [bf.size], le((bf.astype(np.uint32) << 16).view(np.float32), "<f4")))

    # F32 -> F16 / BF16 encodings
    fmax16 = 65504.0
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.0, -1.0, fmax16, -fmax16,
                65519.99, 65520.0, 65536.0, 1e10, -1e10, 2.0 ** -14, 2.0 ** -14 * (1 - 2.0 ** -11),
                2.0 ** -24, 2.0 ** -25, 2.0 ** -25 * (1 + 2.0 ** -20), 2.0 ** -26, 1.5 * 2.0 ** -24,
                2.5 * 2.0 ** -24, 3.5 * 2.0 ** -24, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11,
                1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, 1e-45, 1.17549435e-38, 3.4028235e38, -3.4028235e38,
                2.0 ** -14 - 2.0 ** -25, 2.0 ** -14 - 2.0 ** -26]
    src = np.concatenate([
        np.array(specials, dtype=np.float32),
        rng.integers(0, 2 ** 32, 16384, dtype=np.uint64).astype(np.uint32).view(np.float32),
        (rng.standard_normal(8192) * 10.0 ** rng.uniform(-9, 6, 8192)).astype(np.float32),
    ])
    with np.errstate(over="ignore", invalid="ignore"):
        f16 = src.astype(np.float16).view(np.uint16)
    b16 = bf16_rne(src)
    try:
        import torch

        tb = torch.from_numpy(src.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        ok = (tb == b16) | np.isnan(src)
        assert ok.all(), "bf16 rounding disagrees with torch at %s" % np.nonzero(~ok)[0][:5]
        print("bf16 encodings agree with torch", torch.__version__)
    except ImportError:
        print("torch not importable: bf16 encodings not cross-checked")
    t.append(("enc_src", "F32", [src.size], le(src, "<f4")))
    t.append(("enc_f16", "F16", [src.size], le(f16, "<u2")))
    t.append(("enc_bf16", "BF16", [src.size], le(b16, "<u2")))

    # F64 -> F32
    fmax = float(np.finfo(np.float32).max)
    half_ulp = 2.0 ** 103
    d_specials = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, fmax, -fmax, fmax + half_ulp,
                  fmax + half_ulp * (1 - 2.0 ** -30), -(fmax + half_ulp), 1e39, -1e300, 1e300,
                  1e-40, 1.4e-45, 2.0 ** -150, 2.0 ** -150 * (1 + 2.0 ** -40), 1e-50, -1e-50,
                  1 + 2.0 ** -24, 1 + 3 * 2.0 ** -24, 0.1, -2.0 / 3.0]
    d = np.concatenate([np.array(d_specials), rng.standard_normal(2000) * 10.0 ** rng.uniform(-50, 50, 2000)])
    with np.errstate(over="ignore"):
        d32 = d.astype(np.float32)
    t.append(("f64_src", "F64", [d.size], le(d, "<f8")))
    t.append(("f64_as_f32", "F32", [d.size], le(d32, "<f4")))

    # an integer buffer as HF files carry
    t.append(("text_model.embeddings.position_ids", "I64", [1, 77], le(np.arange(77), "<i8")))
    meta = {"format": "pt", "generator": "tests/tools/make_io_fixtures.py"}
    write_safetensors(os.path.join(DATA, "st_dtypes.safetensors"), t, meta)


def npy_fixtures():
    a = (np.arange(15, dtype=np.float32) * 0.25 - 3).reshape(3, 5)
    np.save(os.path.join(DATA, "npy_v1_2d.npy"), a)
    b = np.arange(7, dtype=np.float32) * 0.25 - 3
    with open(os.path.join(DATA, "npy_v2_1d.npy"), "wb") as f:
        np.lib.format.write_array(f, b, version=(2, 0))
    # numpy < 1.9 padded the header to 16 bytes and had no growth spaces
    c = (np.arange(6, dtype=np.float32) * 0.25 - 3).reshape(2, 3)
    h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
    hl = len(h) + 1
    h = h + " " * (16 - (10 + hl) % 16 if (10 + hl) % 16 else 0) + "\n"
    with open(os.path.join(DATA, "npy_v1_align16.npy"), "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode("latin1") + c.tobytes())
    for p in ("npy_v1_2d.npy", "npy_v2_1d.npy", "npy_v1_align16.npy"):
        x = np.load(os.path.join(DATA, p))
        assert x.dtype == np.float32 and np.array_equal(x.ravel(), np.arange(x.size, dtype=np.float32) * 0.25 - 3)


def hf_names(embed=512, vw=768, vl=12, patch=32, image=224, tw=512, tl=12, vocab=49408, ctx=77, mlp=4):
    """HF transformers CLIPModel state_dict names (module layout of
    modeling_clip.py: CLIPTextTransformer, CLIPVisionTransformer, projections)."""
    out = []

    def layers(prefix, w, n):
        for i in range(n):
            p = "%s.encoder.layers.%d." % (prefix, i)
            for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
                out.append((p + "self_attn.%s.weight" % proj, [w, w]))
                out.append((p + "self_attn.%s.bias" % proj, [w]))
            out.extend([(p + "layer_norm1.weight", [w]), (p + "layer_norm1.bias", [w]),
                    (p + "mlp.fc1.weight", [mlp * w, w]), (p + "mlp.fc1.bias", [mlp * w]),
                    (p + "mlp.fc2.weight", [w, mlp * w]), (p + "mlp.fc2.bias", [w]),
                    (p + "layer_norm2.weight", [w]), (p + "layer_norm2.bias", [w])])

    out += [("text_model.embeddings.token_embedding.weight", [vocab, tw]),
            ("text_model.embeddings.position_embedding.weight", [ctx, tw]),
            ("text_model.embeddings.position_ids", [1, ctx])]
    layers("text_model", tw, tl)
    out += [("text_model.final_layer_norm.weight", [tw]), ("text_model.final_layer_norm.bias", [tw])]
    npos = (image // patch) ** 2 + 1
    out += [("vision_model.embeddings.class_embedding", [vw]),
            ("vision_model.embeddings.patch_embedding.weight", [vw, 3, patch, patch]),
            ("vision_model.embeddings.position_embedding.weight", [npos, vw]),
            ("vision_model.embeddings.position_ids", [1, npos]),
            ("vision_model.pre_layrnorm.weight", [vw]), ("vision_model.pre_layrnorm.bias", [vw])]
    layers("vision_model", vw, vl)
    out += [("vision_model.post_layernorm.weight", [vw]), ("vision_model.post_layernorm.bias", [vw]),
            ("visual_projection.weight", [embed, vw]), ("text_projection.weight", [embed, tw]),
            ("logit_scale", [])]
    return out


def write_names(path, names, source):
    with open(path, "w") as f:
        f.write("# %s\n# name<TAB>shape (comma separated, empty for a scalar)\n" % source)
        for n, s in names:
            f.write("%s\t%s\n" % (n, ",".join(str(x) for x in s)))


def names_fixtures():
    write_names(os.path.join(DATA, "names_vitb32_hf.txt"), hf_names(),
                "HF transformers CLIPModel names for ViT-B/32, from tests/tools/make_io_fixtures.py")
    try:
        import open_clip
    except ImportError:
        print("open_clip not importable: names_vitb32_openai.txt kept as is")
        return
    sd = open_clip.create_model("ViT-B-32").state_dict()
    write_names(os.path.join(DATA, "names_vitb32_openai.txt"), [(k, list(v.shape)) for k, v in sd.items()],
                "open_clip %s ViT-B-32 state_dict names, from tests/tools/make_io_fixtures.py"
                % open_clip.version.__version__)


def main():
    os.makedirs(DATA, exist_ok=True)
    rng = np.random.default_rng(20240611)
    dtypes_fixture(rng)
    npy_fixtures()
    names_fixtures()
    print("fixtures written to", os.path.normpath(DATA))


if __name__ == "__main__":
    sys.exit(main())

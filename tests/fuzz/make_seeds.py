#!/usr/bin/python3
"""make_seeds.py: writes the committed seed corpora of tests/fuzz/corpus/:
small valid files of every kind each parser reads, and near-valid ones (cut,
one field wrong) that reach the error paths. Deterministic; rerun after a
format change and commit the result. Crash inputs found by fuzzing are
committed next to these as regress-* files and are not touched here.

  /usr/bin/python3 tests/fuzz/make_seeds.py BUILD/clipcl

Needs Debian's python3-numpy and python3-pil, and the clipcl command (for a
tiny model's weights file in both naming schemes).
"""
import gzip
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
IMAGES = os.path.join(SRC, "tests", "data", "images")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def image_file(name):
    with open(os.path.join(IMAGES, name), "rb") as f:
        return f.read()


# ---- safetensors ------------------------------------------------------------
def st_bytes(tensors, meta=None, pad=True):
    header, blobs, off = {}, [], 0
    if meta is not None:
        header["__metadata__"] = meta
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def safetensors(clipcl):
    f32 = np.arange(6, dtype="<f4").tobytes()
    tensors = [
        ("a", "F32", [2, 3], f32),
        ("h", "F16", [3], np.array([1, -2, 0.5], dtype="<f2").tobytes()),
        ("b", "BF16", [2], b"\x80\x3f\x00\xc0"),
        ("d", "F64", [1], np.array([1e300], dtype="<f8").tobytes()),
        ("s", "F32", [], np.array([4.6], dtype="<f4").tobytes()),
        ("e", "F32", [0, 4], b""),
        ("i", "I64", [1, 2], np.array([0, 1], dtype="<i8").tobytes()),
        ("u", "U8", [2], b"\x01\x02"),
    ]
    put("safetensors", "dtypes.safetensors", st_bytes(tensors, {"format": "pt", "k": "v"}))
    put("safetensors", "empty.safetensors", st_bytes([]))
    put("safetensors", "unpadded.safetensors", st_bytes(tensors[:2], pad=False))
    put("safetensors", "cut.safetensors", st_bytes(tensors[:3])[:-3])
    bad = st_bytes([("a", "F32", [2, 3], f32)]).replace(b"[2,3]", b"[3,3]")
    put("safetensors", "shape_mismatch.safetensors", bad)
    # a whole (tiny) model, open_clip names with the config in metadata, and HF names
    cfg = {"embed_dim": 4, "quick_gelu": False,
           "vision_cfg": {"image_size": 2, "layers": 1, "width": 4, "patch_size": 1, "head_width": 4,
                          "mlp_ratio": 1.0},
           "text_cfg": {"context_length": 2, "vocab_size": 3, "width": 4, "heads": 1, "layers": 1,
                        "mlp_ratio": 1.0}}
    with tempfile.TemporaryDirectory() as t:
        cj = os.path.join(t, "tiny.json")
        with open(cj, "w") as f:
            json.dump(cfg, f)
        m, hf = os.path.join(t, "m.safetensors"), os.path.join(t, "hf.safetensors")
        subprocess.run([clipcl, "init", "--model-config", cj, "--seed", "1", "--out", m], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([clipcl, "convert", m, hf, "--to", "hf"], check=True, stdout=subprocess.DEVNULL)
        put("safetensors", "tiny_model.safetensors", open(m, "rb").read())
        put("safetensors", "tiny_model_hf.safetensors", open(hf, "rb").read())


# ---- .npy -------------------------------------------------------------------
def npy_bytes(arr, version=(1, 0), header=None):
    if header is None:
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % (tuple(arr.shape),)
    h = header.encode("latin1")
    lenfmt, pre = ("<H", 10) if version[0] == 1 else ("<I", 12)
    pad = -(pre + len(h) + 1) % 64
    h = h + b" " * pad + b"\n"
    return b"\x93NUMPY" + bytes(version) + struct.pack(lenfmt, len(h)) + h + arr.astype("<f4").tobytes()


def npy():
    a = np.arange(6, dtype="<f4").reshape(2, 3)
    put("npy", "v1_2d.npy", npy_bytes(a))
    put("npy", "v2_1d.npy", npy_bytes(np.arange(3, dtype="<f4"), (2, 0)))
    put("npy", "empty_rows.npy", npy_bytes(np.zeros((0, 4), dtype="<f4")))
    put("npy", "fortran.npy", npy_bytes(a, header="{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }"))
    put("npy", "f8.npy", npy_bytes(a, header="{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }"))
    put("npy", "cut.npy", npy_bytes(a)[:-5])


# ---- CSV manifests (first byte: variant bits, see fuzz_csv.c) -------------------
def csv():
    put("csv", "captions.csv", b"\x00filepath,title\na.jpg,a red circle\nb.png,\"a, quoted \"\"caption\"\"\"\n")
    put("csv", "crlf_bom.csv", b"\x00\xef\xbb\xbffilepath,title,extra\r\na.jpg,one,x\r\n\r\nb.jpg,two\r\n")
    put("csv", "multiline.csv", b"\x00title,filepath\n\"line one\nline two\",img/a.jpg\n,empty.jpg\n")
    put("csv", "labels.tsv", b"\x03filepath\tlabel\na.png\t0\nb.png\t12\nc.png\tx\n")
    put("csv", "keys_semicolon.csv", b"\x0cimage;caption\n/abs/a.jpg;caf\xc3\xa9\n;no path\n")
    put("csv", "unterminated.csv", b"\x00filepath,title\na.jpg,\"never closed\n")
    put("csv", "no_column.csv", b"\x00path,text\na.jpg,x\n")


# ---- WebDataset tar shards ------------------------------------------------------
def tar_bytes(members, fmt=tarfile.USTAR_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 0
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def tar():
    png = image_file("png_rgb8_1x1.png")
    jpg = image_file("jpg_1x1.jpg")
    good = [("000000.jpg", jpg), ("000000.txt", b"a red circle"),
            ("000001.png", png), ("000001.json", b'{"caption": "a blue square", "w": 1}')]
    put("tar", "two_samples.tar", tar_bytes(good))
    put("tar", "two_samples.tar.gz", gzip.compress(tar_bytes(good), mtime=0))
    put("tar", "pax_dirs.tar", tar_bytes([("d/k.1.PNG", png), ("d/k.1.txt", b"x"), ("__meta__", b"m"),
                                          ("./e.webp", b"RIFF"), ("e.txt", b"w")], tarfile.PAX_FORMAT))
    put("tar", "missing_parts.tar", tar_bytes([("a.jpg", jpg), ("b.txt", b"no image"),
                                               ("c.png", png), ("c.json", b"[1]")]))
    put("tar", "cut.tar", tar_bytes(good)[:1536])


# ---- shard specs (then a NUL and sizes.json) ------------------------------------------
def brace():
    specs = [b"s{0..1}.tar", b"shards/{000000..000127}.tar", b"a{b,c{d,e}}f", b"{a..z..2}{Z..A}",
             b"s0.tar::s{1,2}.tar", b"x\\{y\\,z}.tar", b"{9..-3..4}", b"{}{,}{a}",
             b"s{0..1}.tar\x00{\"s0.tar\": 10, \"s1.tar\": \"5\"}", b"s0.tar\x00[1, 2]"]
    for i, s in enumerate(specs):
        put("brace", "spec%02d" % i, s)


# ---- tokenizer -------------------------------------------------------------------------
def tokenizer():
    rows = [json.loads(l) for l in open(os.path.join(SRC, "tests", "data", "tokenizer_corpus.jsonl"), encoding="utf-8")]
    pick = rows[::70][:20]
    for i, r in enumerate(pick):
        put("tokenizer", "text%02d" % i, r["text"].encode("utf-8"))
    put("tokenizer", "entities", b"&amp;lt;b&amp;gt; caf&eacute; &#x1F600; &#128512; &nbsp;it's we'll")
    put("tokenizer", "bad_utf8", b"ok \xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80")


# ---- BPE vocabularies --------------------------------------------------------------
def vocab():
    # the first merges of the real vocabulary, as a small file of the same form
    with gzip.open(os.path.join(SRC, "src", "text", "bpe_simple_vocab_16e6.txt.gz"), "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(200)]
    text = "".join(lines).encode("utf-8")
    put("vocab", "first_199_merges.txt", text)
    put("vocab", "first_199_merges.txt.gz", gzip.compress(text, mtime=0))
    put("vocab", "header_only.txt", lines[0].encode("utf-8"))
    put("vocab", "unknown_symbol.txt", (lines[0] + "zq\u00e9 x\n").encode("utf-8"))
    put("vocab", "one_symbol.txt", (lines[0] + "a\n").encode("utf-8"))
    put("vocab", "cut.txt.gz", gzip.compress(text, mtime=0)[:150])


# ---- images -------------------------------------------------------------------------------
def images():
    for name in sorted(os.listdir(IMAGES)):
        if name.endswith(".png") and os.path.getsize(os.path.join(IMAGES, name)) <= 2400:
            put("png", name, image_file(name))
    for name in ["jpg_1x1.jpg", "jpg_420_129x7.jpg", "jpg_422_7x129.jpg", "jpg_grey_129x31.jpg",
                 "bad_trunc.jpg", "bad_header_only.jpg", "bad_jpeg_garbage.jpg"]:
        put("jpeg", name, image_file(name))
    rgb = Image.new("RGB", (9, 7))
    rgb.putdata([((x * 40) % 256, (y * 50) % 256, (x * y * 9) % 256) for y in range(7) for x in range(9)])

    def jpeg(img, **kw):
        b = io.BytesIO()
        img.save(b, "JPEG", quality=80, **kw)
        return b.getvalue()
    put("jpeg", "prog_9x7.jpg", jpeg(rgb, progressive=True))
    put("jpeg", "cmyk_9x7.jpg", jpeg(rgb.convert("CMYK")))
    put("jpeg", "444_9x7.jpg", jpeg(rgb, subsampling=0))
    put("jpeg", "optimized_9x7.jpg", jpeg(rgb, optimize=True))
    put("jpeg", "grey_prog_9x7.jpg", jpeg(rgb.convert("L"), progressive=True))


# ---- class-name and template lists (first byte: 0 class names, 1 templates) ------------------
def text_list():
    put("text_list", "classnames", b"\x00cat\ndog\nred car\n")
    put("text_list", "classnames_bom_crlf", b"\x00\xef\xbb\xbf  caf\xc3\xa9 \r\n\tsea lion\r\n")
    put("text_list", "templates", b"\x01a photo of a {}.\nitap of the {}.\n{} and {}\n")
    put("text_list", "duplicate", b"\x00cat\ndog\ncat\n")
    put("text_list", "no_slot", b"\x01a photo\n")
    put("text_list", "blank_line", b"\x00a\n\nb\n")
    put("text_list", "control", b"\x00a\x01b\n")


# ---- model config JSON -----------------------------------------------------------------------
def config():
    b32 = {"embed_dim": 512, "quick_gelu": True,
           "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}}
    put("config", "vit_b_32.json", json.dumps(b32, indent=4))
    tiny = {"embed_dim": 4, "vision_cfg": {"image_size": 2, "layers": 1, "width": 4, "patch_size": 1,
                                           "head_width": 4, "mlp_ratio": 1.5},
            "text_cfg": {"context_length": 2, "vocab_size": 3, "width": 4, "heads": 1, "layers": 1, "mlp_ratio": 2}}
    put("config", "tiny.json", json.dumps(tiny))
    put("config", "timm.json", json.dumps({"embed_dim": 512, "vision_cfg": {"timm_model_name": "resnet50"},
                                           "text_cfg": {"hf_model_name": "roberta-base"}}))
    put("config", "layers_list.json", json.dumps({"embed_dim": 1024, "vision_cfg": {"layers": [3, 4, 6, 3]},
                                                  "text_cfg": {}}))
    put("config", "bad_type.json", '{"embed_dim": "512", "vision_cfg": {}, "text_cfg": {}}')
    put("config", "not_object.json", "[1, 2, 3]")


# ---- search index: index.json SEP embeddings-1.npy SEP paths-1.txt ---------------------------------
def index():
    sep = b"\n--clipcl-fuzz--\n"
    e = np.array([[1, 0, 0], [0, 0.6, 0.8]], dtype="<f4")
    meta = {"format": "clipcl-index", "version": 1, "model": "m-1", "dim": 3, "count": 2, "generation": 1}
    paths = b"/photos/a.jpg\n/photos/back\\\\slash\\nnewline.png\n"
    put("index", "two_rows", json.dumps(meta, indent=2).encode() + sep + npy_bytes(e) + sep + paths)
    meta0 = dict(meta, count=0)
    put("index", "empty", json.dumps(meta0).encode() + sep + npy_bytes(np.zeros((0, 3), dtype="<f4")) + sep)
    put("index", "count_mismatch", json.dumps(dict(meta, count=3)).encode() + sep + npy_bytes(e) + sep + paths)
    put("index", "not_normalised", json.dumps(meta).encode() + sep + npy_bytes(e * 2) + sep + paths)
    put("index", "duplicate_path", json.dumps(meta).encode() + sep + npy_bytes(e) + sep + b"/a\n/a\n")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    safetensors(sys.argv[1])
    npy()
    csv()
    tar()
    brace()
    tokenizer()
    vocab()
    images()
    text_list()
    config()
    index()


if __name__ == "__main__":
    main()

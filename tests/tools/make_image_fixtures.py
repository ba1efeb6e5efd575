#!/usr/bin/env python3
"""make_image_fixtures.py: writes tests/data/images/ for tests/test_image.c.

What it writes (all generated here from numpy-random content plus gradients,
hard edges and saturated blocks, so every file is original and CC0):
  * test images: every PNG variant the decoder must read (grey 1/2/4/8/16,
    grey+alpha 8/16, palette 1/2/4/8 with and without tRNS, RGB 8/16, RGBA
    8/16, grey/RGB with a tRNS colour, Adam7 interlaced) written by a small
    PNG encoder below (PIL cannot write most of them), and JPEGs (4:2:0, 4:2:2,
    4:4:4, greyscale, progressive, Adobe CMYK from PIL; YCCK, CMYK without the
    Adobe marker and RGB without the YCbCr transform from mkjpeg_special.c);
  * bad files the decoder must refuse;
  * manifest.txt, one line per check, naming byte offsets into the payload of expected.bin.gz:
      decode FILE W H OFF          expected 8-bit RGB (H,W,3): PIL's
                                   Image.open(FILE).convert("RGB"), except for
                                   16-bit PNGs where it is round(v*255/65535)
      pre FILE S OFF               torchvision Resize(S, BICUBIC) + CenterCrop(S)
                                   of that expected RGB, uint8 (S,S,3)
      box FILE X Y W H S OFF       torchvision resized_crop (PIL crop, then
                                   resize to SxS bicubic), uint8 (S,S,3)
      decodehash FILE W H HEX      as decode, but only the FNV-1a 64 hash of
                                   the expected bytes (for the largest image)
      fallback FILE S X Y W H OFF  RandomResizedCrop(S, (0.9,1), (3/4,4/3))
                                   where every try fails, so torchvision takes
                                   its deterministic centre fallback box
      norm OFF                     ToTensor + Normalize(open_clip OpenAI mean,
                                   std) of the values 0..255, float32 (3,256)
      bad FILE STATUS              must be refused with CLIPCL_ERR_STATUS
  * expected.bin.gz: gzip of "CCIMGFX1", u64 little-endian payload length, payload.

The script also checks its own expectations against PIL, checks that the norm
table composed with `pre` equals open_clip's eval transform, and prints how far
open_clip's own order (resize before convert("RGB")) is from convert-first.

Run: PYTHONPATH=/opt/pyref/site /usr/bin/python3 tests/tools/make_image_fixtures.py
(needs gcc and the libjpeg headers for mkjpeg_special.c).
"""
import gzip
import os
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode

import open_clip
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "images")
BIC = InterpolationMode.BICUBIC

manifest = []
payload = bytearray()


def put(arr):
    off = len(payload)
    payload.extend(np.ascontiguousarray(arr).tobytes())
    return off


def content(w, h, seed):
    """uint8 (h,w,3): gradients, a sine, a hard-edged grey checker band, a
    saturated block and a block of uniform noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    fx = x / max(w - 1, 1)
    fy = y / max(h - 1, 1)
    img = np.stack([255 * fx, 255 * fy, 127.5 * (1 + np.sin(6.283 * (2 * fx + 3 * fy)))], -1)
    band = (fx > 0.55) & (fx < 0.8)
    cb = ((x.astype(int) // 3 + y.astype(int) // 5) % 2) * 255.0
    img[band] = cb[band][:, None]
    rect = (fy > 0.6) & (fy < 0.75) & (fx < 0.45)
    img[rect] = [255, 0, 30]
    nb = (fx < 0.35) & (fy < 0.35)
    img[nb] = rng.integers(0, 256, (int(nb.sum()), 3))
    if w * h <= 4:
        img[:] = rng.integers(0, 256, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def lum(rgb):
    return ((rgb[..., 0].astype(int) * 299 + rgb[..., 1].astype(int) * 587 + rgb[..., 2].astype(int) * 114) // 1000).astype(np.uint8)


def noisy16(v8, seed):
    """16-bit samples near v8*257 with noise in the low byte, so that
    round(v*255/65535), v>>8 and clipping all give different answers."""
    rng = np.random.default_rng(seed)
    v = v8.astype(np.int64) * 257 + rng.integers(-400, 400, v8.shape)
    return np.clip(v, 0, 65535).astype(np.uint16)


def scale16(v):
    return ((v.astype(np.int64) * 255 + 32767) // 65535).astype(np.uint8)


# ---- a small PNG encoder: every colour type, bit depth, filter, Adam7 -----
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(t, data):
    return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)


def pack_row(row, depth):
    if depth == 16:
        return row.astype(">u2").tobytes()
    if depth == 8:
        return row.astype(np.uint8).tobytes()
    vals = row.reshape(-1).astype(np.uint16)
    per = 8 // depth
    n = (len(vals) + per - 1) // per * per
    padded = np.zeros(n, np.uint16)
    padded[: len(vals)] = vals
    padded = padded.reshape(-1, per)
    b = np.zeros(len(padded), np.uint16)
    for i in range(per):
        b = (b << depth) | padded[:, i]
    return b.astype(np.uint8).tobytes()


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_row(ft, row, prev, bpp):
    out = bytearray(len(row))
    for i in range(len(row)):
        left = row[i - bpp] if i >= bpp else 0
        up = prev[i]
        ul = prev[i - bpp] if i >= bpp else 0
        pred = (0, left, up, (left + up) // 2, paeth(left, up, ul))[ft]
        out[i] = (row[i] - pred) & 255
    return bytes(out)


def png_bytes(samples, ct, depth, palette=None, trns=None, interlace=False):
    samples = samples.reshape(samples.shape[0], samples.shape[1], -1)
    h, w, c = samples.shape
    assert c == CHANNELS[ct]
    bpp = max(1, c * depth // 8)
    raw = bytearray()
    for (x0, y0, dx, dy) in (ADAM7 if interlace else [(0, 0, 1, 1)]):
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        rows = [pack_row(r, depth) for r in sub]
        prev = bytes(len(rows[0]))
        for i, r in enumerate(rows):
            ft = (i + x0 + y0) % 5
            raw += bytes([ft]) + filter_row(ft, r, prev, bpp)
            prev = r
    z = zlib.compress(bytes(raw), 9)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ct, 0, 0, int(interlace)))
    if palette is not None:
        out += chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes())
    if trns is not None:
        out += chunk(b"tRNS", trns)
    half = len(z) // 2  # two IDAT chunks: the reader must join them
    out += chunk(b"IDAT", z[:half]) + chunk(b"IDAT", z[half:]) + chunk(b"IEND", b"")
    return out


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def pil_rgb(name):
    with Image.open(os.path.join(OUT, name)) as im:
        return np.asarray(im.convert("RGB"))


def pre(rgb, s):
    im = Image.fromarray(rgb, "RGB")
    return np.asarray(T.CenterCrop(s)(T.Resize(s, interpolation=BIC)(im)))


order_diffs = []


def open_clip_order_diff(name, rgb, s):
    """open_clip resizes and crops first and converts to RGB last; PIL then
    resamples P images with NEAREST and RGBA/LA premultiplied."""
    with Image.open(os.path.join(OUT, name)) as im:
        im.load()
        a = np.asarray(T.CenterCrop(s)(T.Resize(s, interpolation=BIC)(im)).convert("RGB")).astype(int)
    b = pre(rgb, s).astype(int)
    order_diffs.append((name, im.mode, int(np.abs(a - b).max())))


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def add_case(name, rgb, sizes=(64,), pil_check=True, hash_only=False):
    if pil_check:
        got = pil_rgb(name)
        if got.shape != rgb.shape or not np.array_equal(got, rgb):
            d = np.abs(got.astype(int) - rgb.astype(int)).max() if got.shape == rgb.shape else "shape"
            sys.exit(f"{name}: PIL decodes differently from the intended pixels (max diff {d})")
    h, w = rgb.shape[:2]
    if hash_only:  # keeps expected.bin.gz small; the pre checks still show any difference
        manifest.append(f"decodehash {name} {w} {h} {fnv1a64(rgb.tobytes()):016x}")
    else:
        manifest.append(f"decode {name} {w} {h} {put(rgb)}")
    for s in sizes:
        manifest.append(f"pre {name} {s} {put(pre(rgb, s))}")
        open_clip_order_diff(name, rgb, s)


def png_cases():
    # RGB 8 and RGBA 8, odd sizes
    for (w, h, seed) in [(50, 77, 1), (1, 1, 2), (7, 129, 3), (129, 7, 4)]:
        rgb = content(w, h, seed)
        name = f"png_rgb8_{w}x{h}.png"
        write(name, png_bytes(rgb, 2, 8))
        add_case(name, rgb)
    rgb = content(225, 224, 5)
    write("png_rgb8_225x224.png", png_bytes(rgb, 2, 8))
    add_case("png_rgb8_225x224.png", rgb, sizes=(64, 224))
    rgb = content(77, 50, 6)
    alpha = np.random.default_rng(6).integers(0, 256, (50, 77, 1), dtype=np.uint8)
    write("png_rgba8_77x50.png", png_bytes(np.concatenate([rgb, alpha], -1), 6, 8))
    add_case("png_rgba8_77x50.png", rgb)
    # grey 8, grey+alpha 8
    g = lum(content(33, 65, 7))
    write("png_grey8_33x65.png", png_bytes(g, 0, 8))
    add_case("png_grey8_33x65.png", np.repeat(g[..., None], 3, -1))
    g = lum(content(65, 33, 8))
    a = (np.arange(65 * 33).reshape(33, 65) % 256).astype(np.uint8)
    write("png_greya8_65x33.png", png_bytes(np.stack([g, a], -1), 4, 8))
    add_case("png_greya8_65x33.png", np.repeat(g[..., None], 3, -1))
    # low-depth grey: PIL scales 1/2/4-bit samples by 255/(2^d-1)
    for d, (w, h) in [(1, (13, 40)), (2, (40, 13)), (4, (31, 29))]:
        v = (lum(content(w, h, 10 + d)) >> (8 - d)).astype(np.uint8)
        name = f"png_grey{d}_{w}x{h}.png"
        write(name, png_bytes(v, 0, d))
        add_case(name, np.repeat((v.astype(int) * 255 // (2**d - 1)).astype(np.uint8)[..., None], 3, -1))
    # palette 8 with 256 entries; palette with tRNS; low-depth palettes
    rng = np.random.default_rng(20)
    rgb = content(50, 77, 20)
    idx = ((rgb[..., 0] >> 4).astype(np.uint8) << 4) | (rgb[..., 1] >> 4)
    pal = np.stack([(np.arange(256) >> 4) * 17, (np.arange(256) & 15) * 17, rng.integers(0, 256, 256)], -1).astype(np.uint8)
    write("png_pal8_50x77.png", png_bytes(idx, 3, 8, palette=pal))
    add_case("png_pal8_50x77.png", pal[idx])
    trns = bytes(rng.integers(0, 256, 100, dtype=np.uint8))
    write("png_pal8trns_50x77.png", png_bytes(idx, 3, 8, palette=pal, trns=trns))
    add_case("png_pal8trns_50x77.png", pal[idx])
    for d, (w, h), npal in [(1, (70, 9), 2), (2, (9, 70), 4), (4, (45, 46), 11)]:
        v = (lum(content(w, h, 30 + d)).astype(int) * npal // 256).astype(np.uint8)
        p = rng.integers(0, 256, (npal, 3), dtype=np.uint8)
        name = f"png_pal{d}_{w}x{h}.png"
        write(name, png_bytes(v, 3, d, palette=p, trns=bytes([0, 128]) if d == 2 else None))
        add_case(name, p[v])
    # palettes shorter than the indices used: PIL pads with the grey ramp
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, -1)
    for d, (w, h), npal in [(8, (33, 21), 100), (2, (17, 12), 3)]:
        v = (lum(content(w, h, 35 + d)).astype(int) * (2**d) // 256).astype(np.uint8)
        p = rng.integers(0, 256, (npal, 3), dtype=np.uint8)
        full = ramp.copy()
        full[:npal] = p
        name = f"png_pal{d}short_{w}x{h}.png"
        write(name, png_bytes(v, 3, d, palette=p))
        add_case(name, full[v])
    # tRNS colour keys on grey and RGB (ignored by convert("RGB"))
    g = lum(content(40, 30, 40))
    write("png_grey8trns_40x30.png", png_bytes(g, 0, 8, trns=struct.pack(">H", int(g[0, 0]))))
    add_case("png_grey8trns_40x30.png", np.repeat(g[..., None], 3, -1))
    rgb = content(30, 40, 41)
    write("png_rgb8trns_30x40.png", png_bytes(rgb, 2, 8, trns=struct.pack(">HHH", *[int(c) for c in rgb[0, 0]])))
    add_case("png_rgb8trns_30x40.png", rgb)
    # 16-bit: expected is round(v*255/65535), not PIL's (which takes the high
    # byte for RGB/RGBA/LA and clips mode "I" grey at 255)
    pil16 = []
    rgb16 = noisy16(content(50, 77, 50), 50)
    write("png_rgb16_50x77.png", png_bytes(rgb16, 2, 16))
    add_case("png_rgb16_50x77.png", scale16(rgb16), pil_check=False)
    pil16.append(("png_rgb16_50x77.png", scale16(rgb16)))
    rgba16 = noisy16(np.concatenate([content(77, 50, 51), content(77, 50, 52)[..., :1]], -1), 51)
    write("png_rgba16_77x50.png", png_bytes(rgba16, 6, 16))
    add_case("png_rgba16_77x50.png", scale16(rgba16[..., :3]), pil_check=False)
    pil16.append(("png_rgba16_77x50.png", scale16(rgba16[..., :3])))
    g16 = noisy16(lum(content(33, 65, 53)), 53)
    write("png_grey16_33x65.png", png_bytes(g16, 0, 16))
    add_case("png_grey16_33x65.png", np.repeat(scale16(g16)[..., None], 3, -1), pil_check=False)
    pil16.append(("png_grey16_33x65.png", np.repeat(scale16(g16)[..., None], 3, -1)))
    ga16 = noisy16(np.stack([lum(content(65, 33, 54)), lum(content(65, 33, 55))], -1), 54)
    write("png_greya16_65x33.png", png_bytes(ga16, 4, 16))
    add_case("png_greya16_65x33.png", np.repeat(scale16(ga16[..., 0])[..., None], 3, -1), pil_check=False)
    pil16.append(("png_greya16_65x33.png", np.repeat(scale16(ga16[..., 0])[..., None], 3, -1)))
    # Adam7 interlaced
    rgb = content(333, 222, 60)
    write("png_rgb8_adam7_333x222.png", png_bytes(rgb, 2, 8, interlace=True))
    add_case("png_rgb8_adam7_333x222.png", rgb, sizes=(64, 96))
    v = (lum(content(37, 19, 61)) >> 4).astype(np.uint8)
    p = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    write("png_pal4_adam7_37x19.png", png_bytes(v, 3, 4, palette=p, interlace=True))
    add_case("png_pal4_adam7_37x19.png", p[v])
    g16 = noisy16(lum(content(3, 5, 62)), 62)
    write("png_grey16_adam7_3x5.png", png_bytes(g16, 0, 16, interlace=True))
    add_case("png_grey16_adam7_3x5.png", np.repeat(scale16(g16)[..., None], 3, -1), pil_check=False)
    rgba16 = noisy16(np.concatenate([content(19, 23, 63), content(19, 23, 64)[..., :1]], -1), 63)
    write("png_rgba16_adam7_19x23.png", png_bytes(rgba16, 6, 16, interlace=True))
    add_case("png_rgba16_adam7_19x23.png", scale16(rgba16[..., :3]), pil_check=False)
    for name, want in pil16:
        got = pil_rgb(name).astype(int)
        print(f"note: PIL's own 16-bit decode of {name} differs from round(v*255/65535) by up to {np.abs(got - want).max()}")


def jpeg_cases(tmp):
    def save(name, im, **kw):
        im.save(os.path.join(OUT, name), "JPEG", **kw)

    rgb = content(333, 222, 70)
    save("jpg_420_333x222.jpg", Image.fromarray(rgb), quality=90)
    add_case("jpg_420_333x222.jpg", pil_rgb("jpg_420_333x222.jpg"), sizes=(64, 224), pil_check=False)
    save("jpg_444_50x77.jpg", Image.fromarray(content(50, 77, 71)), quality=95, subsampling=0)
    add_case("jpg_444_50x77.jpg", pil_rgb("jpg_444_50x77.jpg"), pil_check=False)
    save("jpg_422_7x129.jpg", Image.fromarray(content(7, 129, 72)), quality=85, subsampling=1)
    add_case("jpg_422_7x129.jpg", pil_rgb("jpg_422_7x129.jpg"), pil_check=False)
    save("jpg_420_129x7.jpg", Image.fromarray(content(129, 7, 73)), quality=85)
    add_case("jpg_420_129x7.jpg", pil_rgb("jpg_420_129x7.jpg"), pil_check=False)
    save("jpg_1x1.jpg", Image.fromarray(content(1, 1, 74)), quality=90)
    add_case("jpg_1x1.jpg", pil_rgb("jpg_1x1.jpg"), pil_check=False)
    save("jpg_grey_129x31.jpg", Image.fromarray(lum(content(129, 31, 75)), "L"), quality=90)
    add_case("jpg_grey_129x31.jpg", pil_rgb("jpg_grey_129x31.jpg"), pil_check=False)
    save("jpg_prog_224x225.jpg", Image.fromarray(content(224, 225, 76)), quality=90, progressive=True)
    add_case("jpg_prog_224x225.jpg", pil_rgb("jpg_prog_224x225.jpg"), sizes=(64, 96), pil_check=False)
    rgb = content(640, 480, 77)
    # the noise block becomes a coarse random mosaic (8x8 cells) so that the
    # expected decode of this large image stays compressible
    cells = np.random.default_rng(77).integers(0, 256, (20, 27, 3), dtype=np.uint8)
    rgb[:160, :216] = np.repeat(np.repeat(cells, 8, 0), 8, 1)
    save("jpg_prog_640x480.jpg", Image.fromarray(rgb), quality=80, progressive=True)
    add_case("jpg_prog_640x480.jpg", pil_rgb("jpg_prog_640x480.jpg"), sizes=(64, 224), pil_check=False,
             hash_only=True)
    # CMYK: PIL writes Adobe-inverted CMYK and reads every 4-channel JPEG as
    # inverted ("CMYK;I"), with or without the Adobe marker
    c = content(65, 33, 78)
    k = (np.arange(65 * 33).reshape(33, 65) * 7 % 256).astype(np.uint8)
    cmyk = np.concatenate([255 - c, k[..., None]], -1)
    save("jpg_cmyk_65x33.jpg", Image.fromarray(cmyk, "CMYK"), quality=92)
    add_case("jpg_cmyk_65x33.jpg", pil_rgb("jpg_cmyk_65x33.jpg"), pil_check=False)
    tool = os.path.join(tmp, "mkjpeg_special")
    subprocess.check_call(["gcc", "-O1", "-o", tool, os.path.join(HERE, "mkjpeg_special.c"), "-ljpeg"])
    raw = os.path.join(tmp, "in.raw")
    (255 - cmyk).tofile(raw)  # as stored: Adobe-inverted
    for mode in ("ycck", "cmyk_noadobe"):
        name = f"jpg_{mode}_65x33.jpg"
        subprocess.check_call([tool, mode, "65", "33", raw, os.path.join(OUT, name)])
        add_case(name, pil_rgb(name), pil_check=False)
    content(45, 31, 79).tofile(raw)
    subprocess.check_call([tool, "rgb", "45", "31", raw, os.path.join(OUT, "jpg_rgb_45x31.jpg")])
    add_case("jpg_rgb_45x31.jpg", pil_rgb("jpg_rgb_45x31.jpg"), pil_check=False)
    with Image.open(os.path.join(OUT, "jpg_ycck_65x33.jpg")) as im:
        assert im.mode == "CMYK" and im.info.get("adobe_transform") == 2, im.info
    with Image.open(os.path.join(OUT, "jpg_cmyk_noadobe_65x33.jpg")) as im:
        assert im.mode == "CMYK" and "adobe" not in im.info, im.info


def box_cases():
    boxes = {
        "png_rgb8_adam7_333x222.png": [(0, 0, 333, 222, 48), (10, 7, 300, 200, 48), (100, 50, 1, 80, 48),
                                       (320, 200, 13, 22, 48), (5, 5, 40, 30, 96)],
        "jpg_prog_224x225.jpg": [(3, 1, 215, 222, 64), (0, 0, 224, 225, 96)],
        "png_rgb8_7x129.png": [(0, 20, 7, 100, 48)],
    }
    for name, bl in boxes.items():
        rgb = pil_rgb(name)
        im = Image.fromarray(rgb, "RGB")
        for (x, y, w, h, s) in bl:
            want = np.asarray(F.resized_crop(im, y, x, h, w, [s, s], BIC))
            manifest.append(f"box {name} {x} {y} {w} {h} {s} {put(want)}")
    # with scale (0.9, 1) a box of ratio <= 4/3 only fits near-square images:
    # 333x222 (ratio 1.5) always falls back too
    for name in ("png_rgb8_7x129.png", "png_rgb8_129x7.png", "jpg_grey_129x31.jpg", "png_rgb8_adam7_333x222.png"):
        rgb = pil_rgb(name)
        im = Image.fromarray(rgb, "RGB")
        rrc = T.RandomResizedCrop(48, scale=(0.9, 1.0), interpolation=BIC)
        got = {rrc.get_params(im, rrc.scale, rrc.ratio) for _ in range(20)}
        assert len(got) == 1, f"{name}: RandomResizedCrop is not in its fallback: {got}"
        i, j, h, w = got.pop()
        want = np.asarray(F.resized_crop(im, i, j, h, w, [48, 48], BIC))
        manifest.append(f"fallback {name} 48 {j} {i} {w} {h} {put(want)}")


def norm_table():
    v = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, -1)  # (1,256,3)
    tf = T.Compose([T.ToTensor(), T.Normalize(OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)])
    table = tf(Image.fromarray(v, "RGB"))[:, 0, :].numpy().astype("<f4")  # (3,256)
    manifest.append(f"norm {put(table)}")
    # the table composed with `pre` is open_clip's eval transform
    name = "jpg_420_333x222.jpg"
    with Image.open(os.path.join(OUT, name)) as im:
        want = open_clip.image_transform(224, is_train=False)(im).numpy()
    p = pre(pil_rgb(name), 224)
    got = np.stack([table[c][p[..., c]] for c in range(3)])
    assert np.array_equal(got, want), "norm table o pre != open_clip transform"
    print(f"open_clip eval transform on {name} equals norm-table(pre): bit-exact")


def bad_files():
    rng = np.random.default_rng(99)
    with open(os.path.join(OUT, "png_rgb8_50x77.png"), "rb") as f:
        good_png = f.read()
    with open(os.path.join(OUT, "jpg_444_50x77.jpg"), "rb") as f:
        good_jpg = f.read()
    with open(os.path.join(OUT, "jpg_prog_224x225.jpg"), "rb") as f:
        prog_jpg = f.read()
    bad = {
        "bad_empty.png": (b"", "FORMAT"),
        "bad_trunc.jpg": (good_jpg[: len(good_jpg) * 55 // 100], "FORMAT"),
        "bad_trunc_prog.jpg": (prog_jpg[: len(prog_jpg) * 55 // 100], "FORMAT"),
        "bad_header_only.jpg": (good_jpg[:300], "FORMAT"),
        "bad_trunc.png": (good_png[: len(good_png) * 6 // 10], "FORMAT"),
        "bad_sig_only.png": (good_png[:8], "FORMAT"),
        "bad_random.bin": (bytes(rng.integers(0, 256, 2000, dtype=np.uint8)), "FORMAT"),
        "bad_text.txt": (b"this is a caption, not an image\n" * 4, "FORMAT"),
        "bad_gif.gif": (b"GIF89a" + bytes(40), "UNSUPPORTED"),
        "bad_jpeg_garbage.jpg": (b"\xff\xd8\xff" + bytes(rng.integers(0, 256, 500, dtype=np.uint8)), "FORMAT"),
    }
    # bad CRCs: a byte of the first IDAT's data changed (zlib usually notices
    # first), and the stored CRC of IHDR, of the first and of the last IDAT
    # changed with the data intact (PIL itself never checks IDAT CRCs)
    b = bytearray(good_png)
    i = b.find(b"IDAT")
    b[i + 10] ^= 0x55
    bad["bad_idat_data.png"] = (bytes(b), "FORMAT")
    b = bytearray(good_png)
    b[8 + 8 + 13] ^= 0x01
    bad["bad_crc_ihdr.png"] = (bytes(b), "FORMAT")
    idats = []
    pos = 8
    while pos < len(good_png):
        n = struct.unpack(">I", good_png[pos : pos + 4])[0]
        if good_png[pos + 4 : pos + 8] == b"IDAT":
            idats.append(pos + 8 + n)  # where its CRC is stored
        pos += 12 + n
    assert len(idats) == 2
    # a tEXt chunk with a bad CRC before the image data (PIL refuses it too)
    i = good_png.find(b"IDAT") - 4
    text = bytearray(chunk(b"tEXt", b"Comment\0hello"))
    text[-1] ^= 0x01
    bad["bad_crc_text.png"] = (good_png[:i] + bytes(text) + good_png[i:], "FORMAT")
    for label, at in (("bad_crc_idat.png", idats[0]), ("bad_crc_last_idat.png", idats[1])):
        b = bytearray(good_png)
        b[at + 3] ^= 0x01
        bad[label] = (bytes(b), "FORMAT")
    sig = b"\x89PNG\r\n\x1a\n"
    idat = chunk(b"IDAT", zlib.compress(b"\x00" * 10))
    bad["bad_huge.png"] = (sig + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)) + idat + chunk(b"IEND", b""), "FORMAT")
    bad["bad_zero_width.png"] = (sig + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 10, 8, 0, 0, 0, 0)) + idat + chunk(b"IEND", b""), "FORMAT")
    bad["bad_no_idat.png"] = (sig + chunk(b"IHDR", struct.pack(">IIBBBBB", 10, 10, 8, 2, 0, 0, 0)) + chunk(b"IEND", b""), "FORMAT")
    bad["bad_zlib.png"] = (sig + chunk(b"IHDR", struct.pack(">IIBBBBB", 10, 10, 8, 2, 0, 0, 0)) + chunk(b"IDAT", b"not zlib data at all") + chunk(b"IEND", b""), "FORMAT")
    bad["bad_short_idat.png"] = (sig + chunk(b"IHDR", struct.pack(">IIBBBBB", 10, 10, 8, 2, 0, 0, 0)) + idat + chunk(b"IEND", b""), "FORMAT")
    bad["bad_depth.png"] = (sig + chunk(b"IHDR", struct.pack(">IIBBBBB", 10, 10, 3, 2, 0, 0, 0)) + idat + chunk(b"IEND", b""), "FORMAT")
    # SOF0 dimensions patched to 60000 x 60000 (3.6e9 pixels, over the cap)
    b = bytearray(good_jpg)
    i = b.find(b"\xff\xc0")
    b[i + 5 : i + 9] = struct.pack(">HH", 60000, 60000)
    bad["bad_huge.jpg"] = (bytes(b), "FORMAT")
    for name, (data, status) in bad.items():
        write(name, data)
        manifest.append(f"bad {name} {status}")


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        png_cases()
        jpeg_cases(tmp)
    box_cases()
    norm_table()
    bad_files()
    # gzip with a fixed mtime so that regenerating gives identical bytes
    with open(os.path.join(OUT, "expected.bin.gz"), "wb") as raw, gzip.GzipFile(
            filename="expected.bin", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as f:
        f.write(b"CCIMGFX1" + struct.pack("<Q", len(payload)) + payload)
    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write("# generated by tests/tools/make_image_fixtures.py; see that file for the format\n")
        f.write("\n".join(manifest) + "\n")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(
            "# Image fixtures\n\n"
            "Generated by `tests/tools/make_image_fixtures.py` (synthetic content from numpy's\n"
            "seeded generator; no third-party images), released under CC0 1.0. Expected values\n"
            "come from PIL 9.4 / torchvision 0.14 / open_clip 2.20 as described in the script.\n"
            "`manifest.txt` lists the checks; `expected.bin.gz` holds the expected arrays.\n")
    for name, mode, d in order_diffs:
        if d:
            print(f"note: open_clip's order (resize, then convert RGB) differs on {name} (mode {mode}) by up to {d}")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(manifest)} manifest lines, {len(payload)} payload bytes, {total} bytes in all")


if __name__ == "__main__":
    main()

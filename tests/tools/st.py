"""st.py: minimal safetensors read/write with numpy (no safetensors package
on Debian 12), shared by the fixture and round-trip scripts."""
import json
import struct

import numpy as np

_DT = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I32": "<i4", "I64": "<i8"}


def write(path, tensors, metadata=None):
    """tensors: dict or list of (name, numpy array); float arrays stored as F32."""
    items = tensors.items() if isinstance(tensors, dict) else tensors
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, a in items:
        a = np.asarray(a)
        if a.dtype.kind == "f":
            dt, raw = "F32", np.ascontiguousarray(a, dtype="<f4").tobytes()
        elif a.dtype.kind in "iu":
            dt, raw = "I32", np.ascontiguousarray(a, dtype="<i4").tobytes()
        else:
            raise ValueError(name)
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * ((8 - len(js) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)


def read(path):
    """-> (dict name -> numpy array, metadata dict)"""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    out = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype=_DT[t["dtype"]]).reshape(t["shape"])
    return out, meta

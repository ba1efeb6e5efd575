"""peer_race.py: the peers clipcl races (bench/race.sh), one JSON object per
measurement, timed like bench/bench_model.c (random weights, random data,
fp32, the same thread count for everyone):
  open_clip 2.20 on PyTorch   encoders and the training step (AdamW)
  ONNX Runtime (CPU EP)       the open_clip towers exported by torch.onnx
                              (opset 17, dynamic batch), checked against
                              torch to 1e-4 before timing
  OpenVINO                    the same ONNX files, f32 forced; the device's
                              default inference precision is reported
  peer_race.py --config CFG.json --name NAME --what image|text|train
               --batches 1,8,32 [--threads 2] [--seconds 3] [--peers torch,ort,ov]
Each (peer, batch) is timed over at least --seconds after a warm-up call;
samples/s = items / time. Needs PYTHONPATH with open_clip (tests/tools/
setup_pyref.sh) and, for ORT/OpenVINO, a venv with onnxruntime and openvino
(bench/race.sh makes it).
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.model import CLIP


def timed(fn, seconds, items):
    fn()  # warm-up (compiles, allocates)
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= seconds and n >= 3:
            return items * n / dt


class Tower(torch.nn.Module):
    def __init__(self, model, what):
        super().__init__()
        self.m, self.what = model, what

    def forward(self, x):
        return self.m.encode_image(x) if self.what == "image" else self.m.encode_text(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--what", required=True, choices=["image", "text", "train"])
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--peers", default="torch,ort,ov")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = json.load(open(a.config))
    m = CLIP(embed_dim=cfg["embed_dim"], vision_cfg=cfg["vision_cfg"], text_cfg=cfg["text_cfg"],
             quick_gelu=cfg.get("quick_gelu", False)).eval()
    S, T, V = cfg["vision_cfg"]["image_size"], cfg["text_cfg"]["context_length"], cfg["text_cfg"]["vocab_size"]
    peers = a.peers.split(",")
    batches = [int(b) for b in a.batches.split(",")]

    def inputs(B, what):
        g = torch.Generator().manual_seed(B)
        if what == "image":
            return torch.randn(B, 3, S, S, generator=g)
        ids = torch.randint(1, min(V, 40000), (B, T), generator=g)
        ids[:, 0], ids[:, 20:], ids[:, 20] = V - 2, 0, V - 1
        return ids

    def emit(peer, B, sps, **extra):
        r = {"impl": peer, "what": "train_step" if a.what == "train" else "encode_" + a.what, "config": a.name,
             "batch": B, "threads": a.threads, "samples_per_s": round(sps, 2)}
        r.update(extra)
        print(json.dumps(r), flush=True)

    if a.what == "train":
        m.train()
        opt = torch.optim.AdamW(m.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2)
        for B in batches:
            x, ids = inputs(B, "image"), inputs(B, "text")
            lab = torch.arange(B)

            def step():
                i = F.normalize(m.encode_image(x), dim=-1)
                t = F.normalize(m.encode_text(ids), dim=-1)
                lg = m.logit_scale.exp() * i @ t.t()
                loss = (F.cross_entropy(lg, lab) + F.cross_entropy(lg.t(), lab)) / 2
                opt.zero_grad()
                loss.backward()
                opt.step()
            emit("open_clip", B, timed(step, a.seconds, B))
        return

    tower = Tower(m, a.what).eval()
    if "torch" in peers:
        with torch.no_grad():
            for B in batches:
                x = inputs(B, a.what)
                emit("open_clip", B, timed(lambda: tower(x), a.seconds, B))
    if "ort" not in peers and "ov" not in peers:
        return
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, a.what + ".onnx")
    x0 = inputs(2, a.what)
    with torch.no_grad():
        torch.onnx.export(tower, (x0,), path, opset_version=17, input_names=["x"], output_names=["emb"],
                          dynamic_axes={"x": {0: "batch"}, "emb": {0: "batch"}})
        want = {B: tower(inputs(B, a.what)).numpy() for B in batches}
    if "ort" in peers:
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = a.threads, 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        for B in batches:
            x = inputs(B, a.what).numpy()
            got = sess.run(None, {"x": x})[0]
            err = float(np.abs(got - want[B]).max())
            if err > 1e-4:
                sys.exit(f"peer_race: ONNX Runtime differs from torch by {err:.2e} at batch {B}")
            emit("onnxruntime", B, timed(lambda: sess.run(None, {"x": x}), a.seconds, B),
                 version=ort.__version__, max_abs_diff_vs_torch=err)
    if "ov" in peers:
        import openvino as ov
        core = ov.Core()
        default_prec = str(core.get_property("CPU", "INFERENCE_PRECISION_HINT"))
        model = core.read_model(path)
        cm = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": a.threads,
                                               "PERFORMANCE_HINT": "LATENCY"})
        req = cm.create_infer_request()
        for B in batches:
            x = inputs(B, a.what).numpy()
            got = req.infer({0: x})[cm.output(0)]
            err = float(np.abs(got - want[B]).max())
            if err > 1e-3:
                sys.exit(f"peer_race: OpenVINO differs from torch by {err:.2e} at batch {B}")
            emit("openvino", B, timed(lambda: req.infer({0: x}), a.seconds, B), version=ov.__version__,
                 precision="f32", default_precision=default_prec, max_abs_diff_vs_torch=err)


if __name__ == "__main__":
    main()

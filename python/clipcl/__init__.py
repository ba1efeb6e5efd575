"""clipcl: CLIP embeddings, zero-shot classification, text hidden states and
image search from Python, over the libclipcl C library (OpenCL: CPUs through
PoCL, or GPUs). NumPy arrays in and out; no PyTorch needed.

    import clipcl
    m = clipcl.Model("model.safetensors")            # config from the file
    img = m.encode_images(["cat.jpg", array_hwc_uint8, pil_image])  # (3, E), unit rows
    txt = m.encode_texts(["a photo of a cat"])                      # (1, E)
    idx, score = m.classify(["cat.jpg"], ["cat", "dog"], k=2)       # best classes first
    h = m.text_hidden_states(["a photo of a cat"], "penultimate")  # (1, context, width)
    hits = clipcl.Index("photos.index").search(m, text="a red circle", k=5)

Errors raise clipcl.Error carrying libclipcl's message (naming the file and
the problem). Results are the same bits as the `clipcl` command's for the
same inputs (`clipcl embed` writes the same embeddings).
"""
import os
from collections import namedtuple
from ctypes import byref, c_char_p, c_float, c_int, c_int32, c_size_t, c_uint8, c_void_p, cast, create_string_buffer
from ctypes import POINTER

import numpy as np

from . import _lib
from ._lib import Error

__all__ = ["Error", "Model", "Tokenizer", "Index", "Hit", "tokenize", "devices", "version",
           "DEFAULT_TEMPLATE", "HIDDEN_LAST", "HIDDEN_PENULTIMATE"]

DEFAULT_TEMPLATE = "a photo of a {}."  # CLIP's baseline prompt (CLIPCL_DEFAULT_TEMPLATE)
HIDDEN_LAST = 0
HIDDEN_PENULTIMATE = 1
_BATCH = 64  # images per encoder call: the command's default --batch

Hit = namedtuple("Hit", "path score index")
Hit.__doc__ = "A search result: the image path, its cosine similarity and its row in the index."


def version():
    """The libclipcl version string."""
    return _lib.version().decode()


def _s(x):
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else x


def _info_dict(info):
    return {"index": info.index, "platform_index": info.platform_index, "device_index": info.device_index,
            "name": _s(info.name), "vendor": _s(info.vendor), "platform": _s(info.platform),
            "version": _s(info.version), "driver": _s(info.driver), "compute_units": info.compute_units,
            "global_mem": info.global_mem, "max_alloc": info.max_alloc, "local_mem": info.local_mem,
            "fp16": bool(info.fp16), "fp64": bool(info.fp64), "is_cpu": bool(info.is_cpu),
            "is_gpu": bool(info.is_gpu), "vector_width": info.vector_width}


def devices():
    """Every OpenCL device as a dict (name, vendor, memory, ...); [] without a platform."""
    n = c_int(0)
    _lib.check(_lib.device_count(byref(n)))
    out = []
    for i in range(n.value):
        info = _lib.DeviceInfo()
        _lib.check(_lib.device_query(i, byref(info)))
        out.append(_info_dict(info))
    return out


def _texts(texts):
    if isinstance(texts, (str, bytes)):
        raise TypeError("expected a list of strings, got a single string: wrap it in a list")
    out = []
    for i, t in enumerate(texts):
        if isinstance(t, str):
            out.append(t.encode("utf-8", "surrogatepass"))
        elif isinstance(t, bytes):
            out.append(t)
        else:
            raise TypeError("text %d is a %s, not a str" % (i, type(t).__name__))
        if b"\0" in out[-1]:
            raise ValueError("text %d contains a NUL character" % i)
    return out


def _f32(a):
    return a.ctypes.data_as(POINTER(c_float))


def _i32(a):
    return a.ctypes.data_as(POINTER(c_int32))


class Tokenizer:
    """CLIP's byte-level BPE: ids identical to open_clip's tokenizer. vocab:
    None for the built-in vocabulary, or the path of a merges file."""

    def __init__(self, vocab=None):
        h = c_void_p()
        if vocab is None:
            _lib.check(_lib.tokenizer_create(byref(h)))
        else:
            _lib.check(_lib.tokenizer_load(os.fsencode(vocab), byref(h)))
        self._h = h

    def __call__(self, texts, context_length=77):
        return self.tokenize(texts, context_length)

    def tokenize(self, texts, context_length=77):
        """(len(texts), context_length) int32: SOT, tokens, EOT, zero padding
        (a longer text is cut, its last id set to EOT)."""
        enc = _texts(texts)
        if context_length < 2:
            raise ValueError("context_length must be at least 2")
        ids = np.zeros((len(enc), context_length), np.int32)
        for i, t in enumerate(enc):
            st = _lib.tokenize(self._h, t, context_length, _i32(ids[i]), None)
            if st:
                msg = _lib.last_error().decode("utf-8", "replace")
                raise Error(st, "text %d: %s" % (i, msg), _s(_lib.status_name(st)))
        return ids

    def decode(self, ids, text_only=True):
        """The text of a sequence of ids (open_clip's decode); text_only drops
        SOT, everything from EOT on and the final space."""
        a = np.ascontiguousarray(ids, dtype=np.int32).ravel()
        n = c_size_t(0)
        _lib.check(_lib.detokenize(self._h, _i32(a), a.size, 1 if text_only else 0, None, 0, byref(n)))
        buf = create_string_buffer(n.value + 1)
        _lib.check(_lib.detokenize(self._h, _i32(a), a.size, 1 if text_only else 0, buf, n.value + 1, None))
        return buf.value.decode("utf-8")

    def close(self):
        if getattr(self, "_h", None):
            _lib.tokenizer_free(self._h)
            self._h = None

    def __del__(self):
        self.close()


_default_tokenizer = None


def tokenize(texts, context_length=77):
    """Tokenizes with the built-in vocabulary: (len(texts), context_length) int32."""
    global _default_tokenizer
    if _default_tokenizer is None:
        _default_tokenizer = Tokenizer()
    return _default_tokenizer.tokenize(texts, context_length)


def _rgb_array(x, i):
    """An image (numpy array or PIL image) as a C-contiguous uint8 (H, W, 3) array."""
    if hasattr(x, "convert") and hasattr(x, "mode") and hasattr(x, "size"):  # PIL.Image.Image
        x = np.asarray(x.convert("RGB"))
    a = np.asarray(x)
    if a.dtype != np.uint8:
        raise TypeError("image %d: expected uint8 pixels, got %s" % (i, a.dtype))
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError("image %d: expected an (H, W, 3) RGB array, got shape %s" % (i, a.shape))
    return np.ascontiguousarray(a)


def _is_path(x):
    return isinstance(x, (str, bytes, os.PathLike))


class Model:
    """A CLIP model on an OpenCL device.

    path: a safetensors file with OpenAI/open_clip or Hugging Face names.
    config: None (the config stored in the file, else inferred from the
        tensor shapes), a built-in name ("ViT-B-32-quickgelu", ...) or the
        path of an open_clip JSON config.
    device: None (CLIPCL_DEVICE, else the first GPU, else device 0), a global
        index, "platform:device", or a substring of the device name.
    batch, workers: images per encoder call and image decoding threads
        (0: one per CPU); the results do not depend on them."""

    def __init__(self, path, config=None, device=None, batch=_BATCH, workers=0):
        self._model = self._dev = None
        self.batch, self.workers = int(batch), int(workers)
        if self.batch < 1:
            raise ValueError("batch must be at least 1")
        dev = c_void_p()
        spec = None if device is None else str(device).encode()
        _lib.check(_lib.device_open(spec, byref(dev)))
        self._dev = dev
        cfg_p = None
        if config is not None:
            cfg = _lib.Config()
            _lib.check(_lib.config_get(os.fsencode(config), byref(cfg)))
            cfg_p = byref(cfg)
        m = c_void_p()
        _lib.check(_lib.model_load(self._dev, os.fsencode(path), cfg_p, byref(m)))
        self._model = m
        self.path = os.fspath(path)
        self.tokenizer = Tokenizer()
        c = _lib.model_config(self._model).contents
        self.config = {
            "name": _s(c.name), "embed_dim": c.embed_dim, "quick_gelu": bool(c.quick_gelu),
            "vision_cfg": {"image_size": c.vision.image_size, "layers": c.vision.layers,
                           "width": c.vision.width, "patch_size": c.vision.patch_size,
                           "head_width": c.vision.head_width, "mlp_ratio": c.vision.mlp_ratio},
            "text_cfg": {"context_length": c.text.context_length, "vocab_size": c.text.vocab_size,
                         "width": c.text.width, "heads": c.text.heads, "layers": c.text.layers,
                         "mlp_ratio": c.text.mlp_ratio}}
        self.config_source = _s(_lib.model_config_source(self._model))
        self.embed_dim = c.embed_dim
        self.image_size = c.vision.image_size
        self.context_length = c.text.context_length
        self.text_width = c.text.width
        self._identity = None

    # -- lifetime --
    def close(self):
        """Frees the model and its device (also done when the object goes away)."""
        if getattr(self, "_model", None):
            _lib.model_free(self._model)
            self._model = None
        if getattr(self, "_dev", None):
            _lib.device_free(self._dev)
            self._dev = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def _live(self):
        if not self._model:
            raise ValueError("the model was closed")
        return self._model

    @property
    def device(self):
        """The device the model runs on, as a dict."""
        info = _lib.DeviceInfo()
        _lib.check(_lib.device_get_info(self._dev, byref(info)))
        return _info_dict(info)

    @property
    def identity(self):
        """The weights' identity (config + parameter hash), as search indexes record it."""
        if self._identity is None:
            buf = create_string_buffer(256)
            _lib.check(_lib.model_identity(self._live(), buf, 256))
            self._identity = buf.value.decode()
        return self._identity

    # -- text --
    def tokenize(self, texts):
        """(len(texts), context_length) int32 ids for this model's context length."""
        return self.tokenizer.tokenize(texts, self.context_length)

    def _options(self):
        o = _lib.EvalOptions()
        _lib.eval_options_init(byref(o))
        o.batch, o.workers = self.batch, self.workers
        return o

    def encode_texts(self, texts):
        """(len(texts), embed_dim) float32, L2-normalised rows."""
        enc = _texts(texts)
        out = np.empty((len(enc), self.embed_dim), np.float32)
        if not enc:
            return out
        arr = (c_char_p * len(enc))(*enc)
        o = self._options()
        _lib.check(_lib.encode_texts(self._live(), self.tokenizer._h, arr, len(enc), byref(o), _f32(out)))
        return out

    def text_hidden_states(self, texts, layer="last"):
        """The text tower's per-token states, (N, context_length, text width)
        float32, as diffusion models condition on them. texts: a list of
        strings, or an (N, context_length) array of token ids. layer:
        "last" (HF CLIPTextModel's last_hidden_state; Stable Diffusion 1.x),
        "penultimate" (the block before it through the same final LayerNorm;
        Stable Diffusion 2.x), or the number of final blocks to leave out."""
        skip = {"last": HIDDEN_LAST, "penultimate": HIDDEN_PENULTIMATE}.get(layer, layer)
        if not isinstance(skip, (int, np.integer)) or isinstance(skip, bool):
            raise ValueError("layer must be 'last', 'penultimate' or a whole number, not %r" % (layer,))
        if isinstance(texts, np.ndarray):
            ids = np.ascontiguousarray(texts, dtype=np.int32)
            if ids.ndim != 2 or ids.shape[1] != self.context_length:
                raise ValueError("ids must be (N, %d), got %s" % (self.context_length, ids.shape))
        else:
            ids = self.tokenize(texts)
        out = np.empty((ids.shape[0], self.context_length, self.text_width), np.float32)
        if ids.shape[0]:
            _lib.check(_lib.model_text_hidden_states(self._live(), _i32(ids), ids.shape[0], int(skip), _f32(out)))
        return out

    # -- images --
    def preprocess(self, image):
        """One image (path, uint8 (H, W, 3) array or PIL image) as the model's
        input: (3, S, S) float32, resized, centre-cropped and normalised."""
        return self._pixels([image])[0]

    def _pixels(self, images):
        S = self.image_size
        px = np.empty((len(images), 3, S, S), np.float32)
        for i, x in enumerate(images):
            img = _lib.Image()
            if _is_path(x):
                _lib.check(_lib.image_load(os.fsencode(x), byref(img)))
                try:
                    _lib.check(_lib.image_preprocess(byref(img), S, _f32(px[i])))
                finally:
                    _lib.image_free(byref(img))
            else:
                a = _rgb_array(x, i)
                img.w, img.h = a.shape[1], a.shape[0]
                img.rgb = a.ctypes.data_as(POINTER(c_uint8))
                st = _lib.image_preprocess(byref(img), S, _f32(px[i]))
                if st:
                    msg = _lib.last_error().decode("utf-8", "replace")
                    raise Error(st, "image %d: %s" % (i, msg), _s(_lib.status_name(st)))
        return px

    def encode_images(self, images):
        """(len(images), embed_dim) float32, L2-normalised rows. images: a
        list of file paths (PNG/JPEG, decoded as PIL's convert("RGB")), uint8
        (H, W, 3) RGB arrays and PIL images, in any mix. An unreadable file
        raises clipcl.Error naming it."""
        if _is_path(images) or isinstance(images, np.ndarray) and images.ndim == 3 or hasattr(images, "convert"):
            raise TypeError("expected a list of images: wrap a single image in a list")
        images = list(images)
        E = self.embed_dim
        out = np.empty((len(images), E), np.float32)
        if not images:
            return out
        if all(_is_path(x) for x in images):
            # decoded on worker threads, as `clipcl embed` does
            paths = [os.fsencode(x) for x in images]
            arr = (c_char_p * len(paths))(*paths)
            ok = np.zeros(len(paths), np.uint8)
            nbad = c_size_t(0)
            o = self._options()
            _lib.check(_lib.encode_image_files(self._live(), arr, len(paths), byref(o), _f32(out),
                                               ok.ctypes.data_as(POINTER(c_uint8)), byref(nbad)))
            if nbad.value:
                first = int(np.flatnonzero(ok == 0)[0])
                img = _lib.Image()
                st = _lib.image_load(paths[first], byref(img))
                _lib.image_free(byref(img))
                msg = _lib.last_error().decode("utf-8", "replace") if st else "cannot be read"
                raise Error(st or -4, "%d of %d images could not be read; the first: %s"
                            % (nbad.value, len(paths), msg), _s(_lib.status_name(st or -4)))
            return out
        for i in range(0, len(images), self.batch):
            px = self._pixels(images[i:i + self.batch])
            _lib.check(_lib.model_encode_images(self._live(), _f32(px), px.shape[0], _f32(out[i:])))
        return out

    # -- zero-shot --
    def zeroshot_classifier(self, classnames, templates=None):
        """(len(classnames), embed_dim) float32: every class name put into
        every template ("{}" marks the place; default "a photo of a {}."),
        embedded, normalised, averaged over templates and normalised again
        (open_clip's zero-shot classifier)."""
        names = list(classnames)
        tmpl = [DEFAULT_TEMPLATE] if templates is None else list(templates)
        if isinstance(classnames, str) or isinstance(templates, str):
            raise TypeError("classnames and templates are lists of strings")
        if not names or not tmpl:
            raise ValueError("need at least one class name and one template")
        for t in tmpl:
            if "{}" not in t:
                raise ValueError("template %r has no {}" % t)
        texts = [t.replace("{}", c) for c in names for t in tmpl]
        emb = self.encode_texts(texts)
        out = np.empty((len(names), self.embed_dim), np.float32)
        _lib.check(_lib.zeroshot_classifier(_f32(emb), len(names), len(tmpl), self.embed_dim, _f32(out)))
        return out

    def classify(self, images, classnames, templates=None, k=5):
        """Zero-shot classification: (indices, scores), each (len(images), k'),
        k' = min(k, classes): the best classes for each image (indices into
        classnames) and their cosine similarities, best first; equal scores
        rank the earlier class first. images may also be a float (N,
        embed_dim) array of image embeddings, and classnames a classifier
        array from zeroshot_classifier()."""
        if isinstance(classnames, np.ndarray):
            clf = np.ascontiguousarray(classnames, dtype=np.float32)
        else:
            clf = self.zeroshot_classifier(classnames, templates)
        given = isinstance(images, np.ndarray) and images.ndim == 2 and images.dtype.kind == "f"
        emb = images if given else self.encode_images(images)
        return _rank(np.ascontiguousarray(emb, dtype=np.float32), clf, k)


def _rank(queries, keys, k):
    k = max(1, min(int(k), keys.shape[0]))
    idx = np.empty((queries.shape[0], k), np.int32)
    score = np.empty((queries.shape[0], k), np.float32)
    if queries.shape[0]:
        _lib.check(_lib.topk(_f32(queries), queries.shape[0], _f32(keys), keys.shape[0], keys.shape[1], k, 0,
                             _i32(idx), _f32(score)))
    return idx, score


class Index:
    """An image search index folder written by `clipcl index`. Paths come
    back as `clipcl search` prints them: below the collection root when
    stored relative to it; root= says where a collection moved to."""

    def __init__(self, path, root=None):
        h = c_void_p()
        _lib.check(_lib.index_load(os.fsencode(path), byref(h)))
        self._h = h
        self.path = os.fspath(path)
        if root is not None:
            _lib.check(_lib.index_set_root(self._h, os.fsencode(root)))

    @property
    def root(self):
        """The collection root (absolute), or None when unknown."""
        r = _lib.index_root(self._h)
        return os.fsdecode(r) if r else None

    def _usable(self, p):
        p = os.fsdecode(p)
        r = self.root
        return os.path.join(r, p) if r and not os.path.isabs(p) else p

    def close(self):
        if getattr(self, "_h", None):
            _lib.index_free(self._h)
            self._h = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self):
        return _lib.index_count(self._h)

    @property
    def dim(self):
        return _lib.index_dim(self._h)

    @property
    def model(self):
        """The identity of the model that built the index (Model.identity)."""
        return _s(_lib.index_model(self._h))

    @property
    def paths(self):
        return [self._usable(_lib.index_path(self._h, i)) for i in range(len(self))]

    @property
    def embeddings(self):
        """(len, dim) float32 copy of the stored, L2-normalised embeddings."""
        n, d = len(self), self.dim
        if n == 0:
            return np.empty((0, d), np.float32)
        p = _lib.index_embeddings(self._h)
        return np.ctypeslib.as_array(p, shape=(n, d)).copy()

    def search(self, model, text=None, image=None, embedding=None, k=10):
        """The k images most similar to one query, best first, as Hit(path,
        score, index): a text, an image (path, array or PIL image) or an
        embedding made by the same model. An index built by another model is
        refused."""
        if sum(x is not None for x in (text, image, embedding)) != 1:
            raise ValueError("give exactly one of text, image or embedding")
        if text is not None:
            q = model.encode_texts([text])[0]
        elif image is not None:
            q = model.encode_images([image])[0]
        else:
            q = np.ascontiguousarray(embedding, dtype=np.float32).ravel().copy()
            if q.size != self.dim:
                raise ValueError("the embedding has %d values, the index %d" % (q.size, self.dim))
        k = int(k)
        if k < 1:
            raise ValueError("k must be at least 1")
        hits = (_lib.SearchHit * k)()
        n = c_int(0)
        _lib.check(_lib.index_search(self._h, model.identity.encode(), _f32(q), k, 0, hits, byref(n)))
        return [Hit(self._usable(hits[i].path), float(hits[i].score), int(hits[i].index)) for i in range(n.value)]

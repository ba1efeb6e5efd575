"""_lib.py: loads libclipcl and declares the C functions the package calls
(ctypes: no compiler needed at run time). The library is looked up in this
order: the file named by the CLIPCL_LIBRARY environment variable, the copy
installed inside this package by `pip install`, then the system's search path
(an installed prefix: `cmake --install`). Every call's clipcl_status is
checked, and a failure raises clipcl.Error with the library's message."""
import ctypes
import ctypes.util
import glob
import os

from ctypes import (POINTER, Structure, c_char, c_char_p, c_double, c_float, c_int, c_int32, c_int64, c_size_t,
                    c_uint8, c_uint64, c_void_p, CFUNCTYPE)


class Error(Exception):
    """A libclipcl call failed: .status is the clipcl_status code (negative),
    .status_name its short name (e.g. "i/o error"), str() the message."""

    def __init__(self, status, message, status_name=""):
        super().__init__(message)
        self.status = status
        self.status_name = status_name


def _find_library():
    env = os.environ.get("CLIPCL_LIBRARY")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    bundled = sorted(glob.glob(os.path.join(here, "libclipcl.so*")))
    if bundled:
        return bundled[0]
    found = ctypes.util.find_library("clipcl")
    return found or "libclipcl.so.0"


def _load():
    path = _find_library()
    try:
        return ctypes.CDLL(path)
    except OSError as e:
        raise ImportError(
            "clipcl: cannot load the libclipcl shared library (%s): %s. Install the package with "
            "`pip install ./python` from a clipcl checkout, install the library (`cmake --install`), "
            "or set CLIPCL_LIBRARY to the path of libclipcl.so" % (path, e)) from None


lib = _load()

# ---- structures (include/clipcl.h) -------------------------------------------


class DeviceInfo(Structure):
    _fields_ = [("index", c_int), ("platform_index", c_int), ("device_index", c_int),
                ("name", c_char * 256), ("vendor", c_char * 256), ("platform", c_char * 256),
                ("version", c_char * 128), ("driver", c_char * 128), ("compute_units", c_int),
                ("global_mem", c_uint64), ("max_alloc", c_uint64), ("local_mem", c_uint64),
                ("max_work_group", c_size_t), ("fp16", c_int), ("fp64", c_int), ("is_cpu", c_int),
                ("is_gpu", c_int), ("vector_width", c_int)]


class VisionCfg(Structure):
    _fields_ = [("image_size", c_int), ("layers", c_int), ("width", c_int), ("patch_size", c_int),
                ("head_width", c_int), ("mlp_ratio", c_float)]


class TextCfg(Structure):
    _fields_ = [("context_length", c_int), ("vocab_size", c_int), ("width", c_int), ("heads", c_int),
                ("layers", c_int), ("mlp_ratio", c_float)]


class Config(Structure):
    _fields_ = [("name", c_char * 64), ("embed_dim", c_int), ("quick_gelu", c_int), ("vision", VisionCfg),
                ("text", TextCfg)]


class Image(Structure):
    _fields_ = [("w", c_int), ("h", c_int), ("rgb", POINTER(c_uint8))]


class BadSample(Structure):
    _fields_ = [("source", c_char_p), ("reason", c_char_p), ("status", c_int), ("epoch", c_int64),
                ("index", c_int64)]


BAD_FN = CFUNCTYPE(None, c_void_p, POINTER(BadSample))
PROGRESS_FN = CFUNCTYPE(None, c_void_p, c_char_p, c_int64, c_int64)


class EvalOptions(Structure):
    _fields_ = [("batch", c_int), ("workers", c_int), ("threads", c_int), ("max_bad_fraction", c_double),
                ("keep_embeddings", c_int), ("on_bad", BAD_FN), ("user", c_void_p), ("progress", PROGRESS_FN)]


class SearchHit(Structure):
    _fields_ = [("index", c_int64), ("score", c_float), ("path", c_char_p)]


# ---- functions ---------------------------------------------------------------
_p = c_void_p  # opaque handles
_F32 = POINTER(c_float)
_I32 = POINTER(c_int32)


def _fn(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


last_error = _fn("clipcl_last_error", c_char_p)
status_name = _fn("clipcl_status_name", c_char_p, c_int)
version = _fn("clipcl_version", c_char_p)

device_count = _fn("clipcl_device_count", c_int, POINTER(c_int))
device_query = _fn("clipcl_device_query", c_int, c_int, POINTER(DeviceInfo))
device_open = _fn("clipcl_device_open", c_int, c_char_p, POINTER(_p))
device_free = _fn("clipcl_device_free", None, _p)
device_get_info = _fn("clipcl_device_get_info", c_int, _p, POINTER(DeviceInfo))

config_get = _fn("clipcl_config_get", c_int, c_char_p, POINTER(Config))

model_load = _fn("clipcl_model_load", c_int, _p, c_char_p, POINTER(Config), POINTER(_p))
model_free = _fn("clipcl_model_free", None, _p)
model_config = _fn("clipcl_model_config", POINTER(Config), _p)
model_config_source = _fn("clipcl_model_config_source", c_char_p, _p)
model_identity = _fn("clipcl_model_identity", c_int, _p, c_char_p, c_size_t)
model_encode_images = _fn("clipcl_model_encode_images", c_int, _p, _F32, c_int, _F32)
model_encode_texts = _fn("clipcl_model_encode_texts", c_int, _p, _I32, c_int, _F32)
model_text_hidden_states = _fn("clipcl_model_text_hidden_states", c_int, _p, _I32, c_int, c_int, _F32)

tokenizer_create = _fn("clipcl_tokenizer_create", c_int, POINTER(_p))
tokenizer_load = _fn("clipcl_tokenizer_load", c_int, c_char_p, POINTER(_p))
tokenizer_free = _fn("clipcl_tokenizer_free", None, _p)
tokenize = _fn("clipcl_tokenize", c_int, _p, c_char_p, c_int, _I32, POINTER(c_int))
detokenize = _fn("clipcl_detokenize", c_int, _p, _I32, c_int, c_int, c_char_p, c_size_t, POINTER(c_size_t))

image_load = _fn("clipcl_image_load", c_int, c_char_p, POINTER(Image))
image_free = _fn("clipcl_image_free", None, POINTER(Image))
image_preprocess = _fn("clipcl_image_preprocess", c_int, POINTER(Image), c_int, _F32)

eval_options_init = _fn("clipcl_eval_options_init", None, POINTER(EvalOptions))
encode_image_files = _fn("clipcl_encode_image_files", c_int, _p, POINTER(c_char_p), c_size_t,
                         POINTER(EvalOptions), _F32, POINTER(c_uint8), POINTER(c_size_t))
encode_texts = _fn("clipcl_encode_texts", c_int, _p, _p, POINTER(c_char_p), c_size_t, POINTER(EvalOptions), _F32)
zeroshot_classifier = _fn("clipcl_zeroshot_classifier", c_int, _F32, c_int, c_int, c_int, _F32)
topk = _fn("clipcl_topk", c_int, _F32, c_size_t, _F32, c_size_t, c_int, c_int, c_int, _I32, _F32)

index_load = _fn("clipcl_index_load", c_int, c_char_p, POINTER(_p))
index_free = _fn("clipcl_index_free", None, _p)
index_count = _fn("clipcl_index_count", c_size_t, _p)
index_dim = _fn("clipcl_index_dim", c_int, _p)
index_model = _fn("clipcl_index_model", c_char_p, _p)
index_path = _fn("clipcl_index_path", c_char_p, _p, c_size_t)
index_root = _fn("clipcl_index_root", c_char_p, _p)
index_set_root = _fn("clipcl_index_set_root", c_int, _p, c_char_p)
index_embeddings = _fn("clipcl_index_embeddings", _F32, _p)
index_search = _fn("clipcl_index_search", c_int, _p, c_char_p, _F32, c_int, c_int, POINTER(SearchHit),
                   POINTER(c_int))


def check(status):
    """Raises Error for a failed call (status != 0)."""
    if status != 0:
        msg = last_error().decode("utf-8", "replace")
        raise Error(status, msg or "libclipcl call failed", (status_name(status) or b"").decode())

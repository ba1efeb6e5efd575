/* safetensors.h: read and write the safetensors format (Hugging Face).
 *
 * Layout: u64 little-endian header length N, N bytes of JSON
 *   {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [b, e]}}
 * then the raw little-endian C-order data; offsets count from the data start.
 *
 * Reader: cc_st_open validates the whole header before anything is trusted
 * (sizes, types, offsets in range, no overlaps, shape x dtype size == byte
 * span, all without overflow), then tensor data is read with positioned reads
 * on demand, so a 1.7 GB file costs only its header in memory. F32, F16,
 * BF16 and F64 convert to float32; every other dtype (I64 position_ids, ...)
 * is listed and readable as raw bytes only.
 * An open file is read-only state: several threads may read tensors from
 * one handle at once (positioned reads, per-call buffers).
 * Writer: tensors in the caller's order, F32 by default (F16/BF16 on request,
 * round to nearest even), header padded with spaces to a multiple of 8 as the
 * reference library does, written atomically (io/atomic.h). Data comes from
 * memory or from a callback that streams chunks (large models).
 * Not here: name mapping between OpenAI and HF names (io/names.h), model
 * layout, memory mapping.
 */
#ifndef CC_IO_SAFETENSORS_H
#define CC_IO_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

#include "clipcl.h"

/* F32 is 0 so a zeroed cc_st_out stores float32. */
typedef enum {
  CC_ST_F32 = 0,
  CC_ST_F16,
  CC_ST_BF16,
  CC_ST_F64,
  CC_ST_BOOL,
  CC_ST_U8,
  CC_ST_I8,
  CC_ST_F8_E5M2,
  CC_ST_F8_E4M3,
  CC_ST_I16,
  CC_ST_U16,
  CC_ST_I32,
  CC_ST_U32,
  CC_ST_I64,
  CC_ST_U64,
  CC_ST_NDTYPES
} cc_st_dtype;

/* Tensors with more dimensions are refused as CLIPCL_ERR_UNSUPPORTED. */
#define CC_ST_MAX_DIMS 8
/* Headers above this are refused before any allocation (the reference
 * library's own limit is 100 MB). */
#define CC_ST_MAX_HEADER (100u << 20)

const char *cc_st_dtype_name(cc_st_dtype d);  /* "F32", ...; "?" if invalid */
size_t cc_st_dtype_size(cc_st_dtype d);       /* bytes per element; 0 if invalid */
int cc_st_dtype_is_float(cc_st_dtype d);      /* 1 for F32, F16, BF16, F64 */

typedef struct {
  const char *name;      /* owned by the file handle */
  cc_st_dtype dtype;
  int ndim;
  int64_t shape[CC_ST_MAX_DIMS];
  uint64_t numel;        /* product of shape (1 for a scalar) */
  uint64_t begin, end;   /* byte span relative to the data start */
} cc_st_tensor;

typedef struct cc_st_file cc_st_file;

clipcl_status cc_st_open(const char *path, cc_st_file **out);
void cc_st_close(cc_st_file *f);
const char *cc_st_path(const cc_st_file *f);

/* Tensors in file order (ascending begin). */
size_t cc_st_count(const cc_st_file *f);
const cc_st_tensor *cc_st_get(const cc_st_file *f, size_t i);  /* NULL if out of range */
const cc_st_tensor *cc_st_find(const cc_st_file *f, const char *name); /* NULL if absent */

/* Converts the tensor to float32 into dst (numel floats). ERR_UNSUPPORTED for
 * non-float dtypes; ERR_IO if the file shrank since it was opened. */
clipcl_status cc_st_read_f32(const cc_st_file *f, const cc_st_tensor *t, float *dst);
/* Elements [first, first+count) of the flattened tensor, converted. */
clipcl_status cc_st_read_f32_range(const cc_st_file *f, const cc_st_tensor *t, uint64_t first,
                                   size_t count, float *dst);
/* The stored bytes (little-endian) into dst, which holds cap >= end-begin bytes. */
clipcl_status cc_st_read_raw(const cc_st_file *f, const cc_st_tensor *t, void *dst, size_t cap);

/* __metadata__: value for key or NULL; entries by index (NULL past the end). */
const char *cc_st_meta(const cc_st_file *f, const char *key);
size_t cc_st_meta_count(const cc_st_file *f);
const char *cc_st_meta_key(const cc_st_file *f, size_t i);
const char *cc_st_meta_value(const cc_st_file *f, size_t i);

/* ---- writer ------------------------------------------------------------- */
typedef struct {
  const char *key, *value;
} cc_st_kv;

typedef struct {
  const char *name;
  cc_st_dtype dtype;  /* stored type: F32 (default), F16, BF16 for float
                         sources; any dtype when `raw` is given */
  int ndim;           /* 0 for a scalar */
  int64_t shape[CC_ST_MAX_DIMS];
  const float *data;  /* numel floats, or NULL to use raw or the fill callback */
  const void *raw;    /* numel * dtype size bytes, already little-endian */
} cc_st_out;

/* Streams floats for tensor `index` (position in the array given to
 * cc_st_write): elements [first, first+count) into dst. */
typedef clipcl_status (*cc_st_fill_fn)(void *ctx, size_t index, uint64_t first, size_t count, float *dst);

/* Writes n tensors in the given order plus the metadata pairs. Names must be
 * valid UTF-8, unique and not "__metadata__". fill (with ctx) supplies data
 * for tensors whose data and raw are both NULL; it may be NULL otherwise. On
 * any error the previous file at path is left as it was. */
clipcl_status cc_st_write(const char *path, const cc_st_out *t, size_t n, const cc_st_kv *meta,
                          size_t nmeta, cc_st_fill_fn fill, void *ctx);

/* Scalar conversions (exposed for tests and for the model code). */
float cc_f16_to_f32(uint16_t h);
float cc_bf16_to_f32(uint16_t h);
uint16_t cc_f32_to_f16(float f);   /* round to nearest even, overflow to inf */
uint16_t cc_f32_to_bf16(float f);  /* round to nearest even, NaN stays NaN */
float cc_f64_to_f32(double d);     /* round to nearest even, overflow to inf */
#endif

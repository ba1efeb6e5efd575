/* npy.h: NumPy .npy files of float32 (and float16) vectors and matrices
 * (embeddings, features, probe weights, search index parts) that users load
 * with numpy.load.
 *
 * Writer: format 1.0, descr '<f4' (or '<f2'), fortran_order False, 1-D to 3-D
 * (text hidden states are (N, context, width)), with the
 * header laid out byte for byte as numpy 1.24 writes it (dict repr, spare
 * spaces for growing the first axis, padded with spaces and a newline so the
 * data starts at a multiple of 64), written atomically (io/atomic.h), either
 * at once or streamed row block by row block.
 * Reader: format 1.0 or 2.0, descr '<f4' (cc_npy_read_f32) or also '<f2'
 * (cc_npy_read_float, cc_npy_probe), fortran_order False, 1-D or
 * 2-D; the header dict is parsed strictly (exactly the three keys, Python
 * literal syntax) and the data size must match the file size exactly.
 * Not here: other dtypes (float64, big-endian), 0-D arrays, reading >2-D or
 * writing >3-D arrays, .npz archives, pickles.
 */
#ifndef CC_IO_NPY_H
#define CC_IO_NPY_H
#include <stddef.h>
#include <stdint.h>

#include "clipcl.h"

/* Largest header accepted when reading (numpy's own default limit is 10000). */
#define CC_NPY_MAX_HEADER 65536

typedef enum { CC_NPY_F32 = 1, CC_NPY_F16 = 2 } cc_npy_dtype;

/* n float16 values as stored (2n little-endian bytes) to float32. */
void cc_f16_row_to_f32(const void *le, float *f, size_t n);

/* A checked header: data_offset is where the little-endian elements start. */
typedef struct {
  cc_npy_dtype dtype;
  int ndim;
  size_t shape[2]; /* shape[1] is 1 for 1-D */
  uint64_t data_offset;
} cc_npy_info;

/* data holds shape[0] (* shape[1] (* shape[2])) floats in C order; ndim is 1 to 3. */
clipcl_status cc_npy_write_f32(const char *path, const float *data, int ndim, const size_t *shape);

/* Reads a whole file: *data is malloc'd (free() it; NULL for an empty array),
 * *ndim is 1 or 2, shape[1] is 1 for a 1-D array. */
clipcl_status cc_npy_read_f32(const char *path, float **data, int *ndim, size_t shape[2]);

/* The same, stored as dtype (float16 rounds to nearest even). */
clipcl_status cc_npy_write_as(const char *path, cc_npy_dtype dtype, const float *data, int ndim,
                              const size_t *shape);
/* Either dtype, returned as float32. */
clipcl_status cc_npy_read_float(const char *path, float **data, cc_npy_info *info);
/* Only the header of a float32 or float16 file, checked against its size. */
clipcl_status cc_npy_probe(const char *path, cc_npy_info *info);

/* Streaming writer: the shape is fixed up front, cc_npy_writer_put appends
 * any number of floats in C order, commit checks the count and renames. */
typedef struct cc_npy_writer cc_npy_writer;
clipcl_status cc_npy_writer_open(const char *path, int ndim, const size_t *shape, cc_npy_writer **out);
clipcl_status cc_npy_writer_open_as(const char *path, cc_npy_dtype dtype, int ndim, const size_t *shape,
                                    cc_npy_writer **out);
clipcl_status cc_npy_writer_put(cc_npy_writer *w, const float *data, size_t count);
clipcl_status cc_npy_writer_commit(cc_npy_writer *w); /* frees w */
void cc_npy_writer_abort(cc_npy_writer *w);           /* frees w; old file kept */
#endif

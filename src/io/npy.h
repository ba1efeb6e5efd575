/* npy.h: NumPy .npy files of float32 vectors and matrices (embeddings,
 * features, probe weights) that users load with numpy.load.
 *
 * Writer: format 1.0, descr '<f4', fortran_order False, 1-D to 3-D (text
 * hidden states are (N, context, width)), with the
 * header laid out byte for byte as numpy 1.24 writes it (dict repr, spare
 * spaces for growing the first axis, padded with spaces and a newline so the
 * data starts at a multiple of 64), written atomically (io/atomic.h), either
 * at once or streamed row block by row block.
 * Reader: format 1.0 or 2.0, descr '<f4' only, fortran_order False, 1-D or
 * 2-D; the header dict is parsed strictly (exactly the three keys, Python
 * literal syntax) and the data size must match the file size exactly.
 * Not here: other dtypes, 0-D arrays, reading >2-D or writing >3-D arrays,
 * .npz archives, pickles.
 */
#ifndef CC_IO_NPY_H
#define CC_IO_NPY_H
#include <stddef.h>
#include <stdint.h>

#include "clipcl.h"

/* Largest header accepted when reading (numpy's own default limit is 10000). */
#define CC_NPY_MAX_HEADER 65536

/* data holds shape[0] (* shape[1] (* shape[2])) floats in C order; ndim is 1 to 3. */
clipcl_status cc_npy_write_f32(const char *path, const float *data, int ndim, const size_t *shape);

/* Reads a whole file: *data is malloc'd (free() it; NULL for an empty array),
 * *ndim is 1 or 2, shape[1] is 1 for a 1-D array. */
clipcl_status cc_npy_read_f32(const char *path, float **data, int *ndim, size_t shape[2]);

/* Streaming writer: the shape is fixed up front, cc_npy_writer_put appends
 * any number of floats in C order, commit checks the count and renames. */
typedef struct cc_npy_writer cc_npy_writer;
clipcl_status cc_npy_writer_open(const char *path, int ndim, const size_t *shape, cc_npy_writer **out);
clipcl_status cc_npy_writer_put(cc_npy_writer *w, const float *data, size_t count);
clipcl_status cc_npy_writer_commit(cc_npy_writer *w); /* frees w */
void cc_npy_writer_abort(cc_npy_writer *w);           /* frees w; old file kept */
#endif

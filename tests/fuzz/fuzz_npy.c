/* fuzz_npy.c: a .npy file from arbitrary bytes through cc_npy_read_f32
 * (magic, version, header length, the Python-literal header dict, shape,
 * data size against the file size), and through the float16-aware readers
 * of search index parts (cc_npy_probe, cc_npy_read_float). */
#include <stdlib.h>

#include "fuzz.h"
#include "io/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fz_write(0, "a.npy", data, size);
  float *v = NULL;
  int nd = 0;
  size_t shape[2] = {0, 0};
  clipcl_status st = cc_npy_read_f32(path, &v, &nd, shape);
  fz_check(st, "cc_npy_read_f32");
  if (st == CLIPCL_OK) {
    /* the data must have come from the file: 4 bytes a value */
    if ((nd != 1 && nd != 2) || (nd == 1 && shape[1] != 1) || shape[0] * shape[1] > size / 4) abort();
    volatile float sink = 0;
    for (size_t i = 0; i < shape[0] * shape[1]; i++) sink += v[i];
    (void)sink;
  }
  free(v);
  v = NULL;
  cc_npy_info in, in2;
  clipcl_status sp = cc_npy_probe(path, &in);
  fz_check(sp, "cc_npy_probe");
  st = cc_npy_read_float(path, &v, &in2);
  fz_check(st, "cc_npy_read_float");
  if ((sp == CLIPCL_OK) != (st == CLIPCL_OK)) abort(); /* the probe and the reader agree */
  if (st == CLIPCL_OK) {
    size_t w = in2.dtype == CC_NPY_F16 ? 2 : 4, n = in2.shape[0] * in2.shape[1];
    if ((in2.ndim != 1 && in2.ndim != 2) || in.dtype != in2.dtype || in.shape[0] != in2.shape[0] ||
        in.shape[1] != in2.shape[1] || in2.data_offset + n * w != size)
      abort();
    volatile float sink = 0;
    for (size_t i = 0; i < n; i++) sink += v[i];
    (void)sink;
  }
  free(v);
  return 0;
}

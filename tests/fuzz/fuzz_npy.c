/* fuzz_npy.c: a .npy file from arbitrary bytes through cc_npy_read_f32
 * (magic, version, header length, the Python-literal header dict, shape,
 * data size against the file size). */
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
  return 0;
}

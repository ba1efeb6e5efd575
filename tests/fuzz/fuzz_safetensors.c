/* fuzz_safetensors.c: a safetensors file from arbitrary bytes: the header
 * length, the JSON header and tensor table (cc_st_open), every tensor read
 * back raw and, for float types, converted to float32 (whole and by range),
 * the metadata, and the model-weights reader on top (name detection, config
 * from metadata or from shapes, every parameter read). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "io/safetensors.h"
#include "model/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = fz_write(0, "w.safetensors", data, size);
  cc_st_file *f = NULL;
  clipcl_status st = cc_st_open(path, &f);
  fz_check(st, "cc_st_open");
  if (st == CLIPCL_OK) {
    size_t n = cc_st_count(f);
    for (size_t i = 0; i < n; i++) {
      const cc_st_tensor *t = cc_st_get(f, i);
      /* the promised invariants: spans inside the file, sizes consistent */
      if (!t || t->end < t->begin || t->end - t->begin > size ||
          t->numel * cc_st_dtype_size(t->dtype) != t->end - t->begin || cc_st_find(f, t->name) != t)
        abort();
      size_t bytes = (size_t)(t->end - t->begin);
      void *raw = malloc(bytes ? bytes : 1);
      if (!raw) abort();
      fz_check(cc_st_read_raw(f, t, raw, bytes), "cc_st_read_raw");
      free(raw);
      if (cc_st_dtype_is_float(t->dtype)) {
        float *v = malloc((size_t)t->numel * sizeof *v + 1);
        if (!v) abort();
        fz_check(cc_st_read_f32(f, t, v), "cc_st_read_f32");
        if (t->numel > 1) fz_check(cc_st_read_f32_range(f, t, 1, (size_t)t->numel - 1, v), "cc_st_read_f32_range");
        free(v);
      }
    }
    for (size_t i = 0; i < cc_st_meta_count(f); i++)
      if (!cc_st_meta_key(f, i) || !cc_st_meta_value(f, i) || cc_st_meta(f, cc_st_meta_key(f, i)) == NULL) abort();
    cc_st_close(f);
  }
  clipcl_config cfg;
  float *host = NULL;
  cc_weights_info wi;
  fz_check(cc_weights_read(path, NULL, &cfg, &host, &wi), "cc_weights_read");
  free(host);
  return 0;
}

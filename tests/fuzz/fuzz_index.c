/* fuzz_index.c: a search index directory from arbitrary bytes through
 * clipcl_index_load (index.json, the embeddings .npy, the escaped paths
 * file, and every check between them), then a search on what loaded.
 * Input: index.json, SEP, embeddings-1.npy, SEP, paths-1.txt, where SEP is
 * the line "--clipcl-fuzz--" (the seeds' index.json names generation 1). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define SEP "\n--clipcl-fuzz--\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *j, *rest, *e, *p;
  size_t jn, rn, en, pn;
  fz_split(data, size, SEP, &j, &jn, &rest, &rn);
  fz_split(rest, rn, SEP, &e, &en, &p, &pn);
  fz_write(0, "index.json", j, jn);
  fz_write(1, "embeddings-1.npy", e, en);
  fz_write(2, "paths-1.txt", p, pn);
  clipcl_index *ix = NULL;
  clipcl_status st = clipcl_index_load(fz_dir(), &ix);
  fz_check(st, "clipcl_index_load");
  if (st == CLIPCL_OK) {
    size_t n = clipcl_index_count(ix);
    int dim = clipcl_index_dim(ix);
    if (dim < 1 || !clipcl_index_model(ix)) abort();
    for (size_t i = 0; i < n; i++)
      if (!clipcl_index_path(ix, i) || !clipcl_index_contains(ix, clipcl_index_path(ix, i))) abort();
    if (n && (size_t)dim * n <= 1u << 20) {
      float *q = calloc((size_t)dim, sizeof *q);
      clipcl_search_hit hits[3];
      int nh = 0;
      if (!q) abort();
      q[0] = 1;
      fz_check(clipcl_index_search(ix, clipcl_index_model(ix), q, 3, 1, hits, &nh), "clipcl_index_search");
      free(q);
    }
    clipcl_index_free(ix);
  } else if (ix) {
    abort();
  }
  return 0;
}

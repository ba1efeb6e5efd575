/* faiss_stub.c: faiss_shim.h for builds without FAISS: nothing to build or
 * read, every call says so. CMake defines CLIPCL_HAVE_FAISS (and compiles
 * faiss_shim.cpp instead) when it finds FAISS. */
#include "search/faiss_shim.h"

#ifndef CLIPCL_HAVE_FAISS
#include <stdio.h>

static int none(char *err, size_t cap) {
  if (err && cap) snprintf(err, cap, "this clipcl was built without FAISS (install libfaiss-dev and rebuild)");
  return 1;
}

int cc_faiss_available(void) { return 0; }
void cc_faiss_set_threads(int n) { (void)n; }
int cc_faiss_create(const char *factory, int dim, cc_faiss **out, char *err, size_t cap) {
  (void)factory, (void)dim;
  *out = NULL;
  return none(err, cap);
}
int cc_faiss_needs_training(const cc_faiss *f) { return (void)f, 0; }
int cc_faiss_train(cc_faiss *f, const float *x, int64_t n, char *err, size_t cap) {
  (void)f, (void)x, (void)n;
  return none(err, cap);
}
int cc_faiss_add(cc_faiss *f, const float *x, int64_t n, char *err, size_t cap) {
  (void)f, (void)x, (void)n;
  return none(err, cap);
}
int cc_faiss_search(const cc_faiss *f, const float *q, int64_t nq, int k, int nprobe, int ef_search, float *scores,
                    int64_t *ids, char *err, size_t cap) {
  (void)f, (void)q, (void)nq, (void)k, (void)nprobe, (void)ef_search, (void)scores, (void)ids;
  return none(err, cap);
}
int cc_faiss_write(const cc_faiss *f, const char *path, char *err, size_t cap) {
  (void)f, (void)path;
  return none(err, cap);
}
int cc_faiss_read(const char *path, cc_faiss **out, char *err, size_t cap) {
  (void)path;
  *out = NULL;
  return none(err, cap);
}
int64_t cc_faiss_ntotal(const cc_faiss *f) { return (void)f, 0; }
int cc_faiss_dim(const cc_faiss *f) { return (void)f, 0; }
size_t cc_faiss_memory(const cc_faiss *f) { return (void)f, 0; }
void cc_faiss_free(cc_faiss *f) { (void)f; }
#else
/* ISO C forbids an empty translation unit */
typedef int cc_faiss_stub_unused;
#endif

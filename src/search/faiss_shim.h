/* faiss_shim.h: the few FAISS calls clipcl makes, as plain C. Debian's
 * libfaiss-dev ships FAISS's C API headers but only a static C++ library
 * without the C symbols, so faiss_shim.cpp (C++, built only when CMake finds
 * FAISS) implements these over the C++ API and catches every exception;
 * faiss_stub.c answers "built without FAISS" otherwise.
 *
 * Every index is built for inner product (METRIC_INNER_PRODUCT): the rows
 * and queries are unit vectors, so the scores are cosine similarities.
 * Functions returning int give 0 on success, else non-zero with a one-line
 * message in err[cap]. A built or read index may be searched by several
 * threads at once (each call passes its own search parameters); adding to
 * it needs the caller to stop searches.
 */
#ifndef CC_FAISS_SHIM_H
#define CC_FAISS_SHIM_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_faiss cc_faiss;

int cc_faiss_available(void);
/* OpenMP threads of the calling thread's FAISS calls (<= 0: leave as is). */
void cc_faiss_set_threads(int n);
/* index_factory(dim, factory, inner product), empty. */
int cc_faiss_create(const char *factory, int dim, cc_faiss **out, char *err, size_t cap);
/* 1 when the type must be trained before rows are added (IVF, PQ, OPQ). */
int cc_faiss_needs_training(const cc_faiss *f);
int cc_faiss_train(cc_faiss *f, const float *x, int64_t n, char *err, size_t cap);
/* Appends n rows; their ids continue from ntotal. */
int cc_faiss_add(cc_faiss *f, const float *x, int64_t n, char *err, size_t cap);
/* k best per query: scores and ids (nq * k), id -1 and score -inf past the
 * end when fewer are found. nprobe (IVF) and ef_search (HNSW) <= 0 keep
 * the index's own values. */
int cc_faiss_search(const cc_faiss *f, const float *q, int64_t nq, int k, int nprobe, int ef_search, float *scores,
                    int64_t *ids, char *err, size_t cap);
int cc_faiss_write(const cc_faiss *f, const char *path, char *err, size_t cap);
int cc_faiss_read(const char *path, cc_faiss **out, char *err, size_t cap);
int64_t cc_faiss_ntotal(const cc_faiss *f);
int cc_faiss_dim(const cc_faiss *f);
/* Bytes of the index's own data (codes, vectors, graph links), roughly. */
size_t cc_faiss_memory(const cc_faiss *f);
void cc_faiss_free(cc_faiss *f);

#ifdef __cplusplus
}
#endif
#endif

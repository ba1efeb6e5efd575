/* search.h: internal interface of src/search/: what the index (index.c),
 * the approximate search (ann.c over the FAISS shim), the index builder
 * (update.c) and the HTTP service (serve.c) share. The public API is the
 * "image search" section of include/clipcl.h.
 *
 * Not here: the FAISS C++ calls themselves (faiss_shim.h, faiss_shim.cpp).
 */
#ifndef CC_SEARCH_H
#define CC_SEARCH_H
#include <stddef.h>
#include <stdint.h>

#include "clipcl.h"

/* Rows per part file unless set otherwise: a crash while indexing loses at
 * most the part in progress, and a part is a few hundred MB at 512 dims. */
#define CC_INDEX_PART_ROWS 100000
/* Relative tolerance of the unit-length check on stored (float16) rows. */
#define CC_INDEX_NORM_TOL 5e-3

/* Float32 rows [first, first+count) of the image (text = 0) or caption
 * (text = 1) embeddings, from memory or the index's part files. */
clipcl_status cc_index_rows_f32(const clipcl_index *ix, int text, size_t first, size_t count, float *out);

/* The FAISS index over image (0) or text (1) embeddings when it is loaded
 * and covers every row; NULL otherwise. */
struct cc_faiss;
struct cc_faiss *cc_index_ann(const clipcl_index *ix, int text);
/* Installs a freshly built FAISS index with its (malloc'd) factory string,
 * both owned by the index from then on; a NULL index removes it. */
void cc_index_set_ann(clipcl_index *ix, int text, struct cc_faiss *a, char *factory);
/* The absolute folder the index was opened from or last saved to, or NULL. */
const char *cc_index_dir(const clipcl_index *ix);

/* Puts prefix + "/" before every relative stored path (the collection
 * root moved up to an ancestor folder); the next save rewrites every part.
 * Row numbers, embeddings and FAISS indexes stay as they are. */
clipcl_status cc_index_rekey(clipcl_index *ix, const char *prefix);

/* Resolves a stored image path against the collection root into an
 * absolute file path inside it: realpath of root + "/" + path, accepted only
 * when it stays inside realpath(root) (symlinks out of the collection and
 * "../" are refused). For a tar member ("shard.tar/key.jpg") *member gets
 * the member name and the result is the shard. NULL (message set) when it
 * cannot be resolved or leaves the collection; malloc'd. */
char *cc_index_resolve(const clipcl_index *ix, const char *stored, char **member);

/* Drops search hits within `threshold` cosine of a better one, transitively
 * (clip-retrieval's deduplication); returns how many stay, in order. Out of
 * memory keeps them all. */
int cc_search_dedup(const clipcl_index *ix, int text, clipcl_search_hit *hits, int n, float threshold);

/* Normalises a path lexically: collapses "//", removes "." and resolves
 * ".." against earlier components (leading ".." kept for relative paths).
 * malloc'd; NULL when out of memory. */
char *cc_path_normalise(const char *p);
/* `to` relative to the directory `from` (both absolute and normalised),
 * "." when equal; malloc'd. */
char *cc_path_relative(const char *from, const char *to);
/* Hash of a NUL-terminated string (FNV-1a 64). */
uint64_t cc_str_hash(const char *s);

/* Base64 (RFC 4648, with padding). encode: *out malloc'd, NUL-terminated.
 * decode: skips ASCII white space; anything else outside the alphabet, bad
 * padding or more than max output bytes is CLIPCL_ERR_FORMAT. */
clipcl_status cc_base64_encode(const void *data, size_t n, char **out, size_t *out_len);
clipcl_status cc_base64_decode(const char *s, size_t n, size_t max, unsigned char **out, size_t *out_len);
/* clipcl serve without a model (the HTTP fuzz target, tests): text queries
 * are tokenised as usual and their token ids (context of them), image
 * queries decoded and preprocessed to image_size (3 planes, CLIP's
 * normalisation), then passed to these functions, which write dim floats.
 * vocab bounds the token ids (0: CLIP's 49408). Indexes are checked against
 * dim instead of a model's identity. */
typedef struct {
  int dim, image_size, context, vocab;
  clipcl_status (*text)(void *user, const int32_t *ids, float *out);
  clipcl_status (*image)(void *user, const float *pixels, float *out);
  void *user;
} cc_server_encoder;
clipcl_status cc_server_start_encoder(const cc_server_encoder *enc, clipcl_tokenizer *tk, clipcl_index *const *ix,
                                      const char *const *names, int n, const clipcl_server_options *opt,
                                      clipcl_server **out);
#endif

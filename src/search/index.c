/* index.c: the image search index: normalised embeddings, their paths and
 * the model identity in a directory (format in clipcl.h), with append that
 * skips known paths, load, save by generation, and top-k search. Not here:
 * embedding images or the query (the model's job) or the HTML page (html.c).
 *
 * Saving rewrites every row (simple, and each generation is whole on its
 * own); index.json is renamed into place last and names the generation, so a
 * crash at any point leaves the previous index readable. There is no locking
 * between concurrent writers: the last index.json renamed wins.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clipcl.h"
#include "eval/eval.h"
#include "util/file.h"
#include "io/npy.h"
#include "util/error.h"

#define INDEX_FORMAT "clipcl-index"
#define INDEX_VERSION 1
#define INDEX_MAX_PATHS_FILE ((size_t)1 << 34)
#define INDEX_NORM_TOL 1e-3

struct clipcl_index {
  char *model;
  int dim;
  size_t n, cap;
  float *emb;   /* cap rows */
  char **paths; /* cap slots */
  size_t *slot; /* open addressing: row + 1, 0 empty */
  size_t hcap;  /* power of two, > 2n */
  uint64_t generation;
};

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

static size_t *find_slot(const clipcl_index *ix, const char *path) {
  size_t m = ix->hcap - 1, i = (size_t)hash_str(path) & m;
  while (ix->slot[i] && strcmp(ix->paths[ix->slot[i] - 1], path) != 0) i = (i + 1) & m;
  return &ix->slot[i];
}

static clipcl_status rehash(clipcl_index *ix, size_t want_rows) {
  size_t hcap = 64;
  while (hcap <= 2 * want_rows) {
    if (hcap > SIZE_MAX / 4 / sizeof(size_t)) return cc_fail(CLIPCL_ERR_NOMEM, "index: too many rows");
    hcap *= 2;
  }
  if (hcap <= ix->hcap) return CLIPCL_OK;
  size_t *slot = calloc(hcap, sizeof *slot);
  if (!slot) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  free(ix->slot);
  ix->slot = slot;
  ix->hcap = hcap;
  for (size_t r = 0; r < ix->n; r++) *find_slot(ix, ix->paths[r]) = r + 1;
  return CLIPCL_OK;
}

static clipcl_status reserve(clipcl_index *ix, size_t rows) {
  if (rows <= ix->cap) return CLIPCL_OK;
  size_t cap = ix->cap ? ix->cap : 256;
  while (cap < rows) cap = cap > SIZE_MAX / 2 ? rows : cap * 2;
  if (cap > SIZE_MAX / sizeof(float) / (size_t)ix->dim || cap > SIZE_MAX / sizeof(char *))
    return cc_fail(CLIPCL_ERR_NOMEM, "index: too many rows");
  float *emb = realloc(ix->emb, cap * ix->dim * sizeof *emb);
  if (!emb) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  ix->emb = emb;
  char **paths = realloc(ix->paths, cap * sizeof *paths);
  if (!paths) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  ix->paths = paths;
  ix->cap = cap;
  return rehash(ix, cap);
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

clipcl_status clipcl_index_create(const char *model_id, int dim, clipcl_index **out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "index: no output");
  *out = NULL;
  if (!model_id || !*model_id || dim < 1)
    return cc_fail(CLIPCL_ERR_ARG, "index: needs a model identity and dim >= 1 (got %d)", dim);
  if (cc_utf8_check((const unsigned char *)model_id, strlen(model_id)) != strlen(model_id))
    return cc_fail(CLIPCL_ERR_ARG, "index: the model identity is not valid UTF-8");
  clipcl_index *ix = calloc(1, sizeof *ix);
  if (!ix || !(ix->model = dup_str(model_id))) {
    free(ix);
    return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  }
  ix->dim = dim;
  clipcl_status st = rehash(ix, 0);
  if (st) {
    clipcl_index_free(ix);
    return st;
  }
  *out = ix;
  return CLIPCL_OK;
}

void clipcl_index_free(clipcl_index *ix) {
  if (!ix) return;
  for (size_t r = 0; r < ix->n; r++) free(ix->paths[r]);
  free(ix->paths);
  free(ix->emb);
  free(ix->slot);
  free(ix->model);
  free(ix);
}

size_t clipcl_index_count(const clipcl_index *ix) { return ix ? ix->n : 0; }
int clipcl_index_dim(const clipcl_index *ix) { return ix ? ix->dim : 0; }
const char *clipcl_index_model(const clipcl_index *ix) { return ix ? ix->model : NULL; }
const char *clipcl_index_path(const clipcl_index *ix, size_t i) { return ix && i < ix->n ? ix->paths[i] : NULL; }
const float *clipcl_index_embeddings(const clipcl_index *ix) { return ix ? ix->emb : NULL; }

int clipcl_index_contains(const clipcl_index *ix, const char *path) {
  return ix && path && *find_slot(ix, path) != 0;
}

clipcl_status clipcl_index_check_model(const clipcl_index *ix, const char *model_id) {
  if (!ix || !model_id) return cc_fail(CLIPCL_ERR_ARG, "index: no index or model identity");
  if (strcmp(ix->model, model_id) != 0)
    return cc_fail(CLIPCL_ERR_ARG, "index was built with model \"%s\", not \"%s\"; rebuild it or use that model",
                   ix->model, model_id);
  return CLIPCL_OK;
}

/* Appends one row (path copied, embedding normalised with inv). */
static clipcl_status push_row(clipcl_index *ix, const char *path, const float *e, double inv) {
  CC_TRY(reserve(ix, ix->n + 1));
  char *p = dup_str(path);
  if (!p) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  float *dst = ix->emb + ix->n * ix->dim;
  for (int d = 0; d < ix->dim; d++) dst[d] = (float)(e[d] * inv);
  ix->paths[ix->n] = p;
  *find_slot(ix, p) = ix->n + 1;
  ix->n++;
  return CLIPCL_OK;
}

static double inv_norm(const float *e, int dim) {
  double ss = 0;
  for (int d = 0; d < dim; d++) ss += (double)e[d] * e[d];
  return ss > 0 && isfinite(ss) ? 1.0 / sqrt(ss) : 0;
}

clipcl_status clipcl_index_add(clipcl_index *ix, const char *model_id, const char *const *paths,
                               const float *emb, size_t n, size_t *added) {
  if (added) *added = 0;
  CC_TRY(clipcl_index_check_model(ix, model_id));
  if (n == 0) return CLIPCL_OK;
  if (!paths || !emb) return cc_fail(CLIPCL_ERR_ARG, "index add: NULL paths or embeddings");
  if (n > SIZE_MAX / sizeof(float) / (size_t)ix->dim) return cc_fail(CLIPCL_ERR_ARG, "index add: sizes overflow");
  /* check everything first so a bad row adds nothing */
  for (size_t i = 0; i < n; i++) {
    if (!paths[i] || !*paths[i]) return cc_fail(CLIPCL_ERR_ARG, "index add: row %zu has an empty path", i);
    if (inv_norm(emb + i * ix->dim, ix->dim) == 0)
      return cc_fail(CLIPCL_ERR_NUMERIC, "index add: %s: embedding is zero or not finite", paths[i]);
  }
  size_t before = ix->n;
  for (size_t i = 0; i < n; i++) {
    if (clipcl_index_contains(ix, paths[i])) continue;
    const float *e = emb + i * ix->dim;
    clipcl_status st = push_row(ix, paths[i], e, inv_norm(e, ix->dim));
    if (st) {
      /* keep the index as it was before the call */
      while (ix->n > before) free(ix->paths[--ix->n]);
      memset(ix->slot, 0, ix->hcap * sizeof *ix->slot);
      for (size_t r = 0; r < ix->n; r++) *find_slot(ix, ix->paths[r]) = r + 1;
      return st;
    }
  }
  if (added) *added = ix->n - before;
  return CLIPCL_OK;
}

/* ---- files ---------------------------------------------------------------- */
static char *join3(const char *dir, const char *name, uint64_t gen, const char *ext) {
  char tail[96];
  if (ext)
    snprintf(tail, sizeof tail, "%s-%llu.%s", name, (unsigned long long)gen, ext);
  else
    snprintf(tail, sizeof tail, "%s", name);
  size_t a = strlen(dir), b = strlen(tail);
  char *s = malloc(a + b + 2);
  if (!s) return NULL;
  memcpy(s, dir, a);
  s[a] = '/';
  memcpy(s + a + 1, tail, b + 1);
  return s;
}

typedef struct {
  const char *model;
  json_int_t dim, count, generation;
} index_meta;

/* Reads dir/index.json; *found = 0 when it does not exist. The json_t stays
 * alive in *keep because meta->model points into it. */
static clipcl_status read_meta(const char *dir, index_meta *m, int *found, json_t **keep) {
  *found = 0;
  *keep = NULL;
  char *pj = join3(dir, "index.json", 0, NULL);
  if (!pj) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  FILE *f = fopen(pj, "rb");
  if (!f) {
    int e = errno;
    clipcl_status st = e == ENOENT ? CLIPCL_OK : cc_fail(CLIPCL_ERR_IO, "%s: cannot open", pj);
    free(pj);
    return st;
  }
  json_error_t err;
  json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &err);
  fclose(f);
  clipcl_status st = CLIPCL_OK;
  const char *fmt = NULL;
  int version = 0;
  if (!root) {
    st = cc_fail(CLIPCL_ERR_FORMAT, "%s:%d: %s", pj, err.line, err.text);
  } else if (json_unpack(root, "{s:s, s:i, s:s, s:I, s:I, s:I}", "format", &fmt, "version", &version, "model",
                         &m->model, "dim", &m->dim, "count", &m->count, "generation", &m->generation) != 0 ||
             strcmp(fmt, INDEX_FORMAT) != 0) {
    st = cc_fail(CLIPCL_ERR_FORMAT, "%s: not a clipcl index description", pj);
  } else if (version != INDEX_VERSION) {
    st = cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: index version %d (this build reads %d)", pj, version, INDEX_VERSION);
  } else if (m->dim < 1 || m->dim > INT32_MAX || m->count < 0 || m->generation < 1 || !*m->model) {
    st = cc_fail(CLIPCL_ERR_FORMAT, "%s: bad dim, count, generation or model", pj);
  }
  free(pj);
  if (st) {
    json_decref(root);
    return st;
  }
  *found = 1;
  *keep = root;
  return CLIPCL_OK;
}

int clipcl_index_exists(const char *dir) {
  if (!dir) return 0;
  char *pj = join3(dir, "index.json", 0, NULL);
  struct stat sb;
  int ok = pj && stat(pj, &sb) == 0 && S_ISREG(sb.st_mode);
  free(pj);
  return ok;
}

static void escape_path(cc_buf *b, const char *p) {
  for (; *p; p++) {
    if (*p == '\\')
      cc_buf_add(b, "\\\\", 2);
    else if (*p == '\n')
      cc_buf_add(b, "\\n", 2);
    else if (*p == '\r')
      cc_buf_add(b, "\\r", 2);
    else
      cc_buf_add(b, p, 1);
  }
  cc_buf_add(b, "\n", 1);
}

/* Unescapes the paths file into rows of ix (whose embeddings are in place). */
static clipcl_status parse_paths(clipcl_index *ix, const char *file, char *buf, size_t len, size_t count) {
  size_t line = 0;
  char *p = buf, *end = buf + len;
  while (p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    line++;
    if (!nl) return cc_fail(CLIPCL_ERR_FORMAT, "%s:%zu: last line has no newline (truncated file?)", file, line);
    if (ix->n == count) return cc_fail(CLIPCL_ERR_FORMAT, "%s: more than the %zu paths index.json lists", file, count);
    char *w = p;
    for (char *r = p; r < nl; r++) {
      if (*r == '\r' || *r == 0)
        return cc_fail(CLIPCL_ERR_FORMAT, "%s:%zu: raw %s byte (CR is written \\r)", file, line, *r ? "CR" : "NUL");
      if (*r != '\\') {
        *w++ = *r;
        continue;
      }
      if (++r == nl) return cc_fail(CLIPCL_ERR_FORMAT, "%s:%zu: line ends in a lone backslash", file, line);
      if (*r == '\\')
        *w++ = '\\';
      else if (*r == 'n')
        *w++ = '\n';
      else if (*r == 'r')
        *w++ = '\r';
      else
        return cc_fail(CLIPCL_ERR_FORMAT, "%s:%zu: unknown escape \\%c", file, line, *r);
    }
    *w = 0;
    if (w == p) return cc_fail(CLIPCL_ERR_FORMAT, "%s:%zu: empty path", file, line);
    size_t *slot = find_slot(ix, p);
    if (*slot) return cc_fail(CLIPCL_ERR_FORMAT, "%s:%zu: path repeats line %zu", file, line, *slot);
    char *copy = dup_str(p);
    if (!copy) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", file);
    ix->paths[ix->n] = copy;
    *slot = ++ix->n;
    p = nl + 1;
  }
  if (ix->n != count)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: %zu paths, index.json lists %zu", file, ix->n, count);
  return CLIPCL_OK;
}

clipcl_status clipcl_index_load(const char *dir, clipcl_index **out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "index: no output");
  *out = NULL;
  if (!dir || !*dir) return cc_fail(CLIPCL_ERR_ARG, "index: no directory");
  index_meta m;
  int found;
  json_t *keep;
  CC_TRY(read_meta(dir, &m, &found, &keep));
  if (!found) return cc_fail(CLIPCL_ERR_IO, "%s: no index here (index.json missing)", dir);
  clipcl_index *ix = NULL;
  char *pe = join3(dir, "embeddings", (uint64_t)m.generation, "npy");
  char *pp = join3(dir, "paths", (uint64_t)m.generation, "txt");
  float *data = NULL;
  char *text = NULL;
  size_t tlen = 0, count = (size_t)m.count;
  clipcl_status st = pe && pp ? CLIPCL_OK : cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  if (!st) st = clipcl_index_create(m.model, (int)m.dim, &ix);
  if (!st) {
    int nd;
    size_t shape[2];
    st = cc_npy_read_f32(pe, &data, &nd, shape);
    if (!st && (nd != 2 || shape[0] != count || shape[1] != (size_t)m.dim))
      st = cc_fail(CLIPCL_ERR_FORMAT, "%s: shape is not %zu x %d as index.json says", pe, count, (int)m.dim);
  }
  if (!st) st = cc_eval_check_finite(data, count * (size_t)m.dim, (int)m.dim, pe);
  for (size_t r = 0; r < count && !st; r++) {
    double ss = 0;
    for (int d = 0; d < (int)m.dim; d++) ss += (double)data[r * m.dim + d] * data[r * m.dim + d];
    if (fabs(sqrt(ss) - 1) > INDEX_NORM_TOL)
      st = cc_fail(CLIPCL_ERR_FORMAT, "%s: row %zu is not normalised (norm %g)", pe, r, sqrt(ss));
  }
  if (!st) st = reserve(ix, count);
  if (!st) {
    if (count) memcpy(ix->emb, data, count * (size_t)m.dim * sizeof *data);
    st = cc_read_file(pp, INDEX_MAX_PATHS_FILE, &text, &tlen);
  }
  if (!st) st = parse_paths(ix, pp, text, tlen, count);
  if (!st) ix->generation = (uint64_t)m.generation;
  free(text);
  free(data);
  free(pe), free(pp);
  json_decref(keep);
  if (st) {
    clipcl_index_free(ix);
    return st;
  }
  *out = ix;
  return CLIPCL_OK;
}

clipcl_status clipcl_index_save(clipcl_index *ix, const char *dir) {
  if (!ix || !dir || !*dir) return cc_fail(CLIPCL_ERR_ARG, "index save: no index or directory");
  if (mkdir(dir, 0777) != 0 && errno != EEXIST) return cc_fail(CLIPCL_ERR_IO, "%s: cannot create the directory", dir);
  struct stat sb;
  if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return cc_fail(CLIPCL_ERR_IO, "%s: not a directory", dir);
  index_meta old;
  int found;
  json_t *keep;
  /* a foreign or corrupt index.json is not overwritten */
  CC_TRY(read_meta(dir, &old, &found, &keep));
  uint64_t gen = ix->generation;
  if (found && (uint64_t)old.generation > gen) gen = (uint64_t)old.generation;
  uint64_t old_gen = found ? (uint64_t)old.generation : 0;
  json_decref(keep);
  gen++;
  char *pe = join3(dir, "embeddings", gen, "npy"), *pp = join3(dir, "paths", gen, "txt"),
       *pj = join3(dir, "index.json", 0, NULL);
  clipcl_status st = pe && pp && pj ? CLIPCL_OK : cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  if (!st) st = cc_npy_write_f32(pe, ix->emb, 2, (size_t[]){ix->n, (size_t)ix->dim});
  if (!st) {
    cc_buf b = {0};
    for (size_t r = 0; r < ix->n; r++) escape_path(&b, ix->paths[r]);
    st = cc_buf_save(&b, pp);
    cc_buf_free(&b);
  }
  if (!st) {
    json_t *meta = json_pack("{s:s, s:i, s:s, s:i, s:I, s:I}", "format", INDEX_FORMAT, "version", INDEX_VERSION,
                             "model", ix->model, "dim", ix->dim, "count", (json_int_t)ix->n, "generation",
                             (json_int_t)gen);
    char *text = meta ? json_dumps(meta, JSON_INDENT(2)) : NULL;
    json_decref(meta);
    if (!text) {
      st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
    } else {
      cc_buf b = {0};
      cc_buf_str(&b, text);
      cc_buf_str(&b, "\n");
      free(text);
      st = cc_buf_save(&b, pj);
      cc_buf_free(&b);
    }
  }
  if (!st) {
    ix->generation = gen;
    if (old_gen && old_gen != gen) {
      /* the previous generation is unreachable now; a failure only leaves garbage */
      char *oe = join3(dir, "embeddings", old_gen, "npy"), *op = join3(dir, "paths", old_gen, "txt");
      if (oe) unlink(oe);
      if (op) unlink(op);
      free(oe), free(op);
    }
  } else if (pe && pp) {
    unlink(pe);
    unlink(pp);
  }
  free(pe), free(pp), free(pj);
  return st;
}

clipcl_status clipcl_index_search(const clipcl_index *ix, const char *model_id, const float *query, int k,
                                  int threads, clipcl_search_hit *hits, int *n_hits) {
  if (n_hits) *n_hits = 0;
  CC_TRY(clipcl_index_check_model(ix, model_id));
  if (!query || !hits || !n_hits || k < 1) return cc_fail(CLIPCL_ERR_ARG, "index search: bad arguments (k %d)", k);
  if (ix->n == 0) return CLIPCL_OK;
  size_t kk = (size_t)k < ix->n ? (size_t)k : ix->n;
  float *q = malloc((size_t)ix->dim * sizeof *q), *sc = malloc(kk * sizeof *sc);
  int32_t *idx = malloc(kk * sizeof *idx);
  clipcl_status st = q && sc && idx ? CLIPCL_OK : cc_fail(CLIPCL_ERR_NOMEM, "index search: out of memory");
  if (!st) {
    memcpy(q, query, (size_t)ix->dim * sizeof *q);
    st = clipcl_l2_normalize(q, 1, ix->dim);
    if (st) cc_fail_ctx(st, "index search: query");
  }
  if (!st) st = clipcl_topk(q, 1, ix->emb, ix->n, ix->dim, (int)kk, threads, idx, sc);
  if (!st) {
    for (size_t r = 0; r < kk; r++) hits[r] = (clipcl_search_hit){idx[r], sc[r], ix->paths[idx[r]]};
    *n_hits = (int)kk;
  }
  free(q), free(sc), free(idx);
  return st;
}

/* index.c: the image search index in clip-retrieval's layout (format in
 * clipcl.h): rows of metadata (image path, caption, url, ...) with their
 * image and caption embeddings, kept in memory as float32 or read from the
 * memory-mapped float16 parts; append, remove, open, save part by part, and
 * exact top-k search on the host. Not here: FAISS (ann.c), turning folders,
 * manifests and shards into rows (update.c), scoring on the device
 * (search_device.c), the page (html.c).
 *
 * Saving writes only the rows added since the last save, as new part files
 * with fresh numbers; index.json, renamed into place last, lists the parts,
 * so a crash at any point leaves the previous index readable. Files the new
 * index.json no longer names are removed after it is in place. There is no
 * locking between concurrent writers: the last index.json renamed wins.
 */
#define _DEFAULT_SOURCE /* realpath */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clipcl.h"
#include "data/data.h"
#include "eval/eval.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "search/faiss_shim.h"
#include "search/search.h"
#include "util/buf.h"
#include "util/error.h"

#define INDEX_FORMAT "clipcl-index"
#define INDEX_VERSION 2
#define INDEX_MAX_JSON ((size_t)64 << 20)
#define PART_DIGITS 4

/* A part file mapped read-only: rows of dim float16 at data. */
typedef struct {
  void *map;
  size_t map_len;
  const unsigned char *data;
} mapped;

typedef struct {
  int id;
  size_t count, first; /* rows [first, first + count) */
  mapped img, txt;
} part;

typedef struct {
  cc_faiss *ann;  /* NULL: not loaded (or none) */
  char *factory;  /* NULL: none */
  char *file;     /* its file in the index folder, NULL when unsaved */
  size_t rows;    /* rows it holds */
  int dirty;      /* differs from `file` */
} ann_slot;

struct clipcl_index {
  char *model;
  int dim;
  char *root; /* absolute, or NULL */
  /* metadata: cells[row * ncols + col] = arena offset + 1, 0 = empty */
  int ncols;
  char **cols;
  size_t n, cap;
  uint64_t *cells;
  char *arena;
  size_t alen, acap;
  size_t *slot; /* open addressing over paths: row + 1, 0 empty */
  size_t hcap;
  /* embeddings of rows [emb0, n) in memory (emb0 = 0: all of them) */
  float *emb, *temb;
  size_t emb0, ecap;
  int has_text; /* -1: not decided yet (empty new index) */
  /* on disk */
  char *dir; /* absolute folder the parts belong to, or NULL */
  part *parts;
  size_t nparts, saved; /* rows covered by parts */
  int rewrite;          /* rows were removed: the next save writes every part */
  size_t part_rows;
  uint64_t generation;
  ann_slot ann[2];
};

/* ---- small helpers ---------------------------------------------------------- */
uint64_t cc_str_hash(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static char *fmt_path(const char *dir, const char *fmt, ...) CC_PRINTF(2, 3);
static char *fmt_path(const char *dir, const char *fmt, ...) {
  char tail[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tail, sizeof tail, fmt, ap);
  va_end(ap);
  size_t a = strlen(dir), b = strlen(tail);
  char *s = malloc(a + b + 2);
  if (!s) return NULL;
  memcpy(s, dir, a);
  s[a] = '/';
  memcpy(s + a + 1, tail, b + 1);
  return s;
}

char *cc_path_normalise(const char *p) {
  size_t n = strlen(p);
  char *out = malloc(n + 2), *w = out;
  if (!out) return NULL;
  int abs = p[0] == '/';
  if (abs) *w++ = '/';
  char *base = w; /* start of the components */
  const char *s = p;
  while (*s) {
    while (*s == '/') s++;
    if (!*s) break;
    const char *e = strchr(s, '/');
    size_t len = e ? (size_t)(e - s) : strlen(s);
    if (len == 1 && s[0] == '.') {
      /* skip */
    } else if (len == 2 && s[0] == '.' && s[1] == '.') {
      /* drop the last component unless it is itself ".." (or there is none) */
      char *last = w > base ? w - 1 : base;
      while (last > base && last[-1] != '/') last--;
      int is_dotdot = w - last == 3 && !strncmp(last, "../", 3);
      if (w > base && !is_dotdot) {
        w = last;
      } else if (!abs) {
        memcpy(w, "../", 3);
        w += 3;
      }
    } else {
      memcpy(w, s, len);
      w += len;
      *w++ = '/';
    }
    s += len;
  }
  if (w > base) w--; /* trailing slash of the last component */
  if (w == out) *w++ = '.';
  *w = 0;
  return out;
}

char *cc_path_relative(const char *from, const char *to) {
  if (!strcmp(from, to)) return dup_str(".");
  /* common leading components */
  size_t i = 0, last = 0;
  if (!strcmp(from, "/")) {
    return dup_str(to + 1);
  }
  while (from[i] && to[i] && from[i] == to[i]) {
    if (from[i] == '/') last = i;
    i++;
  }
  if ((!from[i] && to[i] == '/') || (!to[i] && from[i] == '/')) last = i;
  size_t up = 0;
  for (const char *p = from + last; *p; p++)
    if (*p == '/') up++;
  const char *rest = to[last] == '/' ? to + last + 1 : to + last;
  cc_buf b = {0};
  for (size_t k = 0; k < up; k++) cc_buf_str(&b, k + 1 < up || *rest ? "../" : "..");
  cc_buf_str(&b, rest);
  cc_buf_add(&b, "", 1);
  if (b.oom) {
    cc_buf_free(&b);
    return NULL;
  }
  return b.p;
}

/* ---- rows and metadata --------------------------------------------------------- */
static const char *cell(const clipcl_index *ix, size_t row, int col) {
  uint64_t v = ix->cells[row * (size_t)ix->ncols + (size_t)col];
  return v ? ix->arena + (v - 1) : NULL;
}

static size_t *find_slot(const clipcl_index *ix, const char *path) {
  size_t m = ix->hcap - 1, i = (size_t)cc_str_hash(path) & m;
  while (ix->slot[i] && strcmp(cell(ix, ix->slot[i] - 1, 0), path) != 0) i = (i + 1) & m;
  return &ix->slot[i];
}

static clipcl_status rehash(clipcl_index *ix, size_t want_rows, int force) {
  size_t hcap = 64;
  while (hcap <= 2 * want_rows) {
    if (hcap > SIZE_MAX / 4 / sizeof(size_t)) return cc_fail(CLIPCL_ERR_NOMEM, "index: too many rows");
    hcap *= 2;
  }
  if (hcap <= ix->hcap && !force) return CLIPCL_OK;
  if (hcap < ix->hcap) hcap = ix->hcap;
  size_t *slot = calloc(hcap, sizeof *slot);
  if (!slot) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  free(ix->slot);
  ix->slot = slot;
  ix->hcap = hcap;
  for (size_t r = 0; r < ix->n; r++) *find_slot(ix, cell(ix, r, 0)) = r + 1;
  return CLIPCL_OK;
}

static clipcl_status arena_put(clipcl_index *ix, const char *s, uint64_t *off) {
  size_t len = strlen(s) + 1;
  if (ix->alen + len > ix->acap) {
    size_t cap = ix->acap ? ix->acap : 4096;
    while (cap < ix->alen + len) {
      if (cap > SIZE_MAX / 2) return cc_fail(CLIPCL_ERR_NOMEM, "index: metadata too large");
      cap *= 2;
    }
    char *a = realloc(ix->arena, cap);
    if (!a) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
    ix->arena = a;
    ix->acap = cap;
  }
  memcpy(ix->arena + ix->alen, s, len);
  *off = (uint64_t)ix->alen + 1;
  ix->alen += len;
  return CLIPCL_OK;
}

/* Room for `rows` rows of metadata (and of in-memory embeddings). */
static clipcl_status reserve(clipcl_index *ix, size_t rows) {
  if (rows > ix->cap) {
    size_t cap = ix->cap ? ix->cap : 256;
    while (cap < rows) cap = cap > SIZE_MAX / 2 ? rows : cap * 2;
    if (cap > SIZE_MAX / sizeof(uint64_t) / (size_t)(ix->ncols + 1))
      return cc_fail(CLIPCL_ERR_NOMEM, "index: too many rows");
    uint64_t *c = realloc(ix->cells, cap * (size_t)ix->ncols * sizeof *c);
    if (!c) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
    ix->cells = c;
    ix->cap = cap;
    CC_TRY(rehash(ix, cap, 0));
  }
  size_t erows = rows - ix->emb0;
  if (erows > ix->ecap) {
    size_t cap = ix->ecap ? ix->ecap : 256;
    while (cap < erows) cap = cap > SIZE_MAX / 2 ? erows : cap * 2;
    if (cap > SIZE_MAX / sizeof(float) / (size_t)ix->dim) return cc_fail(CLIPCL_ERR_NOMEM, "index: too many rows");
    float *e = realloc(ix->emb, cap * (size_t)ix->dim * sizeof *e);
    if (!e) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory for embeddings");
    ix->emb = e;
    if (ix->has_text == 1) {
      float *t = realloc(ix->temb, cap * (size_t)ix->dim * sizeof *t);
      if (!t) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory for embeddings");
      ix->temb = t;
    }
    ix->ecap = cap;
  }
  return CLIPCL_OK;
}

/* Column c of `name`, added (empty in existing rows) when missing; -1 on error. */
static int column(clipcl_index *ix, const char *name) {
  for (int c = 0; c < ix->ncols; c++)
    if (!strcmp(ix->cols[c], name)) return c;
  if (ix->ncols >= 1024) {
    cc_fail(CLIPCL_ERR_ARG, "index: more than 1024 metadata columns");
    return -1;
  }
  char **cols = realloc(ix->cols, (size_t)(ix->ncols + 1) * sizeof *cols);
  if (!cols) goto oom;
  ix->cols = cols;
  if (!(cols[ix->ncols] = dup_str(name))) goto oom;
  size_t nc = (size_t)ix->ncols + 1, cap = ix->cap ? ix->cap : 1;
  uint64_t *cells = calloc(cap * nc, sizeof *cells);
  if (!cells) {
    free(cols[ix->ncols]);
    goto oom;
  }
  for (size_t r = 0; r < ix->n; r++) memcpy(cells + r * nc, ix->cells + r * (nc - 1), (nc - 1) * sizeof *cells);
  free(ix->cells);
  ix->cells = cells;
  if (!ix->cap) ix->cap = 1;
  return ix->ncols++;
oom:
  cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  return -1;
}

static clipcl_status check_column_name(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (!n || n > 256 || cc_utf8_check((const unsigned char *)name, n) != n)
    return cc_fail(CLIPCL_ERR_ARG, "index: a metadata column name must be 1-256 bytes of UTF-8");
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
      return cc_fail(CLIPCL_ERR_ARG, "index: metadata column name \"%s\" has a control character", name);
  return CLIPCL_OK;
}

clipcl_status clipcl_index_create(const char *model_id, int dim, clipcl_index **out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "index: no output");
  *out = NULL;
  if (!model_id || !*model_id || dim < 1 || dim > 65536)
    return cc_fail(CLIPCL_ERR_ARG, "index: needs a model identity and 1 <= dim <= 65536 (got %d)", dim);
  if (cc_utf8_check((const unsigned char *)model_id, strlen(model_id)) != strlen(model_id))
    return cc_fail(CLIPCL_ERR_ARG, "index: the model identity is not valid UTF-8");
  clipcl_index *ix = calloc(1, sizeof *ix);
  if (!ix) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  ix->dim = dim;
  ix->has_text = -1;
  ix->part_rows = CC_INDEX_PART_ROWS;
  clipcl_status st = (ix->model = dup_str(model_id)) ? CLIPCL_OK : cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  if (!st && column(ix, "image_path") < 0) st = CLIPCL_ERR_NOMEM;
  if (!st) st = rehash(ix, 0, 1);
  if (st) {
    clipcl_index_free(ix);
    return st;
  }
  *out = ix;
  return CLIPCL_OK;
}

static void unmap(mapped *m) {
  if (m->map) munmap(m->map, m->map_len);
  memset(m, 0, sizeof *m);
}

static void free_parts(clipcl_index *ix) {
  for (size_t p = 0; p < ix->nparts; p++) unmap(&ix->parts[p].img), unmap(&ix->parts[p].txt);
  free(ix->parts);
  ix->parts = NULL;
  ix->nparts = 0;
}

static void ann_clear(ann_slot *a) {
  cc_faiss_free(a->ann);
  free(a->factory);
  free(a->file);
  memset(a, 0, sizeof *a);
}

void clipcl_index_free(clipcl_index *ix) {
  if (!ix) return;
  for (int c = 0; c < ix->ncols; c++) free(ix->cols[c]);
  free(ix->cols);
  free(ix->cells);
  free(ix->arena);
  free(ix->slot);
  free(ix->emb);
  free(ix->temb);
  free_parts(ix);
  for (int t = 0; t < 2; t++) ann_clear(&ix->ann[t]);
  free(ix->dir);
  free(ix->root);
  free(ix->model);
  free(ix);
}

size_t clipcl_index_count(const clipcl_index *ix) { return ix ? ix->n : 0; }
int clipcl_index_dim(const clipcl_index *ix) { return ix ? ix->dim : 0; }
const char *clipcl_index_model(const clipcl_index *ix) { return ix ? ix->model : NULL; }
int clipcl_index_has_text(const clipcl_index *ix) { return ix && ix->has_text == 1; }
const char *clipcl_index_path(const clipcl_index *ix, size_t i) { return ix && i < ix->n ? cell(ix, i, 0) : NULL; }
const char *clipcl_index_root(const clipcl_index *ix) { return ix ? ix->root : NULL; }
const float *clipcl_index_embeddings(const clipcl_index *ix) { return ix && ix->emb0 == 0 ? ix->emb : NULL; }
const float *clipcl_index_text_embeddings(const clipcl_index *ix) {
  return ix && ix->emb0 == 0 && ix->has_text == 1 ? ix->temb : NULL;
}
void clipcl_index_set_part_rows(clipcl_index *ix, size_t rows) {
  if (ix) ix->part_rows = rows ? rows : CC_INDEX_PART_ROWS;
}

int clipcl_index_columns(const clipcl_index *ix, const char *const **names) {
  if (!ix) return 0;
  if (names) *names = (const char *const *)ix->cols;
  return ix->ncols;
}

const char *clipcl_index_value(const clipcl_index *ix, size_t i, int c) {
  return ix && i < ix->n && c >= 0 && c < ix->ncols ? cell(ix, i, c) : NULL;
}

int64_t clipcl_index_find(const clipcl_index *ix, const char *path) {
  if (!ix || !path) return -1;
  size_t s = *find_slot(ix, path);
  return s ? (int64_t)s - 1 : -1;
}

int clipcl_index_contains(const clipcl_index *ix, const char *path) { return clipcl_index_find(ix, path) >= 0; }

clipcl_status clipcl_index_check_model(const clipcl_index *ix, const char *model_id) {
  if (!ix || !model_id) return cc_fail(CLIPCL_ERR_ARG, "index: no index or model identity");
  if (strcmp(ix->model, model_id) != 0)
    return cc_fail(CLIPCL_ERR_ARG, "index was built with model \"%s\", not \"%s\"; rebuild it or use that model",
                   ix->model, model_id);
  return CLIPCL_OK;
}

clipcl_status clipcl_index_set_root(clipcl_index *ix, const char *root) {
  if (!ix || !root || !*root) return cc_fail(CLIPCL_ERR_ARG, "index: no root");
  char abs[PATH_MAX];
  struct stat sb;
  if (!realpath(root, abs) || stat(abs, &sb) != 0 || !S_ISDIR(sb.st_mode))
    return cc_fail(CLIPCL_ERR_IO, "%s: the collection root is not a directory", root);
  char *r = dup_str(abs);
  if (!r) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  free(ix->root);
  ix->root = r;
  return CLIPCL_OK;
}

/* ---- embeddings ------------------------------------------------------------------- */
static double inv_norm(const float *e, int dim) {
  double ss = 0;
  for (int d = 0; d < dim; d++) ss += (double)e[d] * e[d];
  return ss > 0 && isfinite(ss) ? 1.0 / sqrt(ss) : 0;
}

/* dst = e normalised, then rounded to float16 and back (what is stored). */
static void store_row(float *dst, const float *e, int dim) {
  double inv = inv_norm(e, dim);
  for (int d = 0; d < dim; d++) dst[d] = cc_f16_to_f32(cc_f32_to_f16((float)(e[d] * inv)));
}

static const part *part_of(const clipcl_index *ix, size_t row) {
  size_t lo = 0, hi = ix->nparts;
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (ix->parts[mid].first <= row) lo = mid;
    else hi = mid;
  }
  return ix->nparts ? &ix->parts[lo] : NULL;
}

clipcl_status cc_index_rows_f32(const clipcl_index *ix, int text, size_t first, size_t count, float *out) {
  if (first > ix->n || count > ix->n - first) return cc_fail(CLIPCL_ERR_ARG, "index: rows out of range");
  if (text && ix->has_text != 1) return cc_fail(CLIPCL_ERR_ARG, "index: no caption embeddings in this index");
  size_t D = (size_t)ix->dim;
  for (size_t r = first; r < first + count;) {
    if (r >= ix->emb0) {
      memcpy(out + (r - first) * D, (text ? ix->temb : ix->emb) + (r - ix->emb0) * D, (first + count - r) * D * 4);
      break;
    }
    const part *p = part_of(ix, r);
    const mapped *m = p ? (text ? &p->txt : &p->img) : NULL;
    if (!m || !m->data || r < p->first || r >= p->first + p->count)
      return cc_fail(CLIPCL_ERR_ARG, "index: row %zu is neither in memory nor in a mapped part", r);
    size_t take = p->first + p->count - r;
    if (take > first + count - r) take = first + count - r;
    cc_f16_row_to_f32(m->data + (r - p->first) * D * 2, out + (r - first) * D, take * D);
    r += take;
  }
  return CLIPCL_OK;
}

clipcl_status clipcl_index_row_embedding(const clipcl_index *ix, size_t i, int text, float *out) {
  if (!ix || !out || i >= ix->n) return cc_fail(CLIPCL_ERR_ARG, "index: row %zu out of range", i);
  return cc_index_rows_f32(ix, text, i, 1, out);
}

clipcl_status clipcl_index_load_embeddings(clipcl_index *ix) {
  if (!ix) return cc_fail(CLIPCL_ERR_ARG, "index: none");
  if (ix->emb0 == 0) return CLIPCL_OK;
  size_t D = (size_t)ix->dim, held = ix->n - ix->emb0;
  if (ix->n > SIZE_MAX / 4 / D) return cc_fail(CLIPCL_ERR_NOMEM, "index: too many rows");
  float *e = malloc((ix->n ? ix->n : 1) * D * 4), *t = NULL;
  if (e && ix->has_text == 1) t = malloc((ix->n ? ix->n : 1) * D * 4);
  if (!e || (ix->has_text == 1 && !t)) {
    free(e), free(t);
    return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory for %zu embeddings", ix->n);
  }
  clipcl_status st = cc_index_rows_f32(ix, 0, 0, ix->emb0, e);
  if (!st && t) st = cc_index_rows_f32(ix, 1, 0, ix->emb0, t);
  if (st) {
    free(e), free(t);
    return st;
  }
  if (held) {
    memcpy(e + ix->emb0 * D, ix->emb, held * D * 4);
    if (t) memcpy(t + ix->emb0 * D, ix->temb, held * D * 4);
  }
  free(ix->emb), free(ix->temb);
  ix->emb = e, ix->temb = t;
  ix->ecap = ix->n ? ix->n : 1;
  ix->emb0 = 0;
  return CLIPCL_OK;
}

/* ---- append and remove ------------------------------------------------------------ */
clipcl_status clipcl_index_append(clipcl_index *ix, const char *model_id, const clipcl_index_rows *rows,
                                  size_t *added) {
  if (added) *added = 0;
  CC_TRY(clipcl_index_check_model(ix, model_id));
  if (!rows) return cc_fail(CLIPCL_ERR_ARG, "index add: no rows");
  size_t n = rows->n, D = (size_t)ix->dim;
  if (n == 0) return CLIPCL_OK;
  if (!rows->paths || !rows->emb || rows->ncols < 0 || (rows->ncols && (!rows->names || !rows->values)))
    return cc_fail(CLIPCL_ERR_ARG, "index add: NULL paths, embeddings or metadata");
  if (n > SIZE_MAX / sizeof(float) / D) return cc_fail(CLIPCL_ERR_ARG, "index add: sizes overflow");
  int text = rows->text_emb != NULL;
  if (ix->has_text != -1 && text != ix->has_text)
    return cc_fail(CLIPCL_ERR_ARG, "index add: this index %s caption embeddings; the rows %s",
                   ix->has_text ? "keeps" : "has no", text ? "bring some" : "have none");
  /* check everything first so a bad row adds nothing */
  for (int c = 0; c < rows->ncols; c++) {
    CC_TRY(check_column_name(rows->names[c]));
    if (!strcmp(rows->names[c], "image_path"))
      return cc_fail(CLIPCL_ERR_ARG, "index add: \"image_path\" is the path column, not an extra one");
    for (int d = 0; d < c; d++)
      if (!strcmp(rows->names[c], rows->names[d]))
        return cc_fail(CLIPCL_ERR_ARG, "index add: column \"%s\" given twice", rows->names[c]);
  }
  for (size_t i = 0; i < n; i++) {
    if (!rows->paths[i] || !*rows->paths[i]) return cc_fail(CLIPCL_ERR_ARG, "index add: row %zu has an empty path", i);
    if (inv_norm(rows->emb + i * D, ix->dim) == 0)
      return cc_fail(CLIPCL_ERR_NUMERIC, "index add: %s: embedding is zero or not finite", rows->paths[i]);
    if (text && inv_norm(rows->text_emb + i * D, ix->dim) == 0)
      return cc_fail(CLIPCL_ERR_NUMERIC, "index add: %s: caption embedding is zero or not finite", rows->paths[i]);
  }
  int colmap[1024];
  if (rows->ncols > 1024) return cc_fail(CLIPCL_ERR_ARG, "index add: more than 1024 columns");
  for (int c = 0; c < rows->ncols; c++)
    if ((colmap[c] = column(ix, rows->names[c])) < 0) return CLIPCL_ERR_NOMEM;
  int had_text = ix->has_text;
  if (ix->has_text == -1) {
    ix->has_text = text;
    if (text && ix->ecap) {
      float *t = realloc(ix->temb, ix->ecap * D * sizeof *t);
      if (!t) {
        ix->has_text = had_text;
        return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
      }
      ix->temb = t;
    }
  }
  size_t before = ix->n, alen = ix->alen;
  clipcl_status st = CLIPCL_OK;
  for (size_t i = 0; i < n && !st; i++) {
    if (clipcl_index_contains(ix, rows->paths[i])) continue;
    if ((st = reserve(ix, ix->n + 1))) break;
    uint64_t *row = ix->cells + ix->n * (size_t)ix->ncols;
    memset(row, 0, (size_t)ix->ncols * sizeof *row);
    st = arena_put(ix, rows->paths[i], &row[0]);
    for (int c = 0; c < rows->ncols && !st; c++) {
      const char *v = rows->values[i * (size_t)rows->ncols + (size_t)c];
      if (v && *v) st = arena_put(ix, v, &row[colmap[c]]);
    }
    if (st) break;
    store_row(ix->emb + (ix->n - ix->emb0) * D, rows->emb + i * D, ix->dim);
    if (text) store_row(ix->temb + (ix->n - ix->emb0) * D, rows->text_emb + i * D, ix->dim);
    *find_slot(ix, cell(ix, ix->n, 0)) = ix->n + 1;
    ix->n++;
  }
  if (st) {
    /* back to the index as it was before the call */
    ix->n = before;
    ix->alen = alen;
    ix->has_text = had_text == -1 && before == 0 ? -1 : ix->has_text;
    rehash(ix, 0, 1);
    return st;
  }
  if (added) *added = ix->n - before;
  return CLIPCL_OK;
}

clipcl_status clipcl_index_add(clipcl_index *ix, const char *model_id, const char *const *paths,
                               const float *emb, size_t n, size_t *added) {
  clipcl_index_rows r = {n, paths, 0, NULL, NULL, emb, NULL};
  if (ix && ix->has_text == 1 && n) return cc_fail(CLIPCL_ERR_ARG, "index add: this index keeps caption embeddings");
  return clipcl_index_append(ix, model_id, &r, added);
}

clipcl_status clipcl_index_remove(clipcl_index *ix, const uint8_t *drop, size_t *removed) {
  if (removed) *removed = 0;
  if (!ix || (!drop && ix->n)) return cc_fail(CLIPCL_ERR_ARG, "index remove: bad arguments");
  size_t k = 0;
  for (size_t r = 0; r < ix->n; r++) k += drop[r] != 0;
  if (k == 0) return CLIPCL_OK;
  if (ix->emb0 != 0)
    return cc_fail(CLIPCL_ERR_ARG, "index remove: needs every embedding in memory (clipcl_index_load_embeddings)");
  size_t D = (size_t)ix->dim, w = 0, nc = (size_t)ix->ncols;
  for (size_t r = 0; r < ix->n; r++) {
    if (drop[r]) continue;
    if (w != r) {
      memmove(ix->cells + w * nc, ix->cells + r * nc, nc * sizeof *ix->cells);
      memmove(ix->emb + w * D, ix->emb + r * D, D * 4);
      if (ix->has_text == 1) memmove(ix->temb + w * D, ix->temb + r * D, D * 4);
    }
    w++;
  }
  ix->n = w;
  CC_TRY(rehash(ix, 0, 1));
  ix->rewrite = 1;
  for (int t = 0; t < 2; t++) {
    ann_clear(&ix->ann[t]);
    ix->ann[t].dirty = 1;
  }
  if (removed) *removed = k;
  return CLIPCL_OK;
}

clipcl_status cc_index_rekey(clipcl_index *ix, const char *prefix) {
  size_t pl = strlen(prefix);
  char *buf = NULL;
  size_t cap = 0;
  for (size_t r = 0; r < ix->n; r++) {
    const char *k = cell(ix, r, 0);
    if (k[0] == '/') continue;
    size_t kl = strlen(k);
    if (pl + kl + 2 > cap) {
      cap = (pl + kl + 2) * 2;
      char *b = realloc(buf, cap);
      if (!b) {
        free(buf);
        return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
      }
      buf = b;
    }
    memcpy(buf, prefix, pl);
    buf[pl] = '/';
    memcpy(buf + pl + 1, k, kl + 1);
    clipcl_status st = arena_put(ix, buf, &ix->cells[r * (size_t)ix->ncols]);
    if (st) {
      free(buf);
      return st;
    }
  }
  free(buf);
  ix->rewrite = 1;
  return rehash(ix, 0, 1);
}

/* ---- reading ------------------------------------------------------------------------ */
typedef struct {
  json_t *root;
  const char *model;
  json_int_t dim, count, generation;
  int text;
  const char *root_rel, *root_abs;
  json_t *parts, *ann;
} index_meta;

static clipcl_status read_meta(const char *dir, index_meta *m, int *found) {
  memset(m, 0, sizeof *m);
  *found = 0;
  char *pj = fmt_path(dir, "index.json");
  if (!pj) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  FILE *f = fopen(pj, "rb");
  if (!f) {
    int e = errno;
    clipcl_status st = e == ENOENT ? CLIPCL_OK : cc_fail(CLIPCL_ERR_IO, "%s: cannot open: %s", pj, strerror(e));
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
  } else if (json_unpack(root, "{s:s, s:i}", "format", &fmt, "version", &version) != 0 || strcmp(fmt, INDEX_FORMAT)) {
    st = cc_fail(CLIPCL_ERR_FORMAT, "%s: not a clipcl index description", pj);
  } else if (version != INDEX_VERSION) {
    st = cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: index version %d (this build reads %d%s)", pj, version, INDEX_VERSION,
                 version == 1 ? "; rebuild it with clipcl index" : "");
  } else if (json_unpack(root, "{s:s, s:I, s:I, s:I, s:b, s:o, s?o, s?s, s?s}", "model", &m->model, "dim", &m->dim,
                         "count", &m->count, "generation", &m->generation, "text_embeddings", &m->text, "parts",
                         &m->parts, "ann", &m->ann, "root", &m->root_rel, "root_absolute", &m->root_abs) != 0 ||
             !json_is_array(m->parts) || (m->ann && !json_is_object(m->ann))) {
    st = cc_fail(CLIPCL_ERR_FORMAT, "%s: missing or mistyped keys (model, dim, count, generation, parts, ...)", pj);
  } else if (m->dim < 1 || m->dim > 65536 || m->count < 0 || m->generation < 1 || !*m->model) {
    st = cc_fail(CLIPCL_ERR_FORMAT, "%s: bad dim, count, generation or model", pj);
  }
  free(pj);
  if (st) {
    json_decref(root);
    memset(m, 0, sizeof *m);
    return st;
  }
  m->root = root;
  *found = 1;
  return CLIPCL_OK;
}

int clipcl_index_exists(const char *dir) {
  if (!dir) return 0;
  char *pj = fmt_path(dir, "index.json");
  struct stat sb;
  int ok = pj && stat(pj, &sb) == 0 && S_ISREG(sb.st_mode);
  free(pj);
  return ok;
}

/* Maps part file `path` and checks its shape. */
static clipcl_status map_part(const char *path, size_t rows, int dim, mapped *m) {
  cc_npy_info in;
  CC_TRY(cc_npy_probe(path, &in));
  if (in.dtype != CC_NPY_F16 || in.ndim != 2 || in.shape[0] != rows || in.shape[1] != (size_t)dim)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s: expected float16 %zu x %d as index.json says", path, rows, dim);
  if (rows == 0) return CLIPCL_OK;
  int fd = open(path, O_RDONLY);
  if (fd < 0) return cc_fail(CLIPCL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  size_t len = (size_t)in.data_offset + rows * (size_t)dim * 2;
  void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
  int e = errno;
  close(fd);
  if (p == MAP_FAILED) return cc_fail(CLIPCL_ERR_IO, "%s: cannot map: %s", path, strerror(e));
  m->map = p;
  m->map_len = len;
  m->data = (const unsigned char *)p + in.data_offset;
  return CLIPCL_OK;
}

/* The unit-length check of every row of a mapped part. */
static clipcl_status check_part_norms(const char *path, const mapped *m, size_t rows, int dim) {
  float *row = malloc((size_t)dim * sizeof *row);
  if (!row) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  clipcl_status st = CLIPCL_OK;
  for (size_t r = 0; r < rows && !st; r++) {
    cc_f16_row_to_f32(m->data + r * (size_t)dim * 2, row, (size_t)dim);
    double ss = 0;
    for (int d = 0; d < dim; d++) ss += (double)row[d] * row[d];
    if (!(fabs(sqrt(ss) - 1) <= CC_INDEX_NORM_TOL))
      st = cc_fail(CLIPCL_ERR_FORMAT, "%s: row %zu is not normalised (norm %g)", path, r, sqrt(ss));
  }
  free(row);
  return st;
}

typedef struct {
  clipcl_index *ix;
  const char *file;
  size_t want, got, first;
  int map[1024]; /* file column -> index column */
  int nfields;
} meta_reader;

static clipcl_status on_meta_record(void *ctx, uint64_t rec, uint64_t line, int nfields, char *const *fields) {
  meta_reader *mr = ctx;
  clipcl_index *ix = mr->ix;
  if (nfields < 0)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s:%llu: a field is too long or holds a NUL byte", mr->file,
                   (unsigned long long)line);
  if (rec == 0) {
    if (nfields < 1 || nfields > 1024 || strcmp(fields[0], "image_path"))
      return cc_fail(CLIPCL_ERR_FORMAT, "%s:%llu: the header must start with image_path (and have at most 1024 columns)",
                     mr->file, (unsigned long long)line);
    for (int c = 0; c < nfields; c++) {
      CC_TRY(check_column_name(fields[c]));
      for (int d = 0; d < c; d++)
        if (!strcmp(fields[c], fields[d]))
          return cc_fail(CLIPCL_ERR_FORMAT, "%s:%llu: column \"%s\" twice", mr->file, (unsigned long long)line,
                         fields[c]);
      if ((mr->map[c] = column(ix, fields[c])) < 0) return CLIPCL_ERR_NOMEM;
    }
    mr->nfields = nfields;
    return CLIPCL_OK;
  }
  if (nfields != mr->nfields)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s:%llu: %d fields, the header has %d", mr->file, (unsigned long long)line,
                   nfields, mr->nfields);
  if (mr->got == mr->want)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s:%llu: more than the %zu rows index.json lists", mr->file,
                   (unsigned long long)line, mr->want);
  if (!*fields[0]) return cc_fail(CLIPCL_ERR_FORMAT, "%s:%llu: empty image_path", mr->file, (unsigned long long)line);
  size_t *slot = find_slot(ix, fields[0]);
  if (*slot)
    return cc_fail(CLIPCL_ERR_FORMAT, "%s:%llu: image_path \"%s\" repeats row %zu", mr->file, (unsigned long long)line,
                   fields[0], *slot - 1);
  CC_TRY(reserve(ix, ix->n + 1));
  slot = find_slot(ix, fields[0]); /* reserve may rehash */
  uint64_t *row = ix->cells + ix->n * (size_t)ix->ncols;
  memset(row, 0, (size_t)ix->ncols * sizeof *row);
  for (int c = 0; c < nfields; c++)
    if (*fields[c]) CC_TRY(arena_put(ix, fields[c], &row[mr->map[c]]));
  *slot = ++ix->n;
  mr->got++;
  return CLIPCL_OK;
}

/* "../photos" against the index folder, then the absolute path. */
static void find_root(clipcl_index *ix, const char *dir, const index_meta *m) {
  char abs[PATH_MAX];
  struct stat sb;
  if (m->root_rel) {
    char *p = m->root_rel[0] == '/' ? dup_str(m->root_rel) : fmt_path(dir, "%s", m->root_rel);
    if (p && realpath(p, abs) && stat(abs, &sb) == 0 && S_ISDIR(sb.st_mode)) ix->root = dup_str(abs);
    free(p);
  }
  if (!ix->root && m->root_abs && realpath(m->root_abs, abs) && stat(abs, &sb) == 0 && S_ISDIR(sb.st_mode))
    ix->root = dup_str(abs);
}

clipcl_status clipcl_index_open(const char *dir, unsigned flags, clipcl_index **out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "index: no output");
  *out = NULL;
  if (!dir || !*dir) return cc_fail(CLIPCL_ERR_ARG, "index: no directory");
  index_meta m;
  int found;
  CC_TRY(read_meta(dir, &m, &found));
  if (!found) return cc_fail(CLIPCL_ERR_IO, "%s: no index here (index.json missing)", dir);
  clipcl_index *ix = NULL;
  char absdir[PATH_MAX];
  clipcl_status st = realpath(dir, absdir) ? CLIPCL_OK : cc_fail(CLIPCL_ERR_IO, "%s: %s", dir, strerror(errno));
  if (!st) st = clipcl_index_create(m.model, (int)m.dim, &ix);
  if (!st && !(ix->dir = dup_str(absdir))) st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  if (!st) {
    ix->has_text = m.count ? m.text : -1; /* an empty index decides on its first rows */
    ix->generation = (uint64_t)m.generation;
    find_root(ix, absdir, &m);
  }
  size_t np = json_array_size(m.parts), total = 0;
  if (!st && np && !(ix->parts = calloc(np, sizeof *ix->parts))) st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  for (size_t p = 0; p < np && !st; p++) {
    json_int_t id, cnt;
    if (json_unpack(json_array_get(m.parts, p), "{s:I, s:I}", "id", &id, "count", &cnt) || id < 0 || id > 9999 ||
        cnt < 0 || cnt > (json_int_t)1 << 40 || (p && id <= ix->parts[p - 1].id)) {
      st = cc_fail(CLIPCL_ERR_FORMAT, "%s/index.json: part %zu: bad id or count (ids rise, 0-9999)", dir, p);
      break;
    }
    part *pt = &ix->parts[ix->nparts++];
    pt->id = (int)id;
    pt->count = (size_t)cnt;
    pt->first = total;
    total += (size_t)cnt;
  }
  if (!st && total != (size_t)m.count)
    st = cc_fail(CLIPCL_ERR_FORMAT, "%s/index.json: the parts hold %zu rows, count says %lld", dir, total,
                 (long long)m.count);
  char *file = NULL;
  for (size_t p = 0; p < ix->nparts && !st; p++) {
    part *pt = &ix->parts[p];
    free(file);
    if (!(file = fmt_path(absdir, "metadata/metadata_%0*d.csv", PART_DIGITS, pt->id))) {
      st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
      break;
    }
    meta_reader mr = {.ix = ix, .file = file, .want = pt->count};
    st = cc_csv_each(file, ',', on_meta_record, &mr);
    if (!st && mr.nfields == 0) st = cc_fail(CLIPCL_ERR_FORMAT, "%s: empty (no header)", file);
    if (!st && mr.got != mr.want)
      st = cc_fail(CLIPCL_ERR_FORMAT, "%s: %zu rows, index.json lists %zu", file, mr.got, mr.want);
    for (int t = 0; t < 1 + (ix->has_text == 1) && !st; t++) {
      free(file);
      file = t ? fmt_path(absdir, "text_emb/text_emb_%0*d.npy", PART_DIGITS, pt->id)
               : fmt_path(absdir, "img_emb/img_emb_%0*d.npy", PART_DIGITS, pt->id);
      if (!file) st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
      if (!st) st = map_part(file, pt->count, ix->dim, t ? &pt->txt : &pt->img);
      if (!st && (flags & CLIPCL_INDEX_EMBEDDINGS))
        st = check_part_norms(file, t ? &pt->txt : &pt->img, pt->count, ix->dim);
    }
  }
  free(file);
  if (!st) {
    ix->saved = ix->n;
    ix->emb0 = ix->n;
    if (flags & CLIPCL_INDEX_EMBEDDINGS) st = clipcl_index_load_embeddings(ix);
  }
  /* FAISS indexes: remembered always (a later save keeps them current), read on request */
  for (int t = 0; t < 2 && !st && m.ann; t++) {
    json_t *a = json_object_get(m.ann, t ? "text" : "image");
    if (!a) continue;
    const char *f = NULL, *fac = NULL;
    json_int_t rows = 0;
    if (json_unpack(a, "{s:s, s:s, s:I}", "file", &f, "factory", &fac, "count", &rows) || strchr(f, '/') ||
        rows != (json_int_t)ix->n) {
      st = cc_fail(CLIPCL_ERR_FORMAT, "%s/index.json: ann.%s: needs file, factory and count = %zu", dir,
                   t ? "text" : "image", ix->n);
      break;
    }
    ann_slot *s = &ix->ann[t];
    if (!(s->file = dup_str(f)) || !(s->factory = dup_str(fac))) st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
    s->rows = (size_t)rows;
    if (!st && (flags & CLIPCL_INDEX_ANN)) {
      char *p = fmt_path(absdir, "%s", f);
      char err[256] = "";
      if (!p) {
        st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
      } else if (!cc_faiss_available()) {
        st = cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: this clipcl was built without FAISS", p);
      } else if (cc_faiss_read(p, &s->ann, err, sizeof err)) {
        st = cc_fail(CLIPCL_ERR_FORMAT, "%s: %s", p, err);
      } else if (cc_faiss_ntotal(s->ann) != (int64_t)rows || cc_faiss_dim(s->ann) != ix->dim) {
        st = cc_fail(CLIPCL_ERR_FORMAT, "%s: holds %lld rows of %d dims, the index %zu of %d", p,
                     (long long)cc_faiss_ntotal(s->ann), cc_faiss_dim(s->ann), ix->n, ix->dim);
      }
      free(p);
    }
  }
  json_decref(m.root);
  if (st) {
    clipcl_index_free(ix);
    return st;
  }
  *out = ix;
  return CLIPCL_OK;
}

clipcl_status clipcl_index_load(const char *dir, clipcl_index **out) {
  return clipcl_index_open(dir, CLIPCL_INDEX_EMBEDDINGS, out);
}

/* ---- saving ------------------------------------------------------------------------- */
static clipcl_status make_dir(const char *p) {
  if (mkdir(p, 0777) != 0 && errno != EEXIST) return cc_fail(CLIPCL_ERR_IO, "%s: cannot create: %s", p, strerror(errno));
  struct stat sb;
  if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode)) return cc_fail(CLIPCL_ERR_IO, "%s: not a directory", p);
  return CLIPCL_OK;
}

/* Writes rows [first, first + count) as part `id` of dir: embeddings first,
 * metadata last (all three are whole or absent; none is referenced yet). */
static clipcl_status write_part(const clipcl_index *ix, const char *dir, int id, size_t first, size_t count) {
  size_t D = (size_t)ix->dim, block = 4096;
  float *buf = malloc(block * D * sizeof *buf);
  if (!buf) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  clipcl_status st = CLIPCL_OK;
  for (int t = 0; t < 1 + (ix->has_text == 1) && !st; t++) {
    char *p = t ? fmt_path(dir, "text_emb/text_emb_%0*d.npy", PART_DIGITS, id)
                : fmt_path(dir, "img_emb/img_emb_%0*d.npy", PART_DIGITS, id);
    cc_npy_writer *w = NULL;
    st = p ? cc_npy_writer_open_as(p, CC_NPY_F16, 2, (size_t[]){count, D}, &w)
           : cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
    for (size_t r = 0; r < count && !st; r += block) {
      size_t m = count - r < block ? count - r : block;
      st = cc_index_rows_f32(ix, t, first + r, m, buf);
      if (!st) st = cc_npy_writer_put(w, buf, m * D);
    }
    if (w) {
      if (st) cc_npy_writer_abort(w);
      else st = cc_npy_writer_commit(w);
    }
    free(p);
  }
  free(buf);
  if (st) return st;
  /* the metadata: every column, empty cells as empty fields */
  cc_buf b = {0};
  for (int c = 0; c < ix->ncols; c++) {
    if (c) cc_buf_add(&b, ",", 1);
    cc_buf_csv(&b, ix->cols[c]);
  }
  cc_buf_add(&b, "\n", 1);
  for (size_t r = first; r < first + count; r++) {
    for (int c = 0; c < ix->ncols; c++) {
      if (c) cc_buf_add(&b, ",", 1);
      const char *v = cell(ix, r, c);
      if (v) cc_buf_csv(&b, v);
    }
    cc_buf_add(&b, "\n", 1);
  }
  char *p = fmt_path(dir, "metadata/metadata_%0*d.csv", PART_DIGITS, id);
  st = p ? cc_buf_save(&b, p) : cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  free(p);
  cc_buf_free(&b);
  return st;
}

static void unlink_part(const char *dir, int id) {
  const char *fmts[3] = {"img_emb/img_emb_%0*d.npy", "text_emb/text_emb_%0*d.npy", "metadata/metadata_%0*d.csv"};
  for (int k = 0; k < 3; k++) {
    char *p = fmt_path(dir, fmts[k], PART_DIGITS, id);
    if (p) unlink(p);
    free(p);
  }
}

/* Writes a FAISS index atomically (temporary name, fsync, rename). */
static clipcl_status write_ann(const cc_faiss *a, const char *path) {
  size_t n = strlen(path);
  char *tmp = malloc(n + 5);
  if (!tmp) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  memcpy(tmp, path, n);
  memcpy(tmp + n, ".tmp", 5);
  char err[256] = "";
  clipcl_status st = CLIPCL_OK;
  if (cc_faiss_write(a, tmp, err, sizeof err)) {
    st = cc_fail(CLIPCL_ERR_IO, "%s: %s", tmp, err);
  } else {
    int fd = open(tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) st = cc_fail(CLIPCL_ERR_IO, "%s: cannot sync: %s", tmp, strerror(errno));
    if (fd >= 0) close(fd);
    if (!st && rename(tmp, path) != 0) st = cc_fail(CLIPCL_ERR_IO, "%s: cannot rename: %s", path, strerror(errno));
  }
  if (st) unlink(tmp);
  free(tmp);
  return st;
}

/* Brings a FAISS index up to date with rows added since it was built:
 * read it when only its file is known, add the missing rows. */
static clipcl_status ann_catch_up(clipcl_index *ix, int t, const char *olddir) {
  ann_slot *s = &ix->ann[t];
  if (!s->factory || s->rows == ix->n) return CLIPCL_OK;
  char err[256] = "";
  if (!s->ann) {
    if (!cc_faiss_available()) {
      /* cannot extend it here: drop it rather than leave it stale */
      ann_clear(s);
      s->dirty = 1;
      return CLIPCL_OK;
    }
    char *p = olddir && s->file ? fmt_path(olddir, "%s", s->file) : NULL;
    if (!p) return cc_fail(CLIPCL_ERR_ARG, "index: FAISS index of %zu rows without its file", s->rows);
    int bad = cc_faiss_read(p, &s->ann, err, sizeof err);
    clipcl_status st = bad ? cc_fail(CLIPCL_ERR_FORMAT, "%s: %s", p, err) : CLIPCL_OK;
    free(p);
    CC_TRY(st);
  }
  size_t D = (size_t)ix->dim, block = 16384;
  float *buf = malloc(block * D * sizeof *buf);
  if (!buf) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  clipcl_status st = CLIPCL_OK;
  for (size_t r = s->rows; r < ix->n && !st; r += block) {
    size_t m = ix->n - r < block ? ix->n - r : block;
    st = cc_index_rows_f32(ix, t, r, m, buf);
    if (!st && cc_faiss_add(s->ann, buf, (int64_t)m, err, sizeof err))
      st = cc_fail(CLIPCL_ERR_NUMERIC, "FAISS add: %s", err);
  }
  free(buf);
  if (!st) {
    s->rows = ix->n;
    s->dirty = 1;
  }
  return st;
}

clipcl_status clipcl_index_save(clipcl_index *ix, const char *dir) {
  if (!ix || !dir || !*dir) return cc_fail(CLIPCL_ERR_ARG, "index save: no index or directory");
  CC_TRY(make_dir(dir));
  char absdir[PATH_MAX];
  if (!realpath(dir, absdir)) return cc_fail(CLIPCL_ERR_IO, "%s: %s", dir, strerror(errno));
  index_meta old;
  int found;
  /* a foreign or corrupt index.json is not overwritten */
  CC_TRY(read_meta(absdir, &old, &found));
  int same = ix->dir && !strcmp(ix->dir, absdir);
  int full = ix->rewrite || !same;
  /* new part numbers follow every number in use, here and in the old index.json */
  int next = ix->nparts ? ix->parts[ix->nparts - 1].id + 1 : 0;
  for (size_t p = 0; found && p < json_array_size(old.parts); p++) {
    json_int_t id = -1;
    json_unpack(json_array_get(old.parts, p), "{s:I}", "id", &id);
    if (id >= next) next = (int)id + 1;
  }
  uint64_t gen = ix->generation;
  if (found && (uint64_t)old.generation > gen) gen = (uint64_t)old.generation;
  gen++;
  char *sub[3] = {fmt_path(absdir, "img_emb"), fmt_path(absdir, "metadata"),
                  ix->has_text == 1 ? fmt_path(absdir, "text_emb") : NULL};
  clipcl_status st = sub[0] && sub[1] && (ix->has_text != 1 || sub[2]) ? CLIPCL_OK
                                                                     : cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  for (int k = 0; k < 3 && !st; k++)
    if (sub[k]) st = make_dir(sub[k]);
  for (int k = 0; k < 3; k++) free(sub[k]);
  /* the new part list */
  size_t keep = full ? 0 : ix->nparts, first = full ? 0 : ix->saved, pr = ix->part_rows ? ix->part_rows : CC_INDEX_PART_ROWS;
  size_t nnew = ix->n > first ? (ix->n - first + pr - 1) / pr : 0;
  part *np = calloc(keep + nnew + 1, sizeof *np);
  if (!st && !np) st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  size_t written = 0;
  for (size_t p = 0; p < keep && !st; p++) np[p] = (part){ix->parts[p].id, ix->parts[p].count, ix->parts[p].first, {0}, {0}};
  for (size_t k = 0; k < nnew && !st; k++) {
    size_t a = first + k * pr, cnt = ix->n - a < pr ? ix->n - a : pr;
    if (next + (int)k > 9999) {
      st = cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: part numbers beyond 9999; rebuild the index", dir);
      break;
    }
    np[keep + k] = (part){next + (int)k, cnt, a, {0}, {0}};
    st = write_part(ix, absdir, next + (int)k, a, cnt);
    if (!st) written++;
  }
  /* FAISS: rows added since they were built; a full rewrite to a new place
   * writes them again under the new generation */
  char *ann_new[2] = {NULL, NULL};
  for (int t = 0; t < 2 && !st; t++) {
    ann_slot *s = &ix->ann[t];
    if (!s->factory) continue;
    st = ann_catch_up(ix, t, ix->dir);
    if (st || !s->factory) continue;
    if (s->dirty || !same || !s->file) {
      if (!s->ann && s->file && ix->dir) {
        char *p = fmt_path(ix->dir, "%s", s->file);
        char err[256] = "";
        if (!p || cc_faiss_read(p, &s->ann, err, sizeof err)) st = cc_fail(CLIPCL_ERR_FORMAT, "%s: %s", p ? p : "", err);
        free(p);
        if (st) break;
      }
      char name[64];
      snprintf(name, sizeof name, "%s_%llu.index", t ? "text" : "image", (unsigned long long)gen);
      char *p = fmt_path(absdir, "%s", name);
      st = p ? write_ann(s->ann, p) : cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
      free(p);
      if (!st && !(ann_new[t] = dup_str(name))) st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
    }
  }
  /* index.json, last */
  if (!st) {
    json_t *parts = json_array(), *ann = json_object(), *cols = json_array();
    for (size_t p = 0; p < keep + nnew && parts; p++)
      json_array_append_new(parts, json_pack("{s:i, s:I}", "id", np[p].id, "count", (json_int_t)np[p].count));
    for (int c = 0; c < ix->ncols && cols; c++) json_array_append_new(cols, json_string(ix->cols[c]));
    for (int t = 0; t < 2 && ann; t++) {
      ann_slot *s = &ix->ann[t];
      if (!s->factory) continue;
      json_object_set_new(ann, t ? "text" : "image",
                          json_pack("{s:s, s:s, s:I}", "file", ann_new[t] ? ann_new[t] : s->file, "factory",
                                    s->factory, "count", (json_int_t)s->rows));
    }
    char *rel = NULL;
    if (ix->root) rel = cc_path_relative(absdir, ix->root);
    json_t *meta = parts && ann && cols
                       ? json_pack("{s:s, s:i, s:s, s:i, s:I, s:o, s:b, s:o, s:o, s:I}", "format", INDEX_FORMAT,
                                   "version", INDEX_VERSION, "model", ix->model, "dim", ix->dim, "count",
                                   (json_int_t)ix->n, "columns", cols, "text_embeddings", ix->has_text == 1, "parts",
                                   parts, "ann", ann, "generation", (json_int_t)gen)
                       : NULL;
    if (!meta) json_decref(parts), json_decref(ann), json_decref(cols);
    if (meta && ix->root) {
      json_object_set_new(meta, "root", json_string(rel ? rel : ix->root));
      json_object_set_new(meta, "root_absolute", json_string(ix->root));
    }
    free(rel);
    char *text = meta ? json_dumps(meta, JSON_INDENT(2)) : NULL;
    json_decref(meta);
    char *pj = fmt_path(absdir, "index.json");
    st = text && pj ? cc_save_line(pj, text) : cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
    free(text);
    free(pj);
  }
  if (st) {
    /* nothing new is referenced: remove what was written */
    for (size_t k = 0; k < written; k++) unlink_part(absdir, np[keep + k].id);
    for (int t = 0; t < 2; t++) {
      if (!ann_new[t]) continue;
      char *p = fmt_path(absdir, "%s", ann_new[t]);
      if (p) unlink(p);
      free(p);
      free(ann_new[t]);
    }
    free(np);
    json_decref(old.root);
    return st;
  }
  /* the new index is in place: drop what it no longer names */
  for (size_t p = 0; found && p < json_array_size(old.parts); p++) {
    json_int_t id = -1;
    json_unpack(json_array_get(old.parts, p), "{s:I}", "id", &id);
    int kept = 0;
    for (size_t q = 0; q < keep; q++) kept |= np[q].id == id;
    if (!kept && id >= 0) unlink_part(absdir, (int)id);
  }
  for (int t = 0; t < 2 && found && old.ann; t++) {
    const char *f = NULL, *now = ann_new[t] ? ann_new[t] : ix->ann[t].factory ? ix->ann[t].file : NULL;
    json_t *a = json_object_get(old.ann, t ? "text" : "image");
    if (a && !json_unpack(a, "{s:s}", "file", &f) && !strchr(f, '/') && !(now && !strcmp(f, now))) {
      char *p = fmt_path(absdir, "%s", f);
      if (p) unlink(p);
      free(p);
    }
  }
  json_decref(old.root);
  /* the object now describes dir */
  for (int t = 0; t < 2; t++) {
    if (ann_new[t]) {
      free(ix->ann[t].file);
      ix->ann[t].file = ann_new[t];
    }
    ix->ann[t].dirty = 0;
  }
  /* the part list now describes dir; rows held in memory only because they
   * were new go back to being read from the (mapped) files */
  if (full) free_parts(ix);
  for (size_t p = 0; p < keep; p++) np[p].img = ix->parts[p].img, np[p].txt = ix->parts[p].txt;
  free(ix->parts);
  ix->parts = np;
  ix->nparts = keep + nnew;
  ix->saved = ix->n;
  ix->rewrite = 0;
  ix->generation = gen;
  if (!same) {
    free(ix->dir);
    ix->dir = dup_str(absdir);
  }
  if (ix->emb0 != 0) {
    for (size_t p = keep; p < ix->nparts; p++) {
      part *pt = &ix->parts[p];
      for (int t = 0; t < 1 + (ix->has_text == 1); t++) {
        char *f = t ? fmt_path(absdir, "text_emb/text_emb_%0*d.npy", PART_DIGITS, pt->id)
                    : fmt_path(absdir, "img_emb/img_emb_%0*d.npy", PART_DIGITS, pt->id);
        clipcl_status ms = f ? map_part(f, pt->count, ix->dim, t ? &pt->txt : &pt->img)
                             : cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
        free(f);
        if (ms) return cc_fail_ctx(ms, "saved, but re-reading it");
      }
    }
    free(ix->emb), free(ix->temb);
    ix->emb = ix->temb = NULL;
    ix->ecap = 0;
    ix->emb0 = ix->n;
  }
  return CLIPCL_OK;
}

/* ---- exact search --------------------------------------------------------------------- */
clipcl_status clipcl_index_search(const clipcl_index *ix, const char *model_id, const float *query, int k,
                                  int threads, clipcl_search_hit *hits, int *n_hits) {
  if (n_hits) *n_hits = 0;
  CC_TRY(clipcl_index_check_model(ix, model_id));
  if (!query || !hits || !n_hits || k < 1) return cc_fail(CLIPCL_ERR_ARG, "index search: bad arguments (k %d)", k);
  if (ix->n == 0) return CLIPCL_OK;
  if (ix->emb0 != 0)
    return cc_fail(CLIPCL_ERR_ARG, "index search: exact search needs the embeddings in memory (open with CLIPCL_INDEX_EMBEDDINGS)");
  size_t kk = (size_t)k < ix->n ? (size_t)k : ix->n;
  float *q = malloc((size_t)ix->dim * sizeof *q), *sc = malloc(kk * sizeof *sc);
  int32_t *idx = malloc(kk * sizeof *idx);
  clipcl_status st = q && sc && idx ? CLIPCL_OK : cc_fail(CLIPCL_ERR_NOMEM, "index search: out of memory");
  if (!st && ix->n > INT32_MAX) st = cc_fail(CLIPCL_ERR_ARG, "index search: %zu rows are too many for exact search", ix->n);
  if (!st) {
    memcpy(q, query, (size_t)ix->dim * sizeof *q);
    st = clipcl_l2_normalize(q, 1, ix->dim);
    if (st) cc_fail_ctx(st, "index search: query");
  }
  if (!st) st = clipcl_topk(q, 1, ix->emb, ix->n, ix->dim, (int)kk, threads, idx, sc);
  if (!st) {
    for (size_t r = 0; r < kk; r++) hits[r] = (clipcl_search_hit){idx[r], sc[r], cell(ix, (size_t)idx[r], 0)};
    *n_hits = (int)kk;
  }
  free(q), free(sc), free(idx);
  return st;
}

/* ---- for ann.c and the service -------------------------------------------------------- */
struct cc_faiss *cc_index_ann(const clipcl_index *ix, int text) {
  return ix && ix->ann[text != 0].factory && ix->ann[text != 0].rows == ix->n ? ix->ann[text != 0].ann : NULL;
}

const char *clipcl_index_ann_factory(const clipcl_index *ix, int text) {
  return ix ? ix->ann[text != 0].factory : NULL;
}

/* Installs a freshly built FAISS index (NULL factory: none) for ann.c. */
void cc_index_set_ann(clipcl_index *ix, int text, struct cc_faiss *a, char *factory) {
  ann_slot *s = &ix->ann[text != 0];
  cc_faiss_free(s->ann);
  free(s->factory);
  s->ann = a;
  s->factory = factory;
  s->rows = a ? ix->n : 0;
  s->dirty = 1;
}

const char *cc_index_dir(const clipcl_index *ix) { return ix ? ix->dir : NULL; }

char *cc_index_resolve(const clipcl_index *ix, const char *stored, char **member) {
  if (member) *member = NULL;
  if (!ix->root) {
    cc_fail(CLIPCL_ERR_ARG, "the index does not know its collection root");
    return NULL;
  }
  if (!stored || !*stored || stored[0] == '/') {
    cc_fail(CLIPCL_ERR_ARG, "%s: not a path inside the collection", stored ? stored : "(null)");
    return NULL;
  }
  size_t rl = strlen(ix->root), sl = strlen(stored);
  char *joined = malloc(rl + sl + 2);
  if (!joined) {
    cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
    return NULL;
  }
  memcpy(joined, ix->root, rl);
  joined[rl] = '/';
  memcpy(joined + rl + 1, stored, sl + 1);
  /* the longest prefix (at a '/') that exists: the file itself, or a shard */
  char *cut = joined + strlen(joined);
  char abs[PATH_MAX];
  char *result = NULL;
  for (;;) {
    char save = *cut;
    *cut = 0;
    struct stat sb;
    int ok = realpath(joined, abs) && stat(abs, &sb) == 0 && S_ISREG(sb.st_mode);
    *cut = save;
    if (ok) {
      if (!strncmp(abs, ix->root, rl) && abs[rl] == '/') {
        if (*cut && member) *member = dup_str(cut + 1);
        if (!*cut || member) result = dup_str(abs);
      }
      break;
    }
    while (cut > joined + rl + 1 && *--cut != '/') {
    }
    if (cut <= joined + rl + 1) break;
  }
  if (!result) cc_fail(CLIPCL_ERR_IO, "%s: not a readable file inside the collection", stored);
  free(joined);
  return result;
}

/* update.c: clipcl_index_update, a collection into an index: list the
 * items of an image folder, a path list, a CSV/TSV manifest or WebDataset
 * shards with their stored paths (relative to the collection root) and
 * metadata; skip those the index holds; embed the rest in chunks (images,
 * and captions when the index keeps caption embeddings), saving a part every
 * part_rows rows; prune rows whose files are gone; build or extend the FAISS
 * indexes. Not here: the layout and saving (index.c), FAISS (ann.c).
 *
 * The collection root defaults to the source's folder, except that a source
 * inside the index's current root keeps that root (so several sub-folders
 * can go into one index); a collection that moved is found again because
 * its stored paths are relative: pointing the command at its new place
 * embeds nothing and records the new root.
 */
#define _DEFAULT_SOURCE /* realpath, strdup, strndup */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clipcl.h"
#include "data/data.h"
#include "eval/eval.h"
#include "search/search.h"
#include "util/error.h"
#include "util/file.h"

#define LIST_MAX_BYTES ((size_t)1 << 30)

void clipcl_index_update_options_init(clipcl_index_update_options *o) {
  memset(o, 0, sizeof *o);
  o->text_embeddings = -1;
  clipcl_eval_options_init(&o->eval);
}

/* ---- items ------------------------------------------------------------------- */
typedef struct {
  char *key;    /* stored image_path */
  char *file;   /* what to open; NULL for tar members */
  char **vals;  /* ncols values (NULL = empty) */
  char *where;  /* for messages: "manifest.csv:17"; NULL: the file */
} item;

typedef struct {
  item *v;
  size_t n, cap;
  int ncols;
  char *names[64]; /* extra columns, caption first when there are captions */
  int caption_col; /* -1 without captions */
  /* where keys are taken relative to */
  char *root_real;
} items;

static void item_free(item *it, int ncols) {
  free(it->key);
  free(it->file);
  if (it->vals)
    for (int c = 0; c < ncols; c++) free(it->vals[c]);
  free(it->vals);
  free(it->where);
}

static void items_free(items *s) {
  for (size_t i = 0; i < s->n; i++) item_free(&s->v[i], s->ncols);
  free(s->v);
  for (int c = 0; c < s->ncols; c++) free(s->names[c]);
  free(s->root_real);
  memset(s, 0, sizeof *s);
}

/* Takes ownership of it's strings (freed on failure too). */
static clipcl_status items_push(items *s, item *it) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 1024;
    item *v = realloc(s->v, cap * sizeof *v);
    if (!v) {
      item_free(it, s->ncols);
      return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory listing the collection");
    }
    s->v = v;
    s->cap = cap;
  }
  if (!it->key || (!it->file && !it->where)) {
    item_free(it, s->ncols);
    return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory listing the collection");
  }
  s->v[s->n++] = *it;
  return CLIPCL_OK;
}

static int add_column(items *s, const char *name) {
  for (int c = 0; c < s->ncols; c++)
    if (!strcmp(s->names[c], name)) return -1;
  if (s->ncols == 64) return -1;
  if (!(s->names[s->ncols] = strdup(name))) return -1;
  return s->ncols++;
}

/* The stored path of a file given as p (relative to cwd or absolute): the
 * part below the root when it lies inside (lexically, or once symlinks are
 * resolved), else the absolute path. */
static char *key_of(const items *s, const char *p) {
  char cwd[PATH_MAX], real[PATH_MAX];
  char *abs = NULL, *key = NULL;
  if (p[0] == '/') {
    abs = cc_path_normalise(p);
  } else if (getcwd(cwd, sizeof cwd)) {
    size_t a = strlen(cwd), b = strlen(p);
    char *j = malloc(a + b + 2);
    if (j) {
      memcpy(j, cwd, a);
      j[a] = '/';
      memcpy(j + a + 1, p, b + 1);
      abs = cc_path_normalise(j);
      free(j);
    }
  }
  if (!abs) return NULL;
  size_t rl = strlen(s->root_real);
  const char *cand[2] = {abs, realpath(abs, real) ? real : NULL};
  for (int k = 0; k < 2 && !key; k++)
    if (cand[k] && !strncmp(cand[k], s->root_real, rl) && cand[k][rl] == '/' && cand[k][rl + 1])
      key = strdup(cand[k] + rl + 1);
  if (!key) key = strdup(cand[1] ? cand[1] : abs);
  free(abs);
  return key;
}

static int has_image_ext(const char *name) {
  return cc_ends_with_ci(name, ".png") || cc_ends_with_ci(name, ".jpg") || cc_ends_with_ci(name, ".jpeg");
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Image files under dir (sorted, recursively; dot files skipped). rel is
 * the path of dir as stored ("" at the top). */
static clipcl_status walk(items *s, const char *dir, const char *rel, int depth) {
  if (depth > CC_DATA_MAX_DEPTH) return CLIPCL_OK;
  DIR *d = opendir(dir);
  if (!d) return cc_fail(CLIPCL_ERR_IO, "%s: cannot read the directory: %s", dir, strerror(errno));
  char **names = NULL;
  size_t n = 0, cap = 0;
  clipcl_status st = CLIPCL_OK;
  struct dirent *e;
  while ((e = readdir(d)) && !st) {
    if (e->d_name[0] == '.') continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      char **v = realloc(names, cap * sizeof *v);
      if (!v) {
        st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
        break;
      }
      names = v;
    }
    if (!(names[n] = strdup(e->d_name))) st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
    else n++;
  }
  closedir(d);
  if (!st) qsort(names, n, sizeof *names, cmp_str);
  for (size_t i = 0; i < n && !st; i++) {
    char *path = cc_path_join(dir, names[i]), *r = *rel ? cc_path_join(rel, names[i]) : strdup(names[i]);
    struct stat sb;
    if (!path || !r) {
      st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
    } else if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
      st = walk(s, path, r, depth + 1);
    } else if (has_image_ext(names[i])) {
      if (s->n >= CC_DATA_MAX_NAMES * (size_t)10) {
        st = cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: more than %d images", dir, CC_DATA_MAX_NAMES * 10);
      } else {
        item it = {r, path, NULL, NULL};
        r = path = NULL;
        st = items_push(s, &it);
      }
    }
    free(path);
    free(r);
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  return st;
}

static clipcl_status scan_folder(items *s, const char *dir) {
  char real[PATH_MAX];
  if (!realpath(dir, real)) return cc_fail(CLIPCL_ERR_IO, "%s: %s", dir, strerror(errno));
  /* keys below the root: the folder's own place under it first */
  char *prefix = cc_path_relative(s->root_real, real);
  if (!prefix) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  clipcl_status st;
  if (!strcmp(prefix, ".")) {
    st = walk(s, dir, "", 0);
  } else if (!strncmp(prefix, "../", 3) || !strcmp(prefix, "..")) {
    st = walk(s, dir, real, 0); /* outside the root: absolute keys */
  } else {
    st = walk(s, dir, prefix, 0);
  }
  free(prefix);
  return st;
}

/* A text file of image paths, one per line, relative to its folder. */
static clipcl_status scan_list(items *s, const char *list) {
  char *text = NULL;
  size_t len = 0;
  CC_TRY(cc_read_file(list, LIST_MAX_BYTES, &text, &len));
  const char *slash = strrchr(list, '/');
  char *base = slash ? strndup(list, (size_t)(slash - list) + (slash == list)) : strdup(".");
  clipcl_status st = base ? CLIPCL_OK : cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  char *p = text;
  if (len >= 3 && !memcmp(p, "\xef\xbb\xbf", 3)) p += 3;
  while (!st && p < text + len) {
    char *nl = memchr(p, '\n', (size_t)(text + len - p));
    char *end = nl ? nl : text + len;
    if (end > p && end[-1] == '\r') end[-1] = 0;
    *end = 0;
    if (*p) {
      char *file = p[0] == '/' ? strdup(p) : cc_path_join(base, p);
      item it = {file ? key_of(s, file) : NULL, file, NULL, NULL};
      st = items_push(s, &it);
    }
    p = end + 1;
  }
  free(base);
  free(text);
  return st;
}

/* ---- CSV manifests ------------------------------------------------------------- */
typedef struct {
  items *s;
  const char *path, *img_key, *cap_key;
  int cap_key_given;
  char *base;
  int img_col, cap_col, nfields;
  int map[64]; /* field -> item column, -1 dropped */
  clipcl_index_update_stats *stats;
  const clipcl_eval_options *eval;
} csv_ctx;

static void report(const clipcl_eval_options *e, const char *where, const char *why, clipcl_status st) {
  if (!e->on_bad) return;
  clipcl_bad_sample b = {where, why, st, 0, 0};
  e->on_bad(e->user, &b);
}

static clipcl_status on_csv(void *ctx, uint64_t rec, uint64_t line, int nfields, char *const *f) {
  csv_ctx *c = ctx;
  items *s = c->s;
  char where[PATH_MAX + 32];
  snprintf(where, sizeof where, "%s:%llu", c->path, (unsigned long long)line);
  if (rec == 0) {
    if (nfields < 0) return cc_fail(CLIPCL_ERR_FORMAT, "%s: the header has a field too long or a NUL byte", where);
    c->nfields = nfields;
    c->img_col = c->cap_col = -1;
    for (int i = 0; i < nfields; i++) {
      if (c->img_col < 0 && !strcmp(f[i], c->img_key)) c->img_col = i;
      else if (c->cap_col < 0 && !strcmp(f[i], c->cap_key)) c->cap_col = i;
    }
    if (c->img_col < 0) return cc_fail(CLIPCL_ERR_FORMAT, "%s: no column '%s' in the header", c->path, c->img_key);
    if (c->cap_col < 0 && c->cap_key_given)
      return cc_fail(CLIPCL_ERR_FORMAT, "%s: no column '%s' in the header", c->path, c->cap_key);
    s->caption_col = c->cap_col >= 0 ? add_column(s, "caption") : -1;
    for (int i = 0; i < nfields && i < 64; i++) {
      c->map[i] = -1;
      if (i == c->img_col) continue;
      if (i == c->cap_col) {
        c->map[i] = s->caption_col;
        continue;
      }
      /* other columns keep their names; an empty, reserved or repeated one is dropped */
      if (!*f[i] || !strcmp(f[i], "image_path") || !strcmp(f[i], "caption")) continue;
      size_t n = strlen(f[i]);
      if (n > 256 || cc_utf8_check((const unsigned char *)f[i], n) != n) continue;
      c->map[i] = add_column(s, f[i]);
    }
    return CLIPCL_OK;
  }
  const char *why = NULL;
  if (nfields < 0) why = "a field is too long or holds a NUL byte";
  else if (nfields != c->nfields) why = nfields < c->nfields ? "fewer fields than the header" : "more fields than the header";
  else if (!*f[c->img_col]) why = "empty image path";
  else if (!strncmp(f[c->img_col], "http://", 7) || !strncmp(f[c->img_col], "https://", 8))
    why = "a URL: clipcl indexes local files only (download them first)";
  if (why) {
    c->stats->scanned++;
    c->stats->bad++;
    report(c->eval, where, why, CLIPCL_ERR_FORMAT);
    return CLIPCL_OK;
  }
  const char *p = f[c->img_col];
  char *file = p[0] == '/' ? strdup(p) : cc_path_join(c->base, p);
  item it = {file ? key_of(s, file) : NULL, file, calloc(64, sizeof(char *)), strdup(where)};
  if (!it.vals) {
    item_free(&it, 64);
    return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  }
  for (int i = 0; i < nfields && i < 64; i++)
    if (c->map[i] >= 0 && *f[i] && !(it.vals[c->map[i]] = strdup(f[i]))) {
      item_free(&it, 64);
      return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
    }
  return items_push(s, &it);
}

static clipcl_status scan_csv(items *s, const char *path, const clipcl_index_update_options *o,
                              clipcl_index_update_stats *stats) {
  char sep = o->separator && o->separator[0] ? o->separator[0] : cc_ends_with_ci(path, ".tsv") ? '\t' : ',';
  if (o->separator && o->separator[0] && o->separator[1])
    return cc_fail(CLIPCL_ERR_ARG, "%s: separator '%s' is longer than one character", path, o->separator);
  const char *slash = strrchr(path, '/');
  csv_ctx c = {s, path, o->img_key ? o->img_key : "filepath", o->caption_key ? o->caption_key : "title",
               o->caption_key != NULL, slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup("."),
               -1, -1, 0, {0}, stats, &o->eval};
  if (!c.base) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  clipcl_status st = cc_csv_each(path, sep, on_csv, &c);
  if (!st && c.nfields == 0) st = cc_fail(CLIPCL_ERR_FORMAT, "%s: empty manifest (no header row)", path);
  free(c.base);
  return st;
}

/* ---- sources ----------------------------------------------------------------------- */
static int is_tar_spec(const char *spec) {
  return strstr(spec, "::") || strchr(spec, '{') || cc_ends_with_ci(spec, ".tar") || cc_ends_with_ci(spec, ".tgz") ||
         cc_ends_with_ci(spec, ".tar.gz");
}

/* The folder a source's relative paths hang from. */
static char *source_folder(const char *spec, int is_dir) {
  if (is_dir) return strdup(spec);
  const char *end = spec + strlen(spec);
  const char *cut = strstr(spec, "::");
  if (cut) end = cut;
  const char *brace = strchr(spec, '{');
  if (brace && brace < end) end = brace;
  const char *slash = end;
  while (slash > spec && slash[-1] != '/') slash--;
  if (slash == spec) return strdup(".");
  return strndup(spec, (size_t)(slash - spec - 1) + (slash - 1 == spec));
}

/* ---- encoding and appending ------------------------------------------------------- */
typedef struct {
  const clipcl_eval_options *user;
  int64_t offset, total;
} progress_ctx;

static void on_chunk_progress(void *u, const char *stage, int64_t done, int64_t total) {
  progress_ctx *p = u;
  (void)total;
  if (p->user->progress) p->user->progress(p->user->user, stage, p->offset + done, p->total);
}

typedef struct {
  clipcl_index *ix;
  const char *dir, *model_id;
  clipcl_model *m;
  clipcl_tokenizer *tk;
  const clipcl_index_update_options *o;
  clipcl_index_update_stats *stats;
  int text; /* embed captions */
  size_t unsaved, part_rows;
  progress_ctx prog;
  float *emb, *temb;
  uint8_t *ok;
  size_t cap;
} runner;

static clipcl_status ensure(runner *r, size_t n) {
  if (n <= r->cap) return CLIPCL_OK;
  size_t D = (size_t)clipcl_index_dim(r->ix);
  if (n > SIZE_MAX / 4 / D) return cc_fail(CLIPCL_ERR_NOMEM, "index: chunk too large");
  float *e = realloc(r->emb, n * D * 4);
  if (e) r->emb = e;
  float *t = e ? realloc(r->temb, n * D * 4) : NULL;
  if (t) r->temb = t;
  uint8_t *k = t ? realloc(r->ok, n) : NULL;
  if (k) r->ok = k;
  if (!k) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory for %zu embeddings", n);
  r->cap = n;
  return CLIPCL_OK;
}

/* Embeds n items (sources[i] says where each image is) and appends the
 * readable ones; saves a part when part_rows rows wait. */
static clipcl_status embed_chunk(runner *r, const items *s, item *const *its, const clipcl_image_source *src,
                                 size_t n) {
  if (n == 0) return CLIPCL_OK;
  CC_TRY(ensure(r, n));
  size_t D = (size_t)clipcl_index_dim(r->ix), bad = 0;
  clipcl_eval_options eo = r->o->eval;
  eo.progress = r->o->eval.progress ? on_chunk_progress : NULL;
  eo.user = &r->prog;
  eo.on_bad = NULL; /* reported below, with the item's own name */
  CC_TRY(clipcl_encode_image_sources(r->m, src, n, &eo, r->emb, r->ok, &bad));
  r->prog.offset += (int64_t)n;
  /* report the unreadable ones through the caller's callback */
  for (size_t i = 0; i < n; i++)
    if (!r->ok[i]) {
      clipcl_image img;
      const char *name = src[i].path ? src[i].path : src[i].name;
      if ((src[i].path ? clipcl_image_load(src[i].path, &img)
                       : clipcl_image_decode(src[i].data, src[i].len, name, &img)) == CLIPCL_OK)
        clipcl_image_free(&img);
      report(&r->o->eval, its[i]->where ? its[i]->where : name, clipcl_last_error(), CLIPCL_ERR_FORMAT);
    }
  /* captions: invalid UTF-8 makes the item bad; a missing one is "" */
  const char **texts = NULL;
  if (r->text) {
    if (!(texts = malloc(n * sizeof *texts))) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
    size_t nt = 0;
    for (size_t i = 0; i < n; i++) {
      if (!r->ok[i]) continue;
      const char *c = s->caption_col >= 0 && its[i]->vals ? its[i]->vals[s->caption_col] : NULL;
      if (c && !cc_utf8_valid(c, strlen(c))) {
        r->ok[i] = 0;
        report(&r->o->eval, its[i]->where ? its[i]->where : its[i]->key, "caption is not valid UTF-8",
               CLIPCL_ERR_FORMAT);
        continue;
      }
      texts[nt++] = c ? c : "";
    }
    clipcl_eval_options to = r->o->eval;
    to.progress = NULL;
    clipcl_status st = clipcl_encode_texts(r->m, r->tk, texts, nt, &to, r->temb);
    if (st) {
      free(texts);
      return st;
    }
  }
  /* the good rows, in order */
  const char **paths = malloc(n * sizeof *paths), **vals = malloc(n * (size_t)(s->ncols ? s->ncols : 1) * sizeof *vals);
  clipcl_status st = paths && vals ? CLIPCL_OK : cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  size_t g = 0;
  for (size_t i = 0; i < n && !st; i++) {
    if (!r->ok[i]) {
      r->stats->bad++;
      continue;
    }
    paths[g] = its[i]->key;
    for (int c = 0; c < s->ncols; c++) vals[g * (size_t)s->ncols + (size_t)c] = its[i]->vals ? its[i]->vals[c] : NULL;
    if (g != i) memmove(r->emb + g * D, r->emb + i * D, D * 4); /* text rows are packed already */
    g++;
  }
  size_t added = 0;
  if (!st && g) {
    clipcl_index_rows rows = {g, paths, s->ncols, (const char *const *)s->names, vals, r->emb, r->text ? r->temb : NULL};
    st = clipcl_index_append(r->ix, r->model_id, &rows, &added);
  }
  free(paths), free(vals), free(texts);
  if (st) return st;
  r->stats->added += added;
  r->unsaved += added;
  if (r->unsaved >= r->part_rows) {
    CC_TRY(clipcl_index_save(r->ix, r->dir));
    r->unsaved = 0;
  }
  return CLIPCL_OK;
}

/* Files (folders, lists, manifests): the new items in chunks. */
static clipcl_status embed_files(runner *r, const items *s, item **todo, size_t n) {
  size_t chunk = (size_t)(r->o->eval.batch > 0 ? r->o->eval.batch : 64) * 8;
  if (chunk > r->part_rows) chunk = r->part_rows;
  clipcl_image_source *src = malloc(chunk * sizeof *src);
  if (!src) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  clipcl_status st = CLIPCL_OK;
  for (size_t i = 0; i < n && !st; i += chunk) {
    size_t m = n - i < chunk ? n - i : chunk;
    for (size_t j = 0; j < m; j++) src[j] = (clipcl_image_source){todo[i + j]->file, NULL, 0, NULL};
    st = embed_chunk(r, s, todo + i, src, m);
  }
  free(src);
  return st;
}

/* WebDataset shards: samples streamed shard by shard, embedded in chunks. */
static clipcl_status embed_shards(runner *r, items *s, char **shards, char **keys, const uint8_t *done, int nsh) {
  size_t chunk = (size_t)(r->o->eval.batch > 0 ? r->o->eval.batch : 64) * 4;
  if (chunk > r->part_rows) chunk = r->part_rows;
  cc_tar_sample *sm = calloc(chunk, sizeof *sm);
  clipcl_image_source *src = calloc(chunk, sizeof *src);
  item *its = calloc(chunk, sizeof *its);
  item **ptr = calloc(chunk, sizeof *ptr);
  clipcl_status st = sm && src && its && ptr ? CLIPCL_OK : cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  size_t held = 0;
  for (int k = 0; k <= nsh && !st; k++) {
    cc_tar_reader *tr = NULL;
    if (k < nsh && done[k]) continue;
    if (k < nsh && (st = cc_tar_reader_open(shards[k], &tr))) break;
    for (;;) {
      int got = 0;
      if (tr) {
        got = cc_tar_next(tr, &sm[held]);
        if (got < 0) {
          st = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", shards[k]);
          break;
        }
      }
      if (got == 1) {
        cc_tar_sample *x = &sm[held];
        r->stats->scanned++;
        char where[PATH_MAX + 64];
        snprintf(where, sizeof where, "%s: key %s", shards[k], x->key ? x->key : "?");
        if (x->bad) {
          r->stats->bad++;
          report(&r->o->eval, where, x->bad, x->bad_status);
          cc_tar_sample_clear(x);
          continue;
        }
        size_t kl = strlen(keys[k]), ml = strlen(x->key) + strlen(x->image_ext) + 2;
        char *key = malloc(kl + 1 + ml);
        if (key) snprintf(key, kl + 1 + ml, "%s/%s.%s", keys[k], x->key, x->image_ext);
        item it = {key, NULL, calloc((size_t)s->ncols, sizeof(char *)), strdup(where)};
        if (!it.key || !it.vals || !it.where) {
          item_free(&it, s->ncols);
          cc_tar_sample_clear(x);
          st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
          break;
        }
        if (x->caption) it.vals[s->caption_col] = strdup(x->caption);
        if (x->url) it.vals[s->caption_col + 1] = strdup(x->url);
        its[held] = it;
        ptr[held] = &its[held];
        src[held] = (clipcl_image_source){NULL, x->image, x->image_len, its[held].where};
        held++;
      }
      if (held == chunk || (got == 0 && held && k == nsh)) {
        st = embed_chunk(r, s, ptr, src, held);
        for (size_t i = 0; i < held; i++) cc_tar_sample_clear(&sm[i]), item_free(&its[i], s->ncols);
        held = 0;
        if (st) break;
      }
      if (got == 0) break;
    }
    cc_tar_reader_free(tr);
  }
  for (size_t i = 0; i < held; i++) cc_tar_sample_clear(&sm[i]), item_free(&its[i], s->ncols);
  free(sm), free(src), free(its), free(ptr);
  return st;
}

/* ---- prune ------------------------------------------------------------------------ */
/* A stored path still names a file: itself, or a shard holding it. */
static int row_exists(const char *root, const char *stored) {
  char *p = stored[0] == '/' || !root ? strdup(stored) : cc_path_join(root, stored);
  if (!p) return 1; /* out of memory: keep the row */
  size_t floor = stored[0] == '/' || !root ? 1 : strlen(root) + 1;
  char *cut = p + strlen(p);
  int found = 0;
  for (;;) {
    char save = *cut;
    *cut = 0;
    struct stat sb;
    int ok = stat(p, &sb) == 0;
    *cut = save;
    if (ok) {
      found = S_ISREG(sb.st_mode);
      break;
    }
    while (cut > p + floor && *--cut != '/') {
    }
    if (cut <= p + floor) break;
  }
  free(p);
  return found;
}

static clipcl_status prune(clipcl_index *ix, clipcl_index_update_stats *stats) {
  size_t n = clipcl_index_count(ix);
  const char *root = clipcl_index_root(ix);
  uint8_t *drop = calloc(n ? n : 1, 1);
  if (!drop) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const char *p = clipcl_index_path(ix, i);
    if (p[0] != '/' && !root) {
      free(drop);
      return cc_fail(CLIPCL_ERR_ARG, "prune: the index does not know its collection root (give --root)");
    }
    k += drop[i] = !row_exists(root, p);
  }
  clipcl_status st = CLIPCL_OK;
  if (k) {
    st = clipcl_index_load_embeddings(ix);
    if (!st) st = clipcl_index_remove(ix, drop, &stats->pruned);
  }
  free(drop);
  return st;
}

/* ---- the whole update ---------------------------------------------------------------- */
clipcl_status clipcl_index_update(clipcl_index *ix, const char *dir, const char *source, clipcl_model *m,
                                  clipcl_tokenizer *tk, const clipcl_index_update_options *opt,
                                  clipcl_index_update_stats *stats) {
  clipcl_index_update_stats dummy;
  if (!stats) stats = &dummy;
  memset(stats, 0, sizeof *stats);
  if (!ix || !dir || !source || !m) return cc_fail(CLIPCL_ERR_ARG, "index update: bad arguments");
  clipcl_index_update_options o;
  if (opt) o = *opt;
  else clipcl_index_update_options_init(&o);
  char model_id[256];
  CC_TRY(clipcl_model_identity(m, model_id, sizeof model_id));
  CC_TRY(clipcl_index_check_model(ix, model_id));
  if (clipcl_model_config(m)->embed_dim != clipcl_index_dim(ix))
    return cc_fail(CLIPCL_ERR_ARG, "index holds %d-dim embeddings, the model makes %d", clipcl_index_dim(ix),
                   clipcl_model_config(m)->embed_dim);
  if (o.index_type && strcmp(o.index_type, "auto") && strcmp(o.index_type, "exact") && strcmp(o.index_type, "Flat") &&
      !clipcl_faiss_available())
    return cc_fail(CLIPCL_ERR_UNSUPPORTED, "index type %s needs FAISS: this clipcl was built without FAISS",
                   o.index_type);
  struct stat sb;
  if (stat(is_tar_spec(source) ? "." : source, &sb) != 0)
    return cc_fail(CLIPCL_ERR_IO, "%s: %s", source, strerror(errno));
  int is_dir = !is_tar_spec(source) && S_ISDIR(sb.st_mode);
  /* the root: given; else the index's when the source lies inside it; else the source's folder */
  char *folder = source_folder(source, is_dir);
  if (!folder) return cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  char real[PATH_MAX];
  clipcl_status st = CLIPCL_OK;
  const char *old_root = clipcl_index_root(ix);
  char *old = old_root ? strdup(old_root) : NULL;
  if (old_root && !old) st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  if (!st && !realpath(o.root ? o.root : folder, real)) st = cc_fail(CLIPCL_ERR_IO, "%s: %s", o.root ? o.root : folder, strerror(errno));
  if (!st) {
    size_t ol = old ? strlen(old) : 0, rl = strlen(real);
    int inside_old = old && !strncmp(real, old, ol) && (real[ol] == '/' || !real[ol]);
    int above_old = old && rl < ol && !strncmp(old, real, rl) && (old[rl] == '/' || rl == 1);
    if (inside_old && !o.root) {
      /* a sub-folder of the collection: keep its root */
    } else if (above_old && clipcl_index_count(ix)) {
      /* the collection grew upwards: stored paths gain the old root's place */
      char *prefix = cc_path_relative(real, old);
      st = prefix ? cc_index_rekey(ix, prefix) : cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
      free(prefix);
      if (!st) st = clipcl_index_set_root(ix, real);
    } else {
      /* new, moved, or given: paths stay as stored */
      st = clipcl_index_set_root(ix, real);
    }
  }
  int dirty = !old || strcmp(old, clipcl_index_root(ix) ? clipcl_index_root(ix) : "");
  free(old);
  items s = {.caption_col = -1};
  if (!st && !(s.root_real = strdup(clipcl_index_root(ix)))) st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  if (!st && o.prune) {
    st = prune(ix, stats);
    dirty |= stats->pruned > 0;
  }
  char **shards = NULL, **keys = NULL;
  uint8_t *done = NULL;
  int nsh = 0;
  if (!st) {
    if (is_dir) {
      st = scan_folder(&s, source);
    } else if (is_tar_spec(source)) {
      st = cc_brace_expand(source, &shards, &nsh);
      if (!st && !(keys = calloc((size_t)nsh + 1, sizeof *keys))) st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
      if (!st && !(done = calloc((size_t)nsh + 1, 1))) st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
      for (int k = 0; k < nsh && !st; k++)
        if (!(keys[k] = key_of(&s, shards[k]))) st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
      if (!st) {
        s.caption_col = add_column(&s, "caption");
        add_column(&s, "url");
        if (s.ncols != 2) st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
      }
      /* a shard is done when any row of the index comes from it */
      for (size_t i = 0, n = clipcl_index_count(ix); i < n && !st; i++) {
        const char *p = clipcl_index_path(ix, i);
        for (int k = 0; k < nsh; k++) {
          size_t kl = strlen(keys[k]);
          if (!strncmp(p, keys[k], kl) && p[kl] == '/') {
            done[k] = 1;
            stats->scanned++;
            stats->present++;
            break;
          }
        }
      }
    } else if (cc_ends_with_ci(source, ".csv") || cc_ends_with_ci(source, ".tsv")) {
      st = scan_csv(&s, source, &o, stats);
    } else {
      st = scan_list(&s, source);
    }
  }
  /* what is new (the first of repeated keys) */
  item **todo = NULL;
  size_t ntodo = 0;
  if (!st && s.n && !(todo = malloc(s.n * sizeof *todo))) st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
  if (!st && s.n) {
    size_t hcap = 64;
    while (hcap < 2 * s.n) hcap *= 2;
    size_t *seen = calloc(hcap, sizeof *seen);
    if (!seen) st = cc_fail(CLIPCL_ERR_NOMEM, "index: out of memory");
    for (size_t i = 0; i < s.n && !st; i++) {
      stats->scanned++;
      if (clipcl_index_contains(ix, s.v[i].key)) {
        stats->present++;
        continue;
      }
      size_t h = (size_t)cc_str_hash(s.v[i].key) & (hcap - 1);
      while (seen[h] && strcmp(s.v[seen[h] - 1].key, s.v[i].key)) h = (h + 1) & (hcap - 1);
      if (seen[h]) {
        stats->present++;
        continue;
      }
      seen[h] = i + 1;
      todo[ntodo++] = &s.v[i];
    }
    free(seen);
  }
  runner r = {ix, dir, model_id, m, tk, &o, stats, 0, 0, o.part_rows ? o.part_rows : CC_INDEX_PART_ROWS,
              {&o.eval, 0, is_tar_spec(source) ? -1 : (int64_t)ntodo}, NULL, NULL, NULL, 0};
  if (!st) {
    int decided = clipcl_index_count(ix) > 0 || clipcl_index_has_text(ix);
    if (decided) r.text = clipcl_index_has_text(ix);
    else r.text = o.text_embeddings == -1 ? s.caption_col >= 0 : o.text_embeddings == 1;
    if (r.text && !tk) st = cc_fail(CLIPCL_ERR_ARG, "index update: caption embeddings need a tokenizer");
    clipcl_index_set_part_rows(ix, r.part_rows);
  }
  if (!st) {
    if (is_tar_spec(source)) st = embed_shards(&r, &s, shards, keys, done, nsh);
    else st = embed_files(&r, &s, todo, ntodo);
  }
  dirty |= r.unsaved > 0;
  /* the FAISS indexes */
  if (!st) {
    const char *want = o.index_type && strcmp(o.index_type, "auto") ? o.index_type : NULL;
    char chosen[64];
    if (!want) {
      st = clipcl_ann_choose(clipcl_index_count(ix), clipcl_index_dim(ix), o.memory_budget, chosen, sizeof chosen);
      want = chosen;
    }
    int exact = !strcmp(want, "exact") || !strcmp(want, "Flat");
    snprintf(stats->ann, sizeof stats->ann, "%s", exact ? "" : want);
    for (int t = 0; t < 1 + clipcl_index_has_text(ix) && !st; t++) {
      const char *cur = clipcl_index_ann_factory(ix, t);
      if (exact ? cur != NULL : (o.rebuild_ann || !cur || strcmp(cur, want) != 0)) {
        clipcl_ann_options ao = {0};
        ao.progress = o.eval.progress;
        ao.user = o.eval.user;
        st = clipcl_index_build_ann(ix, t, exact ? "exact" : want, &ao);
        dirty = 1;
        stats->ann_built |= !exact;
      }
    }
  }
  if (!st && clipcl_index_count(ix) == 0 && !clipcl_index_exists(dir))
    st = cc_fail(CLIPCL_ERR_FORMAT, "%s: none of the %zu items could be read: no index written", source,
                 stats->scanned);
  if (!st && (dirty || !clipcl_index_exists(dir))) st = clipcl_index_save(ix, dir);
  stats->count = clipcl_index_count(ix);
  free(r.emb), free(r.temb), free(r.ok);
  free(todo);
  items_free(&s);
  free(shards); /* one block (cc_brace_expand) */
  if (keys)
    for (int k = 0; k < nsh; k++) free(keys[k]);
  free(keys);
  free(done);
  free(folder);
  return st;
}

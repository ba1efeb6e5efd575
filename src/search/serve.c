/* serve.c: the search service: clip-retrieval's back-end API (/indices-list,
 * /knn-service, /metadata, /config.json) plus the page, images, /healthz and
 * /metrics, over libmicrohttpd's thread pool (API in clipcl.h). Not here:
 * the page itself (page.html), searching (ann.c), the index (index.c).
 *
 * Hostile input is the normal case here: bodies are capped (a declared
 * Content-Length over the cap is answered 413 before the body is read),
 * every JSON field is type- and range-checked, numbers of results are
 * bounded, base64 is decoded strictly within the cap, image URLs other than
 * file:// inside a served collection are refused (the server fetches
 * nothing), images are served by row id only, and every refusal is a 4xx
 * with {"error": ...}. The model is shared: queries are encoded one at a
 * time under a lock (texts through an LRU cache); searching runs in parallel.
 */
#define _DEFAULT_SOURCE /* realpath, strdup */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clipcl.h"
#include "eval/eval.h"
#include "search/faiss_shim.h"
#include "search/search.h"
#include "util/buf.h"
#include "util/error.h"

extern const unsigned char cc_search_page[];
extern const size_t cc_search_page_size;

#define DEDUP_THRESHOLD 0.94f
#define MAX_TEXT_BYTES 16384
#define MAX_IMAGE_FILE ((size_t)64 << 20)

static const double latency_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof latency_le / sizeof *latency_le)

enum { R_PAGE, R_INDICES, R_KNN, R_METADATA, R_CONFIG, R_IMAGE, R_HEALTH, R_METRICS, R_OTHER, NROUTES };
static const char *route_names[NROUTES] = {"page", "indices-list", "knn-service", "metadata", "config",
                                           "image", "healthz", "metrics", "other"};
enum { Q_TEXT, Q_IMAGE, Q_IMAGE_URL, Q_EMBEDDING, Q_ID, NQKINDS };
static const char *qkind_names[NQKINDS] = {"text", "image", "image_url", "embedding_input", "query_id"};

/* ---- text embedding cache (LRU) ----------------------------------------------- */
typedef struct tc_entry {
  char *text;
  float *emb;
  struct tc_entry *prev, *next, *hnext;
} tc_entry;

typedef struct {
  tc_entry **table;
  size_t hcap, n, cap;
  tc_entry *head, *tail; /* most recent first */
} text_cache;

static void tc_unlink(text_cache *c, tc_entry *e) {
  if (e->prev) e->prev->next = e->next;
  else c->head = e->next;
  if (e->next) e->next->prev = e->prev;
  else c->tail = e->prev;
  e->prev = e->next = NULL;
}

static void tc_front(text_cache *c, tc_entry *e) {
  e->next = c->head;
  if (c->head) c->head->prev = e;
  c->head = e;
  if (!c->tail) c->tail = e;
}

static tc_entry *tc_find(text_cache *c, const char *t) {
  if (!c->hcap) return NULL;
  for (tc_entry *e = c->table[cc_str_hash(t) & (c->hcap - 1)]; e; e = e->hnext)
    if (!strcmp(e->text, t)) return e;
  return NULL;
}

static void tc_drop(text_cache *c, tc_entry *e) {
  tc_entry **p = &c->table[cc_str_hash(e->text) & (c->hcap - 1)];
  while (*p != e) p = &(*p)->hnext;
  *p = e->hnext;
  tc_unlink(c, e);
  free(e->text), free(e->emb), free(e);
  c->n--;
}

/* Adds a copy (best effort: out of memory just skips the cache). */
static void tc_put(text_cache *c, const char *t, const float *emb, int dim) {
  if (!c->cap || !c->hcap || tc_find(c, t)) return;
  if (c->n >= c->cap) tc_drop(c, c->tail);
  tc_entry *e = calloc(1, sizeof *e);
  if (!e || !(e->text = strdup(t)) || !(e->emb = malloc((size_t)dim * sizeof *e->emb))) {
    if (e) free(e->text);
    free(e);
    return;
  }
  memcpy(e->emb, emb, (size_t)dim * sizeof *e->emb);
  size_t h = cc_str_hash(t) & (c->hcap - 1);
  e->hnext = c->table[h];
  c->table[h] = e;
  tc_front(c, e);
  c->n++;
}

static void tc_free(text_cache *c) {
  while (c->head) tc_drop(c, c->head);
  free(c->table);
}

/* ---- the server ------------------------------------------------------------------ */
struct clipcl_server {
  struct MHD_Daemon *d;
  int port;
  clipcl_model *m;
  cc_server_encoder enc; /* used when m is NULL (tests, the fuzz target) */
  int vocab;
  clipcl_tokenizer *tk;
  clipcl_index *const *ix;
  char **names;
  int n, dim, image_size, context;
  clipcl_server_options o;
  pthread_mutex_t model_lock; /* the model, its workspaces and the text cache */
  text_cache cache;
  pthread_mutex_t stats_lock;
  uint64_t requests[NROUTES][6]; /* by status class 1xx..5xx (index 1..5) */
  uint64_t queries[NQKINDS];
  uint64_t buckets[NBUCKETS + 1], knn_count, cache_hits, cache_misses;
  double knn_sum;
};

typedef struct {
  char *body;
  size_t len, cap;
  int too_big;
  int answered; /* a response is already queued */
  struct timespec t0;
} request;

typedef struct {
  int status;
  char *body; /* malloc'd */
  size_t len;
  const char *type;
  const char *cache; /* Cache-Control, or NULL */
} reply;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void logf_(clipcl_server *s, const char *fmt, ...) CC_PRINTF(2, 3);
static void logf_(clipcl_server *s, const char *fmt, ...) {
  if (!s->o.log) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  s->o.log(s->o.user, line);
}

static reply json_reply(int status, json_t *v) {
  reply r = {status, NULL, 0, "application/json; charset=utf-8", NULL};
  r.body = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  json_decref(v);
  if (!r.body) {
    r.status = 500;
    r.body = strdup("{\"error\": \"out of memory\"}");
  }
  r.len = r.body ? strlen(r.body) : 0;
  return r;
}

static reply error_reply(int status, const char *fmt, ...) CC_PRINTF(2, 3);
static reply error_reply(int status, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* messages may quote client bytes: make them valid UTF-8 */
  size_t n = strlen(msg);
  for (size_t i = 0; i < n;) {
    size_t ok = cc_utf8_check((const unsigned char *)msg + i, n - i);
    i += ok;
    if (i < n) msg[i++] = '?';
  }
  return json_reply(status, json_pack("{s:s}", "error", msg));
}

/* A JSON string from arbitrary bytes: invalid UTF-8 becomes U+FFFD. */
static json_t *lossy_string(const char *s) {
  size_t n = strlen(s);
  if (cc_utf8_check((const unsigned char *)s, n) == n) return json_string(s);
  cc_buf b = {0};
  for (size_t i = 0; i < n;) {
    size_t ok = cc_utf8_check((const unsigned char *)s + i, n - i);
    cc_buf_add(&b, s + i, ok);
    i += ok;
    if (i < n) cc_buf_str(&b, "\xEF\xBF\xBD"), i++;
  }
  cc_buf_add(&b, "", 1);
  json_t *j = b.oom ? NULL : json_string(b.p);
  cc_buf_free(&b);
  return j;
}

/* ---- request fields ---------------------------------------------------------------- */
/* An integer field: absent/null -> def; a JSON integer, an integral real or
 * a decimal string in [lo, hi]; else -1 with *why set. */
static int int_field(json_t *o, const char *key, long def, long lo, long hi, long *out, char *why, size_t cap) {
  json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) {
    *out = def;
    return 0;
  }
  double x;
  if (json_is_integer(v)) {
    json_int_t i = json_integer_value(v);
    x = (double)i;
  } else if (json_is_real(v)) {
    x = json_real_value(v);
  } else if (json_is_string(v)) {
    const char *s = json_string_value(v);
    char *end;
    errno = 0;
    x = strtod(s, &end);
    if (end == s || *end || errno) {
      snprintf(why, cap, "%s must be a number", key);
      return -1;
    }
  } else {
    snprintf(why, cap, "%s must be a number", key);
    return -1;
  }
  if (!(x == floor(x)) || x < (double)lo || x > (double)hi) {
    snprintf(why, cap, "%s must be a whole number from %ld to %ld", key, lo, hi);
    return -1;
  }
  *out = (long)x;
  return 0;
}

static int bool_field(json_t *o, const char *key, int def, int *out, char *why, size_t cap) {
  json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) *out = def;
  else if (json_is_boolean(v)) *out = json_is_true(v);
  else if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) *out = (int)json_integer_value(v);
  else {
    snprintf(why, cap, "%s must be true or false", key);
    return -1;
  }
  return 0;
}

/* The index named by indice_name (absent: the first). */
static int pick_index(clipcl_server *s, json_t *o, char *why, size_t cap) {
  json_t *v = json_object_get(o, "indice_name");
  if (!v || json_is_null(v)) return 0;
  if (!json_is_string(v)) {
    snprintf(why, cap, "indice_name must be a string");
    return -1;
  }
  for (int i = 0; i < s->n; i++)
    if (!strcmp(s->names[i], json_string_value(v))) return i;
  snprintf(why, cap, "no index named \"%.100s\" (GET /indices-list)", json_string_value(v));
  return -1;
}

/* ---- encoding queries (one at a time) --------------------------------------------------- */
static clipcl_status encode_text(clipcl_server *s, const char *text, float *out) {
  size_t n = strlen(text);
  if (n > MAX_TEXT_BYTES) return cc_fail(CLIPCL_ERR_ARG, "text is longer than %d bytes", MAX_TEXT_BYTES);
  pthread_mutex_lock(&s->model_lock);
  tc_entry *e = tc_find(&s->cache, text);
  if (e) {
    memcpy(out, e->emb, (size_t)s->dim * sizeof *out);
    tc_unlink(&s->cache, e);
    tc_front(&s->cache, e);
    pthread_mutex_unlock(&s->model_lock);
    pthread_mutex_lock(&s->stats_lock);
    s->cache_hits++;
    pthread_mutex_unlock(&s->stats_lock);
    return CLIPCL_OK;
  }
  pthread_mutex_unlock(&s->model_lock);
  int32_t *ids = malloc((size_t)s->context * sizeof *ids);
  if (!ids) return cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
  clipcl_status st = clipcl_tokenize(s->tk, text, s->context, ids, NULL);
  for (int k = 0; k < s->context && !st; k++)
    if (ids[k] < 0 || ids[k] >= s->vocab) st = cc_fail(CLIPCL_ERR_ARG, "text gives a token beyond the model's vocabulary");
  if (!st) {
    pthread_mutex_lock(&s->model_lock);
    st = s->m ? clipcl_model_encode_texts(s->m, ids, 1, out) : s->enc.text(s->enc.user, ids, out);
    if (!st) tc_put(&s->cache, text, out, s->dim);
    pthread_mutex_unlock(&s->model_lock);
  }
  free(ids);
  if (!st) {
    pthread_mutex_lock(&s->stats_lock);
    s->cache_misses++;
    pthread_mutex_unlock(&s->stats_lock);
  }
  return st;
}

/* The server's fault (5xx) rather than the request's (4xx). */
static int server_fault(clipcl_status st) {
  return st == CLIPCL_ERR_NOMEM || st == CLIPCL_ERR_OPENCL || st == CLIPCL_ERR_BUILD || st == CLIPCL_ERR_NUMERIC;
}

/* Decoded and preprocessed outside the lock, encoded under it. */
static clipcl_status encode_image(clipcl_server *s, const void *data, size_t len, const char *name, float *out) {
  clipcl_image img = {0};
  CC_TRY(clipcl_image_decode(data, len, name, &img));
  size_t plane = (size_t)3 * s->image_size * s->image_size;
  float *px = malloc(plane * sizeof *px);
  clipcl_status st = px ? clipcl_image_preprocess(&img, s->image_size, px) : cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
  clipcl_image_free(&img);
  if (!st) {
    pthread_mutex_lock(&s->model_lock);
    st = s->m ? clipcl_model_encode_images(s->m, px, 1, out) : s->enc.image(s->enc.user, px, out);
    pthread_mutex_unlock(&s->model_lock);
  }
  free(px);
  return st;
}

/* Reads a whole regular file of at most max bytes. */
static clipcl_status read_small(const char *path, size_t max, unsigned char **out, size_t *len) {
  *out = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return cc_fail(CLIPCL_ERR_IO, "cannot open: %s", strerror(errno));
  struct stat sb;
  clipcl_status st = CLIPCL_OK;
  if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) st = cc_fail(CLIPCL_ERR_IO, "not a regular file");
  else if ((uint64_t)sb.st_size > max) st = cc_fail(CLIPCL_ERR_IO, "larger than %zu bytes", max);
  unsigned char *b = NULL;
  if (!st && !(b = malloc(sb.st_size ? (size_t)sb.st_size : 1))) st = cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
  if (!st && fread(b, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) st = cc_fail(CLIPCL_ERR_IO, "read failed");
  fclose(f);
  if (st) {
    free(b);
    return st;
  }
  *out = b;
  *len = (size_t)sb.st_size;
  return CLIPCL_OK;
}

/* A member of a tar shard (name compared with its suffix case-insensitive). */
static clipcl_status read_member(const char *shard, const char *member, size_t max, unsigned char **out, size_t *len) {
  *out = NULL;
  *len = 0;
  struct archive *a = archive_read_new();
  if (!a) return cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
  archive_read_support_format_tar(a);
  archive_read_support_filter_gzip(a);
  clipcl_status st = cc_fail(CLIPCL_ERR_IO, "%s: no member %s", shard, member);
  if (archive_read_open_filename(a, shard, 1 << 16) != ARCHIVE_OK) {
    st = cc_fail(CLIPCL_ERR_IO, "%s: %s", shard, archive_error_string(a));
  } else {
    const char *dot = strrchr(member, '.');
    size_t stem = dot ? (size_t)(dot - member) : strlen(member);
    struct archive_entry *e;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
      const char *p = archive_entry_pathname(e);
      if (!p || strncmp(p, member, stem) || (dot ? strcasecmp(p + stem, dot) : p[stem] != 0)) continue;
      la_int64_t size = archive_entry_size(e);
      if (size < 0 || (uint64_t)size > max) {
        st = cc_fail(CLIPCL_ERR_IO, "%s: member %s is too large", shard, member);
        break;
      }
      unsigned char *b = malloc(size ? (size_t)size : 1);
      if (!b) {
        st = cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
        break;
      }
      la_ssize_t got = archive_read_data(a, b, (size_t)size);
      if (got != size) {
        free(b);
        st = cc_fail(CLIPCL_ERR_IO, "%s: member %s cut short", shard, member);
        break;
      }
      *out = b;
      *len = (size_t)size;
      st = CLIPCL_OK;
      break;
    }
  }
  archive_read_free(a);
  return st;
}

/* The bytes of row `row`'s image, from inside the collection only. */
static clipcl_status row_image(const clipcl_index *ix, size_t row, size_t max, unsigned char **out, size_t *len) {
  char *member = NULL, *file = cc_index_resolve(ix, clipcl_index_path(ix, row), &member);
  if (!file) return CLIPCL_ERR_IO;
  clipcl_status st = member ? read_member(file, member, max, out, len) : read_small(file, max, out, len);
  free(file), free(member);
  return st;
}

static const char *image_type(const unsigned char *b, size_t n) {
  if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return "image/png";
  if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return "image/jpeg";
  return "application/octet-stream";
}

/* ---- /knn-service ------------------------------------------------------------------------ */
/* The query embedding from the first non-empty of text, image, image_url,
 * embedding_input, query_id. 0, or an HTTP status with *why. */
static int build_query(clipcl_server *s, const clipcl_index *ix, json_t *o, float *q, int *kind, char *why, size_t cap) {
  json_t *text = json_object_get(o, "text"), *image = json_object_get(o, "image"),
         *url = json_object_get(o, "image_url"), *emb = json_object_get(o, "embedding_input"),
         *qid = json_object_get(o, "query_id");
  /* null and "" mean absent, as clip-retrieval's client sends them */
#define GIVEN(v) ((v) && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
  clipcl_status st;
  if (GIVEN(text)) {
    *kind = Q_TEXT;
    if (!json_is_string(text)) return snprintf(why, cap, "text must be a string"), 400;
    if (memchr(json_string_value(text), 0, json_string_length(text))) return snprintf(why, cap, "text holds a NUL"), 400;
    if ((st = encode_text(s, json_string_value(text), q)))
      return snprintf(why, cap, "text: %s", clipcl_last_error()), server_fault(st) ? 500 : 400;
    return 0;
  }
  if (GIVEN(image)) {
    *kind = Q_IMAGE;
    if (!json_is_string(image)) return snprintf(why, cap, "image must be a base64 string"), 400;
    const char *b64 = json_string_value(image);
    /* a data: URL prefix is accepted too */
    if (!strncmp(b64, "data:", 5) && strstr(b64, ";base64,")) b64 = strstr(b64, ";base64,") + 8;
    unsigned char *bytes = NULL;
    size_t n = 0;
    if (cc_base64_decode(b64, strlen(b64), s->o.max_body, &bytes, &n))
      return snprintf(why, cap, "image: %s", clipcl_last_error()), 400;
    st = encode_image(s, bytes, n, "image", q);
    free(bytes);
    if (st) return snprintf(why, cap, "%s", clipcl_last_error()), server_fault(st) ? 500 : 400;
    return 0;
  }
  if (GIVEN(url)) {
    *kind = Q_IMAGE_URL;
    if (!json_is_string(url)) return snprintf(why, cap, "image_url must be a string"), 400;
    const char *u = json_string_value(url);
    if (strncmp(u, "file://", 7))
      return snprintf(why, cap,
                      "image_url: this server fetches nothing; send the image itself as base64 in \"image\" "
                      "(only file:// URLs inside a served collection are read)"),
             400;
    /* percent-decoding, then the file must lie inside the index's collection */
    size_t n = strlen(u + 7);
    char *p = malloc(n + 1), *w = p;
    if (!p) return snprintf(why, cap, "out of memory"), 500;
    for (const char *r = u + 7; *r; r++) {
      if (*r == '%' && r[1] && r[2] && strchr("0123456789abcdefABCDEF", r[1]) && strchr("0123456789abcdefABCDEF", r[2])) {
        char h[3] = {r[1], r[2], 0};
        *w++ = (char)strtol(h, NULL, 16);
        r += 2;
      } else {
        *w++ = *r;
      }
    }
    *w = 0;
    char real[PATH_MAX];
    const char *root = clipcl_index_root(ix);
    size_t rl = root ? strlen(root) : 0;
    int inside = p[0] == '/' && strlen(p) == (size_t)(w - p) && realpath(p, real) && root && !strncmp(real, root, rl) &&
                 real[rl] == '/';
    free(p);
    if (!inside) return snprintf(why, cap, "image_url: not a readable file inside the collection"), 403;
    unsigned char *bytes = NULL;
    size_t len = 0;
    if (read_small(real, MAX_IMAGE_FILE, &bytes, &len))
      return snprintf(why, cap, "image_url: %s", clipcl_last_error()), 403;
    st = encode_image(s, bytes, len, "image_url", q);
    free(bytes);
    if (st) return snprintf(why, cap, "%s", clipcl_last_error()), server_fault(st) ? 500 : 400;
    return 0;
  }
  if (GIVEN(emb)) {
    *kind = Q_EMBEDDING;
    if (!json_is_array(emb) || json_array_size(emb) != (size_t)s->dim)
      return snprintf(why, cap, "embedding_input must be an array of %d numbers", s->dim), 400;
    double ss = 0;
    for (int d = 0; d < s->dim; d++) {
      json_t *x = json_array_get(emb, (size_t)d);
      if (!json_is_number(x)) return snprintf(why, cap, "embedding_input[%d] is not a number", d), 400;
      double v = json_number_value(x);
      if (!isfinite(v) || fabs(v) > 1e30) return snprintf(why, cap, "embedding_input[%d] is not finite", d), 400;
      q[d] = (float)v;
      ss += v * v;
    }
    if (!(ss > 0)) return snprintf(why, cap, "embedding_input is zero"), 400;
    return 0;
  }
  if (GIVEN(qid)) {
    *kind = Q_ID;
    if (!json_is_integer(qid) || json_integer_value(qid) < 0 || (size_t)json_integer_value(qid) >= clipcl_index_count(ix))
      return snprintf(why, cap, "query_id must be a row of the index (0 to %zu)", clipcl_index_count(ix) - 1), 400;
    if (clipcl_index_row_embedding(ix, (size_t)json_integer_value(qid), 0, q))
      return snprintf(why, cap, "query_id: %s", clipcl_last_error()), 500;
    return 0;
  }
#undef GIVEN
  return snprintf(why, cap, "must fill one of text, image, image_url and embedding_input"), 400;
}

/* Metadata of a row as clip-retrieval returns it: non-empty columns, and
 * "image" (base64 of the file) when it can be read inside the collection. */
static json_t *row_metadata(clipcl_server *s, const clipcl_index *ix, size_t row) {
  json_t *o = json_object();
  if (!o) return NULL;
  const char *const *cols;
  int nc = clipcl_index_columns(ix, &cols);
  for (int c = 0; c < nc; c++) {
    const char *v = clipcl_index_value(ix, row, c);
    if (v) json_object_set_new(o, cols[c], lossy_string(v));
  }
  unsigned char *bytes = NULL;
  size_t len = 0;
  if (clipcl_index_root(ix) && row_image(ix, row, s->o.max_inline, &bytes, &len) == CLIPCL_OK) {
    char *b64 = NULL;
    if (cc_base64_encode(bytes, len, &b64, NULL) == CLIPCL_OK) json_object_set_new(o, "image", json_string(b64));
    free(b64);
  }
  free(bytes);
  return o;
}

static reply knn(clipcl_server *s, json_t *o, int *qkind) {
  char why[512] = "";
  long num_images, num_ids;
  int dd = 0;
  int which = pick_index(s, o, why, sizeof why);
  if (which < 0) return error_reply(400, "%s", why);
  const clipcl_index *ix = s->ix[which];
  json_t *mod = json_object_get(o, "modality");
  int text = 0;
  if (mod && !json_is_null(mod)) {
    if (!json_is_string(mod) || (strcmp(json_string_value(mod), "image") && strcmp(json_string_value(mod), "text")))
      return error_reply(400, "modality must be \"image\" or \"text\"");
    text = !strcmp(json_string_value(mod), "text");
  }
  if (text && !clipcl_index_has_text(ix))
    return error_reply(400, "index \"%s\" keeps no caption embeddings: modality \"text\" is not available", s->names[which]);
  if (int_field(o, "num_images", 40, 1, s->o.max_results, &num_images, why, sizeof why) ||
      int_field(o, "num_result_ids", num_images, 1, s->o.max_results, &num_ids, why, sizeof why) ||
      bool_field(o, "deduplicate", 0, &dd, why, sizeof why))
    return error_reply(400, "%s", why);
  if (num_ids < num_images) num_ids = num_images;
  float *q = malloc((size_t)s->dim * sizeof *q);
  if (!q) return error_reply(500, "out of memory");
  int status = build_query(s, ix, o, q, qkind, why, sizeof why);
  if (status) {
    free(q);
    return error_reply(status, "%s", why);
  }
  clipcl_search_hit *hits = malloc((size_t)num_ids * sizeof *hits);
  int nh = 0;
  clipcl_query_options qo = {text, 0, s->o.nprobe, s->o.ef_search, 1};
  cc_faiss_set_threads(1);
  clipcl_status st = hits ? clipcl_index_query(ix, q, 1, (int)num_ids, &qo, hits, &nh, NULL)
                          : cc_fail(CLIPCL_ERR_NOMEM, "out of memory");
  free(q);
  if (st) {
    free(hits);
    return error_reply(500, "search: %s", clipcl_last_error());
  }
  if (dd) nh = cc_search_dedup(ix, text, hits, nh, DEDUP_THRESHOLD);
  json_t *arr = json_array();
  for (int i = 0; i < nh && arr; i++) {
    json_t *item = i < num_images ? row_metadata(s, ix, (size_t)hits[i].index) : json_object();
    if (!item) {
      json_decref(arr);
      arr = NULL;
      break;
    }
    json_object_set_new(item, "id", json_integer(hits[i].index));
    json_object_set_new(item, "similarity", json_real(hits[i].score));
    json_array_append_new(arr, item);
  }
  free(hits);
  if (!arr) return error_reply(500, "out of memory");
  return json_reply(200, arr);
}

static reply metadata(clipcl_server *s, json_t *o) {
  char why[512] = "";
  int which = pick_index(s, o, why, sizeof why);
  if (which < 0) return error_reply(400, "%s", why);
  const clipcl_index *ix = s->ix[which];
  json_t *ids = json_object_get(o, "ids");
  if (!json_is_array(ids)) return error_reply(400, "ids must be an array of row ids");
  if (json_array_size(ids) > (size_t)s->o.max_results)
    return error_reply(400, "at most %d ids at a time", s->o.max_results);
  size_t n = clipcl_index_count(ix);
  for (size_t i = 0; i < json_array_size(ids); i++) {
    json_t *v = json_array_get(ids, i);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (size_t)json_integer_value(v) >= n)
      return error_reply(400, "ids[%zu] is not a row of index \"%s\" (0 to %zu)", i, s->names[which], n ? n - 1 : 0);
  }
  json_t *arr = json_array();
  for (size_t i = 0; i < json_array_size(ids) && arr; i++) {
    json_int_t id = json_integer_value(json_array_get(ids, i));
    json_t *m = row_metadata(s, ix, (size_t)id);
    if (!m || json_array_append_new(arr, json_pack("{s:I, s:o}", "id", id, "metadata", m))) {
      json_decref(arr);
      arr = NULL;
    }
  }
  if (!arr) return error_reply(500, "out of memory");
  return json_reply(200, arr);
}

/* ---- GET routes -------------------------------------------------------------------------- */
static reply metrics_text(clipcl_server *s) {
  cc_buf b = {0};
  pthread_mutex_lock(&s->stats_lock);
  cc_buf_str(&b, "# HELP clipcl_http_requests_total HTTP requests by route and status code class.\n"
                 "# TYPE clipcl_http_requests_total counter\n");
  for (int r = 0; r < NROUTES; r++)
    for (int c = 1; c <= 5; c++)
      if (s->requests[r][c])
        cc_buf_printf(&b, "clipcl_http_requests_total{route=\"%s\",code=\"%dxx\"} %llu\n", route_names[r], c,
                      (unsigned long long)s->requests[r][c]);
  uint64_t e4 = 0, e5 = 0;
  for (int r = 0; r < NROUTES; r++) e4 += s->requests[r][4], e5 += s->requests[r][5];
  cc_buf_printf(&b, "# HELP clipcl_http_errors_total Requests answered with a 4xx or 5xx status.\n"
                    "# TYPE clipcl_http_errors_total counter\n"
                    "clipcl_http_errors_total{class=\"4xx\"} %llu\nclipcl_http_errors_total{class=\"5xx\"} %llu\n",
                (unsigned long long)e4, (unsigned long long)e5);
  cc_buf_str(&b, "# HELP clipcl_knn_queries_total Answered knn-service queries by input.\n"
                 "# TYPE clipcl_knn_queries_total counter\n");
  for (int k = 0; k < NQKINDS; k++)
    cc_buf_printf(&b, "clipcl_knn_queries_total{input=\"%s\"} %llu\n", qkind_names[k], (unsigned long long)s->queries[k]);
  cc_buf_str(&b, "# HELP clipcl_knn_latency_seconds Time to answer a knn-service request.\n"
                 "# TYPE clipcl_knn_latency_seconds histogram\n");
  uint64_t cum = 0;
  for (size_t i = 0; i < NBUCKETS; i++) {
    cum += s->buckets[i];
    cc_buf_printf(&b, "clipcl_knn_latency_seconds_bucket{le=\"%g\"} %llu\n", latency_le[i], (unsigned long long)cum);
  }
  cum += s->buckets[NBUCKETS];
  cc_buf_printf(&b, "clipcl_knn_latency_seconds_bucket{le=\"+Inf\"} %llu\nclipcl_knn_latency_seconds_sum %.6f\n"
                    "clipcl_knn_latency_seconds_count %llu\n",
                (unsigned long long)cum, s->knn_sum, (unsigned long long)s->knn_count);
  cc_buf_printf(&b, "# HELP clipcl_text_cache_total Text query embeddings found in or missing from the cache.\n"
                    "# TYPE clipcl_text_cache_total counter\nclipcl_text_cache_total{result=\"hit\"} %llu\n"
                    "clipcl_text_cache_total{result=\"miss\"} %llu\n",
                (unsigned long long)s->cache_hits, (unsigned long long)s->cache_misses);
  pthread_mutex_unlock(&s->stats_lock);
  long pages = 0, rss = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    fclose(f);
  }
  cc_buf_printf(&b, "# HELP clipcl_resident_memory_bytes Resident memory of the server process.\n"
                    "# TYPE clipcl_resident_memory_bytes gauge\nclipcl_resident_memory_bytes %lld\n",
                (long long)rss * sysconf(_SC_PAGESIZE));
  cc_buf_printf(&b, "# HELP clipcl_index_rows Rows of each served index.\n# TYPE clipcl_index_rows gauge\n");
  for (int i = 0; i < s->n; i++)
    cc_buf_printf(&b, "clipcl_index_rows{index=\"%s\"} %zu\n", s->names[i], clipcl_index_count(s->ix[i]));
  cc_buf_add(&b, "", 1);
  reply r = {200, b.oom ? NULL : b.p, b.oom ? 0 : b.len - 1, "text/plain; version=0.0.4; charset=utf-8", NULL};
  if (b.oom) {
    cc_buf_free(&b);
    return error_reply(500, "out of memory");
  }
  return r;
}

static reply image_route(clipcl_server *s, struct MHD_Connection *c) {
  const char *name = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "index");
  const char *id = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "id");
  int which = 0;
  if (name) {
    which = -1;
    for (int i = 0; i < s->n; i++)
      if (!strcmp(s->names[i], name)) which = i;
    if (which < 0) return error_reply(404, "no index named \"%.100s\"", name);
  }
  const clipcl_index *ix = s->ix[which];
  char *end = NULL;
  errno = 0;
  unsigned long long row = id && *id >= '0' && *id <= '9' ? strtoull(id, &end, 10) : 0;
  if (!id || !end || *end || errno || row >= clipcl_index_count(ix))
    return error_reply(400, "id must be a row of the index (0 to %zu)", clipcl_index_count(ix) - 1);
  unsigned char *bytes = NULL;
  size_t len = 0;
  if (row_image(ix, (size_t)row, MAX_IMAGE_FILE, &bytes, &len)) return error_reply(404, "row %llu: %s", row, clipcl_last_error());
  reply r = {200, (char *)bytes, len, image_type(bytes, len), "max-age=3600"};
  return r;
}

static reply config_json(clipcl_server *s, struct MHD_Connection *c) {
  const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
  char back[512];
  /* a Host header of printable ASCII only (anything else, such as bytes
   * that are not UTF-8, would make the JSON fail): else the listening address */
  int plain = host && strlen(host) < 400 && !strpbrk(host, "\"\\<>");
  for (const char *h = host; plain && *h; h++) plain = *h > ' ' && *h < 0x7f;
  if (plain)
    snprintf(back, sizeof back, "http://%s", host);
  else
    snprintf(back, sizeof back, "http://%s:%d", s->o.host, s->port);
  return json_reply(200, json_pack("{s:s, s:s, s:s}", "defaultBackend", back, "defaultIndex", s->names[0], "urlColumn", "url"));
}

/* ---- the MHD handler ------------------------------------------------------------------------ */
static int route_of(const char *url) {
  if (!strcmp(url, "/") || !strcmp(url, "/index.html")) return R_PAGE;
  if (!strcmp(url, "/indices-list")) return R_INDICES;
  if (!strcmp(url, "/knn-service")) return R_KNN;
  if (!strcmp(url, "/metadata")) return R_METADATA;
  if (!strcmp(url, "/config.json")) return R_CONFIG;
  if (!strcmp(url, "/image")) return R_IMAGE;
  if (!strcmp(url, "/healthz")) return R_HEALTH;
  if (!strcmp(url, "/metrics")) return R_METRICS;
  return R_OTHER;
}

static enum MHD_Result send_reply(clipcl_server *s, struct MHD_Connection *c, request *rq, reply r, int route,
                                  const char *method, const char *url, int qkind) {
  struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(r.len, r.body, free);
  if (!resp) {
    free(r.body);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", r.type);
  MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
  MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
  MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Content-Type");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  if (r.cache) MHD_add_response_header(resp, "Cache-Control", r.cache);
  enum MHD_Result ret = MHD_queue_response(c, (unsigned)r.status, resp);
  MHD_destroy_response(resp);
  rq->answered = 1;
  double dt = now_s() - ((double)rq->t0.tv_sec + (double)rq->t0.tv_nsec * 1e-9);
  pthread_mutex_lock(&s->stats_lock);
  int cls = r.status / 100;
  if (cls >= 1 && cls <= 5) s->requests[route][cls]++;
  if (route == R_KNN && r.status == 200) {
    size_t b = 0;
    while (b < NBUCKETS && dt > latency_le[b]) b++;
    s->buckets[b]++;
    s->knn_count++;
    s->knn_sum += dt;
    if (qkind >= 0) s->queries[qkind]++;
  }
  pthread_mutex_unlock(&s->stats_lock);
  if (r.status >= 400 && r.body && r.len < 600)
    logf_(s, "%s %.200s %d %.1f ms %.*s", method, url, r.status, dt * 1e3, (int)r.len, r.body);
  else
    logf_(s, "%s %.200s %d %.1f ms", method, url, r.status, dt * 1e3);
  return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **con_cls) {
  (void)version;
  clipcl_server *s = cls;
  request *rq = *con_cls;
  int route = route_of(url);
  int post = !strcmp(method, "POST");
  if (!rq) {
    if (!(rq = calloc(1, sizeof *rq))) return MHD_NO;
    clock_gettime(CLOCK_MONOTONIC, &rq->t0);
    *con_cls = rq;
    if (post) {
      /* a declared body over the cap is refused before it is read */
      const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
      if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || end == cl || *end || n > s->o.max_body)
          return send_reply(s, c, rq, error_reply(413, "request body over %zu bytes", s->o.max_body), route, method, url, -1);
      }
      return MHD_YES;
    }
  }
  if (rq->answered) {
    *upload_size = 0; /* answered already: drop whatever still arrives */
    return MHD_YES;
  }
  if (post && *upload_size) {
    size_t n = *upload_size;
    *upload_size = 0;
    if (rq->too_big || rq->len + n > s->o.max_body) {
      rq->too_big = 1;
      /* an undeclared (chunked) body: read on, keep nothing, up to 4x the cap */
      rq->len += n;
      return rq->len > 4 * s->o.max_body ? MHD_NO : MHD_YES;
    }
    if (rq->len + n + 1 > rq->cap) {
      size_t cap = rq->cap ? rq->cap : 4096;
      while (cap < rq->len + n + 1) cap *= 2;
      if (cap > s->o.max_body + 1) cap = s->o.max_body + 1;
      char *b = realloc(rq->body, cap);
      if (!b) return MHD_NO;
      rq->body = b;
      rq->cap = cap;
    }
    memcpy(rq->body + rq->len, upload, n);
    rq->len += n;
    return MHD_YES;
  }
  /* the whole request is here */
  int qkind = -1;
  reply r;
  if (!strcmp(method, "OPTIONS")) {
    r = (reply){204, NULL, 0, "text/plain", "max-age=86400"};
  } else if (post && (route == R_KNN || route == R_METADATA)) {
    if (rq->too_big) {
      r = error_reply(413, "request body over %zu bytes", s->o.max_body);
    } else {
      json_error_t err;
      json_t *o = json_loadb(rq->body ? rq->body : "", rq->len, 0, &err);
      if (!o) r = error_reply(400, "body is not JSON: %s (line %d, column %d)", err.text, err.line, err.column);
      else if (!json_is_object(o)) r = error_reply(400, "body must be a JSON object");
      else r = route == R_KNN ? knn(s, o, &qkind) : metadata(s, o);
      json_decref(o);
    }
  } else if (post || (strcmp(method, "GET") && strcmp(method, "HEAD"))) {
    r = route == R_OTHER ? error_reply(404, "no such endpoint") : error_reply(405, "method %.20s not allowed here", method);
  } else {
    switch (route) {
      case R_PAGE: {
        char *p = malloc(cc_search_page_size);
        if (p) memcpy(p, cc_search_page, cc_search_page_size);
        r = p ? (reply){200, p, cc_search_page_size, "text/html; charset=utf-8", "no-cache"} : error_reply(500, "out of memory");
        break;
      }
      case R_INDICES: {
        json_t *a = json_array();
        for (int i = 0; i < s->n && a; i++) json_array_append_new(a, json_string(s->names[i]));
        r = json_reply(200, a);
        break;
      }
      case R_CONFIG: r = config_json(s, c); break;
      case R_IMAGE: r = image_route(s, c); break;
      case R_HEALTH: r = json_reply(200, json_string("ok")); break;
      case R_METRICS: r = metrics_text(s); break;
      case R_KNN:
      case R_METADATA: r = error_reply(405, "%s takes POST", url); break;
      default: r = error_reply(404, "no such endpoint"); break;
    }
  }
  return send_reply(s, c, rq, r, route, method, url, qkind);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
  (void)cls, (void)c, (void)toe;
  request *rq = *con_cls;
  if (rq) free(rq->body);
  free(rq);
  *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  clipcl_server *s = cls;
  if (!s->o.log) return;
  char line[1024];
  vsnprintf(line, sizeof line, fmt, ap);
  size_t n = strlen(line);
  while (n && line[n - 1] == '\n') line[--n] = 0;
  s->o.log(s->o.user, line);
}

/* ---- start and stop ---------------------------------------------------------------------- */
void clipcl_server_options_init(clipcl_server_options *o) {
  memset(o, 0, sizeof *o);
  o->host = "127.0.0.1";
  o->threads = 8;
  o->max_body = (size_t)16 << 20;
  o->max_results = 10000;
  o->timeout_s = 30;
  o->text_cache = 4096;
  o->max_inline = (size_t)8 << 20;
}

static void server_free(clipcl_server *s) {
  if (!s) return;
  for (int i = 0; i < s->n; i++) free(s->names[i]);
  free(s->names);
  tc_free(&s->cache);
  pthread_mutex_destroy(&s->model_lock);
  pthread_mutex_destroy(&s->stats_lock);
  free(s);
}

/* A model (m) or an encoder (enc) answers text and image queries. */
static clipcl_status start(clipcl_model *m, const cc_server_encoder *enc, clipcl_tokenizer *tk,
                           clipcl_index *const *ix, const char *const *names, int n, const clipcl_server_options *opt,
                           clipcl_server **out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "server: no output");
  *out = NULL;
  if ((!m && !enc) || !tk || !ix || !names || n < 1)
    return cc_fail(CLIPCL_ERR_ARG, "server: needs a model, a tokenizer and indexes");
  char model_id[256] = "";
  if (m) CC_TRY(clipcl_model_identity(m, model_id, sizeof model_id));
  else if (enc->dim < 1 || enc->image_size < 1 || enc->context < 1 || !enc->text || !enc->image)
    return cc_fail(CLIPCL_ERR_ARG, "server: an encoder needs its sizes and both functions");
  for (int i = 0; i < n; i++) {
    if (!ix[i] || !names[i] || !*names[i] || strlen(names[i]) > 100 || strspn(names[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != strlen(names[i]))
      return cc_fail(CLIPCL_ERR_ARG, "server: index name \"%s\" (letters, digits, '.', '_', '-')", names[i] ? names[i] : "");
    for (int j = 0; j < i; j++)
      if (!strcmp(names[i], names[j])) return cc_fail(CLIPCL_ERR_ARG, "server: two indexes named \"%s\"", names[i]);
    if (m && clipcl_index_check_model(ix[i], model_id)) return cc_fail_ctx(CLIPCL_ERR_ARG, "index \"%s\"", names[i]);
    if (!m && clipcl_index_dim(ix[i]) != enc->dim)
      return cc_fail(CLIPCL_ERR_ARG, "index \"%s\" holds %d-dim embeddings, the encoder makes %d", names[i],
                     clipcl_index_dim(ix[i]), enc->dim);
    if (clipcl_index_count(ix[i]) == 0) return cc_fail(CLIPCL_ERR_ARG, "index \"%s\" is empty", names[i]);
  }
  clipcl_server *s = calloc(1, sizeof *s);
  if (!s) return cc_fail(CLIPCL_ERR_NOMEM, "server: out of memory");
  clipcl_server_options_init(&s->o);
  if (opt) s->o = *opt;
  if (!s->o.host) s->o.host = "127.0.0.1";
  if (s->o.threads < 1) s->o.threads = 8;
  if (!s->o.max_body) s->o.max_body = (size_t)16 << 20;
  if (s->o.max_results < 1) s->o.max_results = 10000;
  if (s->o.timeout_s < 1) s->o.timeout_s = 30;
  s->m = m, s->tk = tk, s->ix = ix, s->n = n;
  if (m) {
    const clipcl_config *cfg = clipcl_model_config(m);
    s->dim = cfg->embed_dim;
    s->image_size = cfg->vision.image_size;
    s->context = cfg->text.context_length;
    s->vocab = cfg->text.vocab_size;
  } else {
    s->enc = *enc;
    s->dim = enc->dim, s->image_size = enc->image_size, s->context = enc->context;
    s->vocab = enc->vocab > 0 ? enc->vocab : 49408;
  }
  pthread_mutex_init(&s->model_lock, NULL);
  pthread_mutex_init(&s->stats_lock, NULL);
  s->cache.cap = s->o.text_cache;
  if (s->cache.cap) {
    s->cache.hcap = 64;
    while (s->cache.hcap < 2 * s->cache.cap) s->cache.hcap *= 2;
    s->cache.table = calloc(s->cache.hcap, sizeof *s->cache.table);
  }
  if (!(s->names = calloc((size_t)n, sizeof *s->names)) || (s->cache.cap && !s->cache.table)) {
    server_free(s);
    return cc_fail(CLIPCL_ERR_NOMEM, "server: out of memory");
  }
  for (int i = 0; i < n; i++)
    if (!(s->names[i] = strdup(names[i]))) {
      server_free(s);
      return cc_fail(CLIPCL_ERR_NOMEM, "server: out of memory");
    }
  /* the address */
  struct addrinfo hints = {0}, *ai = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  char port[16];
  snprintf(port, sizeof port, "%d", s->o.port);
  int gai = getaddrinfo(s->o.host, port, &hints, &ai);
  if (gai || !ai) {
    clipcl_status st = cc_fail(CLIPCL_ERR_ARG, "server: address %s: %s", s->o.host, gai_strerror(gai));
    server_free(s);
    return st;
  }
  unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
  s->d = MHD_start_daemon(flags, (uint16_t)s->o.port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                          MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->o.threads, MHD_OPTION_CONNECTION_TIMEOUT,
                          (unsigned)s->o.timeout_s, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                          MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
                          MHD_OPTION_END);
  freeaddrinfo(ai);
  if (!s->d) {
    clipcl_status st = cc_fail(CLIPCL_ERR_IO, "server: cannot listen on %s:%d (in use, or not an address here?)",
                               s->o.host, s->o.port);
    server_free(s);
    return st;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  s->port = info ? info->port : s->o.port;
  *out = s;
  return CLIPCL_OK;
}

clipcl_status clipcl_server_start(clipcl_model *m, clipcl_tokenizer *tk, clipcl_index *const *ix,
                                  const char *const *names, int n, const clipcl_server_options *opt,
                                  clipcl_server **out) {
  if (!m) {
    if (out) *out = NULL;
    return cc_fail(CLIPCL_ERR_ARG, "server: needs a model, a tokenizer and indexes");
  }
  return start(m, NULL, tk, ix, names, n, opt, out);
}

clipcl_status cc_server_start_encoder(const cc_server_encoder *enc, clipcl_tokenizer *tk, clipcl_index *const *ix,
                                      const char *const *names, int n, const clipcl_server_options *opt,
                                      clipcl_server **out) {
  if (!enc) {
    if (out) *out = NULL;
    return cc_fail(CLIPCL_ERR_ARG, "server: no encoder");
  }
  return start(NULL, enc, tk, ix, names, n, opt, out);
}

int clipcl_server_port(const clipcl_server *s) { return s ? s->port : 0; }

void clipcl_server_stop(clipcl_server *s) {
  if (!s) return;
  if (s->d) MHD_stop_daemon(s->d);
  server_free(s);
}

/* run.c: evaluations of a model on a data set, from files to metrics:
 * encoding a data set's images (the loader in evaluation mode), image files
 * and texts; the zero-shot run (classifier from class names x templates,
 * images ranked against it); the retrieval run on a caption manifest (rows
 * grouped by image path); the data set fingerprint and the feature cache
 * built on it. Not here: the metrics and ranking themselves (zeroshot.c,
 * retrieval.c, probe.c), report files (zeroshot_report.c), search (src/search/),
 * printing (the CLI's job).
 */
#define _DEFAULT_SOURCE /* strdup, realpath, st_mtim */
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
#include "util/error.h"

/* texts per encoder call: bounds the ids and embeddings held at once */
#define TEXT_BATCH 256

void clipcl_eval_options_init(clipcl_eval_options *o) {
  memset(o, 0, sizeof *o);
  o->batch = 64;
  o->max_bad_fraction = 0.01;
}

static clipcl_eval_options opts_or_default(const clipcl_eval_options *o) {
  clipcl_eval_options d;
  clipcl_eval_options_init(&d);
  if (!o) return d;
  d = *o;
  if (d.batch < 1) d.batch = 64;
  return d;
}

static void report_bad(const clipcl_eval_options *o, const char *source, const char *reason, clipcl_status st,
                       int64_t index) {
  if (!o->on_bad) return;
  clipcl_bad_sample b = {source, reason, st, 0, index};
  o->on_bad(o->user, &b);
}

static void free_strings(char **v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

/* Returns p grown to hold at least need elements of size sz (doubling
 * *cap); when that fails, sets *failed and returns p unchanged. */
static void *grow(void *p, size_t *cap, size_t need, size_t sz, int *failed) {
  if (need <= *cap || *failed) return p;
  size_t c = *cap ? *cap : 256;
  while (c < need) {
    if (c > SIZE_MAX / 2 / sz) {
      *failed = 1;
      return p;
    }
    c *= 2;
  }
  void *q = realloc(p, c * sz);
  if (!q) {
    *failed = 1;
    return p;
  }
  *cap = c;
  return q;
}
#define GROW(p, cap, need, failed) ((p) = grow((p), &(cap), (need), sizeof *(p), (failed)))

/* ---- encoding ----------------------------------------------------------- */
void clipcl_image_features_free(clipcl_image_features *f) {
  if (!f) return;
  free(f->emb);
  free(f->labels);
  free(f->rows);
  free_strings(f->paths, f->n);
  memset(f, 0, sizeof *f);
}

clipcl_status clipcl_encode_dataset(clipcl_model *m, clipcl_dataset *ds, const clipcl_eval_options *opt,
                                    clipcl_image_features *out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "encode data set: no output");
  memset(out, 0, sizeof *out);
  if (!m || !ds) return cc_fail(CLIPCL_ERR_ARG, "encode data set: no model or data set");
  clipcl_eval_options o = opts_or_default(opt);
  const clipcl_config *c = clipcl_model_config(m);
  int S = c->vision.image_size, E = c->embed_dim, B = o.batch;
  size_t plane = (size_t)3 * S * S;
  if ((size_t)B > SIZE_MAX / sizeof(float) / plane) return cc_fail(CLIPCL_ERR_ARG, "encode data set: batch too large");

  clipcl_loader_options lo;
  clipcl_loader_options_init(&lo);
  lo.batch_size = B;
  lo.image_size = S;
  lo.context_length = c->text.context_length;
  lo.workers = o.workers;
  lo.training = 0;
  lo.augment = 0;
  lo.max_bad_fraction = o.max_bad_fraction;
  lo.on_bad = o.on_bad;
  lo.user = o.user;
  clipcl_loader *l;
  CC_TRY(clipcl_loader_create(ds, &lo, &l));

  int labelled = clipcl_dataset_has_labels(ds);
  float *px = malloc((size_t)B * plane * sizeof *px);
  int32_t *lab = malloc((size_t)B * sizeof *lab);
  int64_t *rows = malloc((size_t)B * sizeof *rows);
  clipcl_image_features f = {.dim = E};
  size_t cap_e = 0, cap_l = 0, cap_r = 0, cap_p = 0;
  clipcl_status st = px && lab && rows ? CLIPCL_OK : cc_fail(CLIPCL_ERR_NOMEM, "encode data set: out of memory");
  int64_t total = clipcl_dataset_size(ds);
  while (!st) {
    clipcl_batch b = {.images = px, .labels = labelled ? lab : NULL, .rows = rows};
    if ((st = clipcl_loader_next(l, &b))) break;
    if (b.n == 0) break;
    size_t need = f.n + (size_t)b.n;
    int grow_failed = need > SIZE_MAX / sizeof(float) / (size_t)E;
    if (!grow_failed) {
      GROW(f.emb, cap_e, need * (size_t)E, &grow_failed);
      if (labelled) GROW(f.labels, cap_l, need, &grow_failed);
      GROW(f.rows, cap_r, need, &grow_failed);
      GROW(f.paths, cap_p, need, &grow_failed);
    }
    if (grow_failed) {
      st = cc_fail(CLIPCL_ERR_NOMEM, "encode data set: out of memory after %zu images", f.n);
      break;
    }
    if ((st = clipcl_model_encode_images(m, px, b.n, f.emb + f.n * (size_t)E))) break;
    for (int i = 0; i < b.n && !st; i++) {
      if (labelled) f.labels[f.n] = lab[i];
      f.rows[f.n] = rows[i];
      f.paths[f.n] = NULL;
      if (rows[i] >= 0 && (uint64_t)rows[i] < ds->nrows && !(f.paths[f.n] = cc_row_path(ds, &ds->rows[rows[i]])))
        st = cc_fail(CLIPCL_ERR_NOMEM, "encode data set: out of memory");
      f.n++;
    }
    if (o.progress) o.progress(o.user, "images", (int64_t)f.n, total);
  }
  int64_t seen = 0;
  clipcl_loader_counters(l, &seen, &f.bad);
  clipcl_loader_free(l);
  free(px), free(lab), free(rows);
  if (!st && f.n == 0)
    st = cc_fail(CLIPCL_ERR_FORMAT, "%s: no readable images (%lld bad samples)", ds->spec, (long long)f.bad);
  if (st) {
    clipcl_image_features_free(&f);
    return st;
  }
  *out = f;
  return CLIPCL_OK;
}

/* Files by path (paths) or any image sources (sources): one of the two. */
static clipcl_status encode_images(clipcl_model *m, const char *const *paths, const clipcl_image_source *sources,
                                   size_t n, const clipcl_eval_options *opt, float *emb, uint8_t *ok,
                                   size_t *n_bad) {
  if (n_bad) *n_bad = 0;
  if (!m || (n && ((!paths && !sources) || !emb))) return cc_fail(CLIPCL_ERR_ARG, "encode images: bad arguments");
  if (n == 0) return CLIPCL_OK;
  clipcl_eval_options o = opts_or_default(opt);
  const clipcl_config *c = clipcl_model_config(m);
  int S = c->vision.image_size, E = c->embed_dim, B = o.batch;
  size_t plane = (size_t)3 * S * S;
  if ((size_t)B > SIZE_MAX / sizeof(float) / plane || n > SIZE_MAX / sizeof(float) / (size_t)E)
    return cc_fail(CLIPCL_ERR_ARG, "encode images: sizes overflow");
  float *px = malloc((size_t)B * plane * sizeof *px), *tmp = malloc((size_t)B * E * sizeof *tmp);
  clipcl_image_source *src = calloc((size_t)B, sizeof *src);
  clipcl_status *ist = calloc((size_t)B, sizeof *ist);
  int *good = malloc((size_t)B * sizeof *good);
  clipcl_status st = px && tmp && src && ist && good ? CLIPCL_OK : cc_fail(CLIPCL_ERR_NOMEM, "encode images: out of memory");
  size_t bad = 0;
  for (size_t i = 0; i < n && !st; i += (size_t)B) {
    int b = n - i < (size_t)B ? (int)(n - i) : B, nf = 0, ng = 0;
    for (int j = 0; j < b; j++) {
      src[j] = paths ? (clipcl_image_source){paths[i + j], NULL, 0, NULL} : sources[i + j];
      if (!src[j].path && !src[j].data) {
        st = cc_fail(CLIPCL_ERR_ARG, "encode images: image %zu has no path or data", i + j);
        break;
      }
    }
    if (st || (st = clipcl_image_batch(src, b, S, NULL, o.workers, px, ist, &nf))) break;
    for (int j = 0; j < b; j++) {
      if (ist[j] == CLIPCL_OK) {
        if (ng != j) memmove(px + (size_t)ng * plane, px + (size_t)j * plane, plane * sizeof *px);
        good[ng++] = j;
        continue;
      }
      /* the batch keeps only the first message: load again for this one's */
      clipcl_image img;
      const char *name = src[j].path ? src[j].path : src[j].name ? src[j].name : "<memory>";
      if ((src[j].path ? clipcl_image_load(src[j].path, &img)
                       : clipcl_image_decode(src[j].data, src[j].len, name, &img)) == CLIPCL_OK)
        clipcl_image_free(&img);
      const char *why = clipcl_last_error();
      size_t pl = strlen(name);
      if (!strncmp(why, name, pl) && !strncmp(why + pl, ": ", 2)) why += pl + 2; /* named already */
      report_bad(&o, name, why, ist[j], (int64_t)(i + j));
      memset(emb + (i + j) * (size_t)E, 0, (size_t)E * sizeof *emb);
      if (ok) ok[i + j] = 0;
      bad++;
    }
    if (ng && (st = clipcl_model_encode_images(m, px, ng, tmp))) break;
    for (int g = 0; g < ng; g++) {
      memcpy(emb + (i + good[g]) * (size_t)E, tmp + (size_t)g * E, (size_t)E * sizeof *emb);
      if (ok) ok[i + good[g]] = 1;
    }
    if (o.progress) o.progress(o.user, "images", (int64_t)(i + b), (int64_t)n);
  }
  free(px), free(tmp), free(src), free(ist), free(good);
  if (!st && n_bad) *n_bad = bad;
  if (!st) cc_clear_error();
  return st;
}

clipcl_status clipcl_encode_image_files(clipcl_model *m, const char *const *paths, size_t n,
                                        const clipcl_eval_options *opt, float *emb, uint8_t *ok, size_t *n_bad) {
  return encode_images(m, paths, NULL, n, opt, emb, ok, n_bad);
}

clipcl_status clipcl_encode_image_sources(clipcl_model *m, const clipcl_image_source *sources, size_t n,
                                          const clipcl_eval_options *opt, float *emb, uint8_t *ok, size_t *n_bad) {
  return encode_images(m, NULL, sources, n, opt, emb, ok, n_bad);
}

clipcl_status clipcl_encode_texts(clipcl_model *m, clipcl_tokenizer *tk, const char *const *texts, size_t n,
                                  const clipcl_eval_options *opt, float *emb) {
  if (n == 0) return CLIPCL_OK;
  if (!m || !tk || !texts || !emb) return cc_fail(CLIPCL_ERR_ARG, "encode texts: bad arguments");
  clipcl_eval_options o = opts_or_default(opt);
  const clipcl_config *c = clipcl_model_config(m);
  int T = c->text.context_length, E = c->embed_dim, V = c->text.vocab_size;
  if (n > SIZE_MAX / sizeof(float) / (size_t)E) return cc_fail(CLIPCL_ERR_ARG, "encode texts: sizes overflow");
  int32_t *ids = malloc((size_t)TEXT_BATCH * T * sizeof *ids);
  if (!ids) return cc_fail(CLIPCL_ERR_NOMEM, "encode texts: out of memory");
  clipcl_status st = CLIPCL_OK;
  for (size_t i = 0; i < n && !st; i += TEXT_BATCH) {
    int b = n - i < TEXT_BATCH ? (int)(n - i) : TEXT_BATCH;
    for (int j = 0; j < b && !st; j++) {
      const char *t = texts[i + j];
      int32_t *row = ids + (size_t)j * T;
      if (!t) {
        st = cc_fail(CLIPCL_ERR_ARG, "encode texts: text %zu is NULL", i + j);
      } else if ((st = clipcl_tokenize(tk, t, T, row, NULL))) {
        cc_fail_ctx(st, "text %zu", i + j);
      } else {
        for (int k = 0; k < T; k++)
          if (row[k] < 0 || row[k] >= V) {
            st = cc_fail(CLIPCL_ERR_ARG, "text %zu (\"%.80s\"): token id %d is beyond the model's vocabulary of %d",
                         i + j, t, row[k], V);
            break;
          }
      }
    }
    if (!st) st = clipcl_model_encode_texts(m, ids, b, emb + i * (size_t)E);
    if (!st && o.progress) o.progress(o.user, "texts", (int64_t)(i + b), (int64_t)n);
  }
  free(ids);
  return st;
}

/* ---- zero-shot ------------------------------------------------------------- */
void clipcl_zeroshot_result_free(clipcl_zeroshot_result *r) {
  if (!r) return;
  clipcl_zeroshot_metrics_free(&r->metrics);
  free_strings(r->classnames, (size_t)r->classes);
  free(r->labels);
  free(r->topk);
  free(r->topk_score);
  free_strings(r->paths, r->n);
  free(r->class_emb);
  free(r->image_emb);
  memset(r, 0, sizeof *r);
}

/* The class texts: the list given, or the folder names with '_' as ' '. */
static clipcl_status class_texts(clipcl_dataset *ds, const clipcl_text_list *given, char ***out, int *classes) {
  *out = NULL;
  *classes = 0;
  int folder = clipcl_dataset_kind(ds) == CLIPCL_DATA_FOLDER;
  int nc = clipcl_dataset_num_classes(ds);
  if (!clipcl_dataset_has_labels(ds) || nc < 1)
    return cc_fail(CLIPCL_ERR_ARG, "%s: zero-shot classification needs labels: an image folder with one "
                                   "sub-folder per class, or a CSV with a label column", ds->spec);
  if (given && (given->n < 1 || !given->items)) return cc_fail(CLIPCL_ERR_ARG, "zero-shot: empty class-name list");
  if (folder && given && given->n != nc)
    return cc_fail(CLIPCL_ERR_ARG, "%s has %d class folders but %d class names were given (one per folder, in "
                                   "sorted folder order)", ds->spec, nc, given->n);
  if (!folder && !given)
    return cc_fail(CLIPCL_ERR_ARG, "%s: a CSV data set needs class names (line k names label k)", ds->spec);
  if (!folder && given->n < nc)
    return cc_fail(CLIPCL_ERR_ARG, "%s has label %d but only %d class names were given", ds->spec, nc - 1, given->n);
  int n = given ? given->n : nc;
  char **names = calloc((size_t)n, sizeof *names);
  if (!names) return cc_fail(CLIPCL_ERR_NOMEM, "zero-shot: out of memory");
  for (int i = 0; i < n; i++) {
    const char *s = given ? given->items[i] : clipcl_dataset_class_name(ds, i);
    if (!s || !(names[i] = strdup(s))) {
      free_strings(names, (size_t)i);
      return cc_fail(CLIPCL_ERR_NOMEM, "zero-shot: out of memory");
    }
    if (!given)
      for (char *p = names[i]; *p; p++)
        if (*p == '_') *p = ' ';
  }
  if (!given) /* two folders may read the same once '_' is a space */
    for (int i = 0; i < n; i++)
      for (int j = 0; j < i; j++)
        if (!strcmp(names[i], names[j])) {
          clipcl_status st = cc_fail(CLIPCL_ERR_ARG, "%s: class folders %s and %s both read \"%s\"; give class names",
                                     ds->spec, clipcl_dataset_class_name(ds, j), clipcl_dataset_class_name(ds, i),
                                     names[i]);
          free_strings(names, (size_t)n);
          return st;
        }
  *out = names;
  *classes = n;
  return CLIPCL_OK;
}

/* class_emb[classes x E] from every class x template, a slice of classes at a time. */
static clipcl_status build_classifier(clipcl_model *m, clipcl_tokenizer *tk, char *const *names, int classes,
                                      const clipcl_text_list *tl, const clipcl_eval_options *o, float *class_emb) {
  int T = tl->n, E = clipcl_model_config(m)->embed_dim;
  int per = TEXT_BATCH / T > 0 ? TEXT_BATCH / T : 1; /* classes per slice */
  size_t cap = (size_t)per * T;
  char **texts = calloc(cap, sizeof *texts);
  float *temb = malloc(cap * (size_t)E * sizeof *temb);
  clipcl_status st = texts && temb ? CLIPCL_OK : cc_fail(CLIPCL_ERR_NOMEM, "zero-shot: out of memory");
  clipcl_eval_options so = *o;
  so.progress = NULL; /* slices would report as separate runs */
  for (int c0 = 0; c0 < classes && !st; c0 += per) {
    int nc = classes - c0 < per ? classes - c0 : per;
    size_t nt = 0;
    for (int c = 0; c < nc && !st; c++)
      for (int t = 0; t < T && !st; t++)
        if ((st = clipcl_template_format(tl->items[t], names[c0 + c], &texts[nt++])))
          cc_fail_ctx(st, "zero-shot: class \"%s\", template \"%s\"", names[c0 + c], tl->items[t]);
    if (!st && (st = clipcl_encode_texts(m, tk, (const char *const *)texts, nt, &so, temb)))
      cc_fail_ctx(st, "zero-shot prompts of classes %d..%d", c0, c0 + nc - 1);
    if (!st) st = clipcl_zeroshot_classifier(temb, nc, T, E, class_emb + (size_t)c0 * E);
    for (size_t i = 0; i < nt; i++) free(texts[i]), texts[i] = NULL;
    if (!st && o->progress) o->progress(o->user, "texts", (int64_t)(c0 + nc) * T, (int64_t)classes * T);
  }
  free(texts);
  free(temb);
  return st;
}

clipcl_status clipcl_zeroshot_run(clipcl_model *m, clipcl_tokenizer *tk, clipcl_dataset *ds,
                                  const clipcl_text_list *classnames, const clipcl_text_list *templates,
                                  const clipcl_eval_options *opt, clipcl_zeroshot_result *out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "zero-shot: no output");
  memset(out, 0, sizeof *out);
  if (!m || !tk || !ds) return cc_fail(CLIPCL_ERR_ARG, "zero-shot: no model, tokenizer or data set");
  clipcl_eval_options o = opts_or_default(opt);
  clipcl_text_list deflt = {0}, tl;
  if (templates) {
    if (templates->n < 1 || !templates->items) return cc_fail(CLIPCL_ERR_ARG, "zero-shot: empty template list");
    tl = *templates;
  } else {
    static const char def[] = CLIPCL_DEFAULT_TEMPLATE;
    CC_TRY(clipcl_text_list_parse(def, sizeof def - 1, "default template", CLIPCL_LIST_TEMPLATES, &deflt));
    tl = deflt;
  }
  clipcl_zeroshot_result r = {.dim = clipcl_model_config(m)->embed_dim, .templates = tl.n};
  int E = r.dim;
  clipcl_image_features f = {0};
  clipcl_status st = class_texts(ds, classnames, &r.classnames, &r.classes);
  if (!st && !(r.class_emb = malloc((size_t)r.classes * E * sizeof *r.class_emb)))
    st = cc_fail(CLIPCL_ERR_NOMEM, "zero-shot: out of memory");
  if (!st) st = build_classifier(m, tk, r.classnames, r.classes, &tl, &o, r.class_emb);
  if (!st) st = clipcl_encode_dataset(m, ds, &o, &f);
  if (!st) {
    r.n = f.n;
    r.bad = f.bad;
    r.k = r.classes < 5 ? r.classes : 5;
    r.labels = f.labels, f.labels = NULL;
    r.paths = f.paths, f.paths = NULL;
    if (r.n > SIZE_MAX / sizeof(float) / (size_t)r.k ||
        !(r.topk = malloc(r.n * r.k * sizeof *r.topk)) || !(r.topk_score = malloc(r.n * r.k * sizeof *r.topk_score)))
      st = cc_fail(CLIPCL_ERR_NOMEM, "zero-shot: out of memory");
  }
  if (!st) st = clipcl_topk(f.emb, f.n, r.class_emb, (size_t)r.classes, E, r.k, o.threads, r.topk, r.topk_score);
  if (!st) st = clipcl_zeroshot_metrics_compute(r.topk, r.k, r.labels, r.n, r.classes, &r.metrics);
  if (!st && o.keep_embeddings) r.image_emb = f.emb, f.emb = NULL;
  clipcl_image_features_free(&f);
  clipcl_text_list_free(&deflt);
  if (st) {
    clipcl_zeroshot_result_free(&r);
    return st;
  }
  *out = r;
  return CLIPCL_OK;
}

/* ---- retrieval ------------------------------------------------------------- */
void clipcl_retrieval_result_free(clipcl_retrieval_result *r) {
  if (!r) return;
  free_strings(r->image_paths, r->n_images);
  free(r->text_rows);
  free(r->text_image);
  free(r->image_emb);
  free(r->text_emb);
  memset(r, 0, sizeof *r);
}

static uint64_t fnv(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}
#define FNV_INIT 14695981039346656037ull

/* Open-addressing map from image path to image number (first appearance). */
typedef struct {
  size_t *slot; /* 0 empty, else image + 1 */
  size_t cap;
  char **paths; /* borrowed: the caller's image path array */
} path_map;

static size_t *map_find(path_map *pm, const char *p) {
  size_t i = fnv(FNV_INIT, p, strlen(p)) & (pm->cap - 1);
  while (pm->slot[i] && strcmp(pm->paths[pm->slot[i] - 1], p) != 0) i = (i + 1) & (pm->cap - 1);
  return &pm->slot[i];
}

clipcl_status clipcl_retrieval_run(clipcl_model *m, clipcl_tokenizer *tk, clipcl_dataset *ds,
                                   const clipcl_eval_options *opt, clipcl_retrieval_result *out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "retrieval: no output");
  memset(out, 0, sizeof *out);
  if (!m || !tk || !ds) return cc_fail(CLIPCL_ERR_ARG, "retrieval: no model, tokenizer or data set");
  if (clipcl_dataset_kind(ds) != CLIPCL_DATA_CSV || !clipcl_dataset_has_captions(ds))
    return cc_fail(CLIPCL_ERR_ARG, "%s: retrieval needs a CSV/TSV manifest of image paths and captions", ds->spec);
  clipcl_eval_options o = opts_or_default(opt);
  int E = clipcl_model_config(m)->embed_dim, T = clipcl_model_config(m)->text.context_length;
  size_t nrows = ds->nrows;
  if (nrows == 0) return cc_fail(CLIPCL_ERR_FORMAT, "%s: no rows", ds->spec);
  if (nrows > INT32_MAX || nrows > SIZE_MAX / sizeof(float) / (size_t)E)
    return cc_fail(CLIPCL_ERR_ARG, "%s: too many rows (%zu)", ds->spec, nrows);

  clipcl_retrieval_result r = {.dim = E};
  path_map pm = {.cap = 16};
  while (pm.cap < 2 * nrows) pm.cap *= 2;
  int32_t *row_image = malloc(nrows * sizeof *row_image); /* -1: row dropped */
  int32_t *ids = malloc((size_t)T * sizeof *ids);
  pm.slot = calloc(pm.cap, sizeof *pm.slot);
  r.image_paths = calloc(nrows, sizeof *r.image_paths);
  pm.paths = r.image_paths;
  clipcl_status st = row_image && ids && pm.slot && r.image_paths ? CLIPCL_OK
                                                                  : cc_fail(CLIPCL_ERR_NOMEM, "retrieval: out of memory");
  char src[1024], why[1024];
  /* pass 1: check each row and caption, number the images */
  for (size_t i = 0; i < nrows && !st; i++) {
    const cc_row *row = &ds->rows[i];
    const char *cap = ds->arena + row->caption;
    clipcl_status bs = CLIPCL_ERR_FORMAT;
    row_image[i] = -1;
    if (row->flaw) {
      cc_row_flaw_text(ds, row, why, sizeof why);
    } else if (row->caption_len != strlen(cap)) {
      snprintf(why, sizeof why, "caption holds a NUL byte");
    } else if (cc_blank(cap, row->caption_len)) {
      snprintf(why, sizeof why, "empty caption");
    } else if ((bs = clipcl_tokenize(tk, cap, T, ids, NULL)) != CLIPCL_OK) {
      snprintf(why, sizeof why, "caption: %s", clipcl_last_error());
    } else {
      char *p = cc_row_path(ds, row);
      if (!p) {
        st = cc_fail(CLIPCL_ERR_NOMEM, "retrieval: out of memory");
        break;
      }
      size_t *s = map_find(&pm, p);
      if (*s) {
        free(p);
      } else {
        r.image_paths[r.n_images] = p;
        *s = ++r.n_images;
      }
      row_image[i] = (int32_t)(*s - 1);
      continue;
    }
    r.bad_rows++;
    report_bad(&o, cc_row_source(ds, i, src, sizeof src), why, bs, (int64_t)i);
  }
  /* the images, once each; an unreadable one drops its captions */
  float *img = NULL;
  uint8_t *ok = NULL;
  int32_t *renum = NULL;
  if (!st && r.n_images == 0) st = cc_fail(CLIPCL_ERR_FORMAT, "%s: no usable rows", ds->spec);
  if (!st && (!(img = malloc(r.n_images * (size_t)E * sizeof *img)) || !(ok = malloc(r.n_images)) ||
              !(renum = malloc(r.n_images * sizeof *renum))))
    st = cc_fail(CLIPCL_ERR_NOMEM, "retrieval: out of memory");
  size_t nbad_img = 0;
  if (!st) st = clipcl_encode_image_files(m, (const char *const *)r.image_paths, r.n_images, &o, img, ok, &nbad_img);
  if (!st) {
    size_t kept = 0;
    for (size_t i = 0; i < r.n_images; i++) {
      if (!ok[i]) {
        renum[i] = -1;
        free(r.image_paths[i]);
        continue;
      }
      renum[i] = (int32_t)kept;
      if (kept != i) memmove(img + kept * E, img + i * E, (size_t)E * sizeof *img);
      r.image_paths[kept++] = r.image_paths[i];
    }
    r.bad_images = (int64_t)nbad_img;
    r.n_images = kept;
    for (size_t i = 0; i < nrows; i++) {
      if (row_image[i] < 0) continue;
      row_image[i] = renum[row_image[i]];
      if (row_image[i] < 0) r.bad_rows++;
      else r.n_texts++;
    }
    if ((double)r.bad_rows > o.max_bad_fraction * (double)nrows)
      st = cc_fail(CLIPCL_ERR_FORMAT, "%s: %lld of %zu rows unusable, more than the allowed fraction %g (%lld "
                                      "unreadable images)", ds->spec, (long long)r.bad_rows, nrows,
                   o.max_bad_fraction, (long long)r.bad_images);
    else if (r.n_texts == 0)
      st = cc_fail(CLIPCL_ERR_FORMAT, "%s: no usable rows", ds->spec);
  }
  /* the captions, in row order */
  const char **caps = NULL;
  if (!st && (!(caps = malloc(r.n_texts * sizeof *caps)) || !(r.text_rows = malloc(r.n_texts * sizeof *r.text_rows)) ||
              !(r.text_image = malloc(r.n_texts * sizeof *r.text_image)) ||
              !(r.text_emb = malloc(r.n_texts * (size_t)E * sizeof *r.text_emb))))
    st = cc_fail(CLIPCL_ERR_NOMEM, "retrieval: out of memory");
  if (!st) {
    size_t t = 0;
    for (size_t i = 0; i < nrows; i++) {
      if (row_image[i] < 0) continue;
      caps[t] = ds->arena + ds->rows[i].caption;
      r.text_rows[t] = (int64_t)i;
      r.text_image[t++] = row_image[i];
    }
    st = clipcl_encode_texts(m, tk, caps, r.n_texts, &o, r.text_emb);
  }
  if (!st)
    st = clipcl_retrieval_eval(img, r.n_images, r.text_emb, r.n_texts, E, r.text_image, o.threads, &r.metrics, NULL, NULL);
  if (!st && o.keep_embeddings) {
    r.image_emb = img, img = NULL;
  } else {
    free(r.text_emb);
    r.text_emb = NULL;
  }
  free(caps);
  free(img), free(ok), free(renum);
  free(row_image), free(ids), free(pm.slot);
  if (st) {
    /* only the first n_images paths are live (the rest were moved or freed) */
    clipcl_retrieval_result_free(&r);
    return st;
  }
  *out = r;
  return CLIPCL_OK;
}

/* ---- fingerprint and feature cache ---------------------------------------- */
static uint64_t fnv_stat(uint64_t h, const char *path) {
  struct stat sb;
  if (stat(path, &sb) != 0) {
    int e = errno;
    return fnv(h, &e, sizeof e);
  }
  int64_t v[3] = {(int64_t)sb.st_size, (int64_t)sb.st_mtim.tv_sec, (int64_t)sb.st_mtim.tv_nsec};
  return fnv(h, v, sizeof v);
}

/* the resolved absolute path, so "./a/x.png" and "a/x.png" hash alike; a
 * path that does not resolve (missing) is hashed as given, with the cwd */
static uint64_t fnv_abs(uint64_t h, const char *cwd, const char *p) {
  char real[PATH_MAX];
  if (realpath(p, real)) return fnv(h, real, strlen(real) + 1);
  if (p[0] != '/') {
    h = fnv(h, cwd, strlen(cwd));
    h = fnv(h, "/", 1);
  }
  return fnv(h, p, strlen(p) + 1);
}

clipcl_status clipcl_dataset_fingerprint(clipcl_dataset *ds, char out[17]) {
  if (!ds || !out) return cc_fail(CLIPCL_ERR_ARG, "fingerprint: no data set");
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) return cc_fail(CLIPCL_ERR_IO, "fingerprint: cannot read the working directory");
  uint64_t h = FNV_INIT;
  int32_t kind = (int32_t)ds->kind;
  h = fnv(h, &kind, sizeof kind);
  if (ds->kind == CLIPCL_DATA_TAR) {
    for (int i = 0; i < ds->nshards; i++) {
      h = fnv_abs(h, cwd, ds->shards[i]);
      h = fnv_stat(h, ds->shards[i]);
    }
  } else {
    for (size_t i = 0; i < ds->nrows; i++) {
      char *p = cc_row_path(ds, &ds->rows[i]);
      if (!p) return cc_fail(CLIPCL_ERR_NOMEM, "fingerprint: out of memory");
      h = fnv_abs(h, cwd, p);
      h = fnv(h, &ds->rows[i].label, sizeof ds->rows[i].label);
      h = fnv_stat(h, p);
      free(p);
    }
  }
  snprintf(out, 17, "%016llx", (unsigned long long)h);
  return CLIPCL_OK;
}

/* A readable file-name part from the spec's last two path components,
 * extension dropped: "synth-train" for "data/synth/train.csv/"; characters
 * other than [A-Za-z0-9_-] become '_'. */
static void data_name(const char *spec, char *out, size_t cap) {
  size_t n = strlen(spec);
  while (n > 1 && spec[n - 1] == '/') n--;
  size_t b = n;
  while (b > 0 && spec[b - 1] != '/') b--;
  const char *dot = memchr(spec + b, '.', n - b);
  size_t e = dot && dot > spec + b ? (size_t)(dot - spec) : n;
  size_t p = b > 0 ? b - 1 : 0; /* the parent component ends at p */
  while (p > 0 && spec[p - 1] == '/') p--;
  size_t pb = p;
  while (pb > 0 && spec[pb - 1] != '/') pb--;
  size_t w = 0;
  for (int part = 0; part < 2; part++) {
    size_t s0 = part ? b : pb, s1 = part ? e : p;
    if (s1 <= s0 || (s1 - s0 == 1 && spec[s0] == '.') || (s1 - s0 == 2 && !strncmp(spec + s0, "..", 2))) continue;
    if (w && w + 1 < cap) out[w++] = '-';
    for (size_t i = s0; i < s1 && w + 1 < cap && w < 48; i++) {
      char ch = spec[i];
      int safe = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
      out[w++] = safe ? ch : '_';
    }
  }
  if (w == 0) w = (size_t)snprintf(out, cap, "data");
  out[w] = 0;
}

clipcl_status clipcl_encode_dataset_cached(clipcl_model *m, const char *model_id, clipcl_dataset *ds,
                                           const char *cache_dir, const clipcl_eval_options *o,
                                           clipcl_image_features *out, int *hit) {
  if (hit) *hit = 0;
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "feature cache: no output");
  memset(out, 0, sizeof *out);
  if (!cache_dir) return clipcl_encode_dataset(m, ds, o, out);
  if (!m || !ds || !model_id || !*cache_dir) return cc_fail(CLIPCL_ERR_ARG, "feature cache: bad arguments");
  char fp[17], name[64];
  CC_TRY(clipcl_dataset_fingerprint(ds, fp));
  const clipcl_config *c = clipcl_model_config(m);
  size_t idl = strlen(model_id) + 128;
  char *identity = malloc(idl);
  if (!identity) return cc_fail(CLIPCL_ERR_NOMEM, "feature cache: out of memory");
  snprintf(identity, idl, "model %s; data %s; image %d; eval preprocessing", model_id, fp, c->vision.image_size);
  data_name(ds->spec, name, sizeof name);
  size_t pl = strlen(cache_dir) + sizeof name + 32;
  char *prefix = malloc(pl);
  if (!prefix) {
    free(identity);
    return cc_fail(CLIPCL_ERR_NOMEM, "feature cache: out of memory");
  }
  snprintf(prefix, pl, "%s/%s-%016llx", cache_dir, name,
           (unsigned long long)fnv(FNV_INIT, identity, strlen(identity)));
  clipcl_status st = CLIPCL_OK;
  if (mkdir(cache_dir, 0777) != 0 && errno != EEXIST)
    st = cc_fail(CLIPCL_ERR_IO, "%s: cannot create the cache directory: %s", cache_dir, strerror(errno));
  int h = 0, labelled = clipcl_dataset_has_labels(ds);
  if (!st) {
    float *X = NULL;
    int32_t *lab = NULL;
    size_t n = 0;
    int dim = 0;
    st = clipcl_features_load(prefix, identity, &X, labelled ? &lab : NULL, &n, &dim, &h);
    if (!st && h && (dim != c->embed_dim || (labelled && !lab) || n == 0)) {
      st = cc_fail(CLIPCL_ERR_FORMAT, "%s.json: cached features do not fit the model (dim %d, %zu rows%s)", prefix,
                   dim, n, labelled && !lab ? ", no labels" : "");
    }
    if (!st && h) {
      out->n = n;
      out->dim = dim;
      out->emb = X, X = NULL;
      out->labels = lab, lab = NULL;
    }
    free(X);
    free(lab);
  }
  if (!st && !h) {
    st = clipcl_encode_dataset(m, ds, o, out);
    if (!st && (st = clipcl_features_save(prefix, identity, out->emb, out->labels, out->n, out->dim)))
      clipcl_image_features_free(out);
  }
  free(prefix);
  free(identity);
  if (!st && hit) *hit = h;
  return st;
}

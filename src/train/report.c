/* report.c: see report.h. */
#define _DEFAULT_SOURCE /* realpath */
#include "train/report.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/atomic.h"
#include "train/plot.h"
#include "util/buf.h"
#include "util/error.h"

void cc_report_init(cc_report *r) { memset(r, 0, sizeof *r); }

void cc_report_free(cc_report *r) {
  free(r->loss);
  free(r->val);
  free(r->zs);
  if (r->have_last) clipcl_zeroshot_result_free(&r->last);
  free(r->config_json);
  memset(r, 0, sizeof *r);
}

static void push(cc_point **v, size_t *n, size_t *cap, cc_point p) {
  if (*n == *cap) {
    size_t nc = *cap ? 2 * *cap : 256;
    cc_point *nv = realloc(*v, nc * sizeof *nv);
    if (!nv) return;
    *v = nv;
    *cap = nc;
  }
  (*v)[(*n)++] = p;
}

static void push_zs(cc_report *r, cc_zs_point p) {
  if (r->nzs == r->cap_zs) {
    size_t nc = r->cap_zs ? 2 * r->cap_zs : 16;
    cc_zs_point *nv = realloc(r->zs, nc * sizeof *nv);
    if (!nv) return;
    r->zs = nv;
    r->cap_zs = nc;
  }
  r->zs[r->nzs++] = p;
}

void cc_report_add_loss(cc_report *r, long step, double loss) {
  push(&r->loss, &r->nloss, &r->cap_loss, (cc_point){step, 0, loss});
}

void cc_report_add_val(cc_report *r, long step, double epoch, double loss) {
  push(&r->val, &r->nval, &r->cap_val, (cc_point){step, epoch, loss});
}

clipcl_status cc_report_load_metrics(cc_report *r, const char *dir, long upto) {
  char path[4096];
  snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
  FILE *f = fopen(path, "r");
  if (!f) return CLIPCL_OK;
  size_t cap = 1 << 16, len = 0;
  char *keep = malloc(cap), line[8192];
  while (keep && fgets(line, sizeof line, f)) {
    json_t *j = json_loads(line, 0, NULL);
    if (!j) continue;
    long step = (long)json_integer_value(json_object_get(j, "step"));
    const char *type = json_string_value(json_object_get(j, "type"));
    if (step <= upto) {
      size_t l = strlen(line);
      if (len + l + 1 > cap) {
        char *nk = realloc(keep, cap = 2 * (len + l + 1));
        if (!nk) break;
        keep = nk;
      }
      memcpy(keep + len, line, l);
      len += l;
      double v = json_number_value(json_object_get(j, type && !strcmp(type, "val") ? "val_loss" : "loss"));
      if (type && !strcmp(type, "train")) cc_report_add_loss(r, step, v);
      if (type && !strcmp(type, "val"))
        push(&r->val, &r->nval, &r->cap_val,
             (cc_point){step, json_number_value(json_object_get(j, "epoch")), v});
      if (type && !strcmp(type, "zeroshot")) push_zs(r, (cc_zs_point){step, json_number_value(json_object_get(j, "epoch")),
             json_number_value(json_object_get(j, "top1")), json_number_value(json_object_get(j, "top5")),
             json_number_value(json_object_get(j, "chance"))});
    }
    json_decref(j);
  }
  fclose(f);
  clipcl_status st = keep ? cc_atomic_write_file(path, keep, len)
                          : cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory reading the metrics", path);
  free(keep);
  cc_atomic_remove_stale(dir); /* of a run killed writing metrics.jsonl or the model */
  return st;
}

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

clipcl_status cc_report_zeroshot(cc_report *r, clipcl_model *m, clipcl_tokenizer *tok, const char *data,
                                 const char *classnames, const char *templates, int workers, long step,
                                 double epoch, clipcl_bad_sample_fn on_bad, void *user) {
  clipcl_dataset_options dop;
  clipcl_dataset_options_init(&dop);
  if (ends_with(data, ".csv") || ends_with(data, ".tsv")) dop.label_key = "label";
  clipcl_dataset *ds = NULL;
  clipcl_text_list names = {0, NULL}, tmpl = {0, NULL};
  clipcl_zeroshot_result res;
  memset(&res, 0, sizeof res);
  clipcl_status st = clipcl_dataset_open(data, &dop, &ds);
  if (!st && classnames) st = clipcl_text_list_load(classnames, CLIPCL_LIST_CLASSNAMES, &names);
  if (!st && templates) st = clipcl_templates_get(templates, &tmpl);
  if (!st) {
    clipcl_eval_options o;
    clipcl_eval_options_init(&o);
    o.workers = workers;
    o.keep_embeddings = 1;
    o.on_bad = on_bad;
    o.user = user;
    st = clipcl_zeroshot_run(m, tok, ds, classnames ? &names : NULL, templates ? &tmpl : NULL, &o, &res);
  }
  if (!st) {
    push_zs(r, (cc_zs_point){step, epoch, res.metrics.top1, res.metrics.top5, 1.0 / res.classes});
    if (r->have_last) clipcl_zeroshot_result_free(&r->last);
    r->last = res;
    r->have_last = 1;
  } else {
    cc_fail_ctx(st, "zero-shot evaluation on %s", data);
  }
  clipcl_text_list_free(&names);
  clipcl_text_list_free(&tmpl);
  clipcl_dataset_free(ds);
  return st;
}

static void html_escape(cc_buf *f, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
      case '<': cc_buf_str(f, "&lt;"); break;
      case '>': cc_buf_str(f, "&gt;"); break;
      case '&': cc_buf_str(f, "&amp;"); break;
      case '"': cc_buf_str(f, "&quot;"); break;
      default: cc_buf_add(f, s, 1);
    }
  }
}

/* Per-class accuracy of the last zero-shot run, and for a few classes the
 * images whose embeddings are closest to the class's text embedding. */
static void write_examples(cc_buf *f, const clipcl_zeroshot_result *z) {
  const clipcl_zeroshot_metrics *mt = &z->metrics;
  cc_buf_printf(f, "<h3>Per class (last evaluation, %zu images)</h3>\n<table><tr><th>class</th><th>images</th>"
             "<th>top-1</th></tr>\n", z->n);
  for (int c = 0; c < z->classes; c++) {
    cc_buf_printf(f, "<tr><td style=\"text-align:left\">");
    html_escape(f, z->classnames[c]);
    if (isnan(mt->per_class[c])) cc_buf_printf(f, "</td><td>0</td><td>-</td></tr>\n");
    else cc_buf_printf(f, "</td><td>%lld</td><td>%.1f%%</td></tr>\n", (long long)mt->support[c], 100 * mt->per_class[c]);
  }
  cc_buf_printf(f, "</table>\n");
  if (!z->image_emb || !z->class_emb || !z->n) return;
  cc_buf_printf(f, "<h3>Retrieved examples</h3>\n<p>For each class text, the four images of the evaluation set whose "
             "embeddings are most similar.</p>\n");
  int shown = z->classes < 6 ? z->classes : 6;
  for (int c = 0; c < shown; c++) {
    int best[4] = {-1, -1, -1, -1};
    float bs[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    for (size_t i = 0; i < z->n; i++) {
      float s = 0;
      for (int d = 0; d < z->dim; d++) s += z->image_emb[i * z->dim + d] * z->class_emb[(size_t)c * z->dim + d];
      for (int k = 0; k < 4; k++)
        if (s > bs[k]) {
          for (int j = 3; j > k; j--) {
            bs[j] = bs[j - 1];
            best[j] = best[j - 1];
          }
          bs[k] = s;
          best[k] = (int)i;
          break;
        }
    }
    cc_buf_printf(f, "<p><b>");
    html_escape(f, z->classnames[c]);
    cc_buf_printf(f, "</b><br>");
    for (int k = 0; k < 4 && best[k] >= 0; k++) {
      const char *p = z->paths ? z->paths[best[k]] : NULL;
      char abs[4096];
      if (!p || !realpath(p, abs)) continue;
      int hit = z->labels[best[k]] == c;
      cc_buf_printf(f, "<img class=\"t\" src=\"file://");
      html_escape(f, abs);
      cc_buf_printf(f, "\" alt=\"%.3f\" title=\"%.3f %s\" style=\"border:3px solid %s\">", bs[k], bs[k],
              hit ? "(correct class)" : "(other class)", hit ? "#3a3" : "#c33");
    }
    cc_buf_printf(f, "</p>\n");
  }
}

clipcl_status cc_report_write(cc_report *r, const char *dir, const char *title) {
  char path[4096];
  snprintf(path, sizeof path, "%s/loss.png", dir);
  size_t n = r->nloss;
  double *x = malloc((n + r->nval + 1) * sizeof *x), *y = malloc((n + r->nval + 1) * sizeof *y);
  double *ys = malloc((n + 1) * sizeof *ys), *vx = x + n, *vy = y + n;
  if (!x || !y || !ys) {
    free(x);
    free(y);
    free(ys);
    return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory for the report");
  }
  double ema = n ? r->loss[0].value : 0, a = fmin(0.3, fmax(0.02, 10.0 / (double)(n ? n : 1)));
  for (size_t i = 0; i < n; i++) {
    x[i] = (double)r->loss[i].step;
    y[i] = r->loss[i].value;
    ema = a * y[i] + (1 - a) * ema;
    ys[i] = ema;
  }
  for (size_t i = 0; i < r->nval; i++) {
    vx[i] = (double)r->val[i].step;
    vy[i] = r->val[i].value;
  }
  cc_series s[3] = {{x, y, n, {170, 200, 235}}, {x, ys, n, {20, 70, 160}}, {vx, vy, r->nval, {215, 80, 30}}};
  clipcl_status st = cc_plot_png(path, 720, 360, s, 3);
  free(x);
  free(y);
  free(ys);
  if (st) return st;
  snprintf(path, sizeof path, "%s/report.html", dir);
  cc_buf page = {0}, *f = &page;
  cc_buf_printf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>clipcl training: ");
  html_escape(f, title);
  cc_buf_printf(f, "</title>\n<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}"
             "img.t{width:96px;height:96px;image-rendering:pixelated;margin:2px}</style></head><body>\n");
  cc_buf_printf(f, "<h1>clipcl training: ");
  html_escape(f, title);
  cc_buf_printf(f, "</h1>\n");
  if (n)
    cc_buf_printf(f, "<p>%zu logged steps; loss %.4f at step %ld, %.4f at step %ld.</p>\n", n, r->loss[0].value,
            r->loss[0].step, r->loss[n - 1].value, r->loss[n - 1].step);
  cc_buf_printf(f, "<h2>Loss</h2>\n<p><img src=\"loss.png\" alt=\"loss curve\" width=\"720\" height=\"360\"><br>"
             "light blue: training loss per step; dark blue: its moving average; orange: validation loss.</p>\n");
  if (r->nval) {
    cc_buf_printf(f, "<table><tr><th>step</th><th>epoch</th><th>validation loss</th></tr>\n");
    for (size_t i = 0; i < r->nval; i++)
      cc_buf_printf(f, "<tr><td>%ld</td><td>%.3g</td><td>%.4f</td></tr>\n", r->val[i].step, r->val[i].epoch,
              r->val[i].value);
    cc_buf_printf(f, "</table>\n");
  }
  if (r->nzs) {
    cc_buf_printf(f, "<h2>Zero-shot classification</h2>\n<table><tr><th>step</th><th>epoch</th><th>top-1</th>"
               "<th>top-5</th><th>chance</th></tr>\n");
    for (size_t i = 0; i < r->nzs; i++)
      cc_buf_printf(f, "<tr><td>%ld</td><td>%.3g</td><td>%.1f%%</td><td>%.1f%%</td><td>%.1f%%</td></tr>\n", r->zs[i].step,
              r->zs[i].epoch, 100 * r->zs[i].top1, 100 * r->zs[i].top5, 100 * r->zs[i].chance);
    cc_buf_printf(f, "</table>\n");
  }
  if (r->have_last) write_examples(f, &r->last);
  if (r->config_json) {
    cc_buf_printf(f, "<h2>Model</h2>\n<pre>");
    html_escape(f, r->config_json);
    cc_buf_printf(f, "</pre>\n");
  }
  cc_buf_printf(f, "</body></html>\n");
  st = cc_buf_save(&page, path);
  cc_buf_free(&page);
  return st;
}

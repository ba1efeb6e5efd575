/* train_report.c: see train_report.h. */
#include "cli/train_report.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/atomic.h"
#include "util/plot.h"

void cc_report_init(cc_report *r) { memset(r, 0, sizeof *r); }

void cc_report_free(cc_report *r) {
  free(r->loss);
  free(r->val);
  free(r->zeroshot_json);
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

void cc_report_add_loss(cc_report *r, long step, double loss) {
  push(&r->loss, &r->nloss, &r->cap_loss, (cc_point){step, 0, loss});
}

void cc_report_load_metrics(cc_report *r, const char *dir, long upto) {
  char path[4096];
  snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
  FILE *f = fopen(path, "r");
  if (!f) return;
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
    }
    json_decref(j);
  }
  fclose(f);
  if (keep) cc_atomic_write_file(path, keep, len);
  free(keep);
}

int cc_report_val_loss(cc_report *r, cc_trainer *t, clipcl_loader *vld, float *pix, int32_t *ids, long n, long step,
                       double epoch, FILE *mf) {
  (void)n;
  double sum = 0;
  long count = 0;
  for (;;) {
    clipcl_batch b = {pix, ids, NULL, NULL, 0, 0};
    if (clipcl_loader_next(vld, &b) != CLIPCL_OK) {
      fprintf(stderr, "clipcl train: validation data: %s\n", clipcl_last_error());
      return 1;
    }
    if (b.n == 0) break;
    if (b.n < 2) continue; /* a contrastive loss needs at least two pairs */
    float loss;
    if (cc_trainer_eval_loss(t, pix, ids, b.n, &loss) != CLIPCL_OK) {
      fprintf(stderr, "clipcl train: validation: %s\n", clipcl_last_error());
      return 1;
    }
    sum += (double)loss * b.n;
    count += b.n;
  }
  if (!count) return 0;
  double v = sum / count;
  push(&r->val, &r->nval, &r->cap_val, (cc_point){step, epoch, v});
  fprintf(mf, "{\"type\": \"val\", \"step\": %ld, \"epoch\": %.4g, \"val_loss\": %.6f, \"n\": %ld}\n", step, epoch, v,
          count);
  fflush(mf);
  printf("validation loss %.4f over %ld pairs (batches of %ld)\n", v, count, n);
  return 0;
}

static void html_escape(FILE *f, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
      case '<': fputs("&lt;", f); break;
      case '>': fputs("&gt;", f); break;
      case '&': fputs("&amp;", f); break;
      case '"': fputs("&quot;", f); break;
      default: fputc(*s, f);
    }
  }
}

int cc_report_write(cc_report *r, const char *dir, const char *title) {
  char path[4096];
  snprintf(path, sizeof path, "%s/loss.png", dir);
  size_t n = r->nloss;
  double *x = malloc((n + r->nval + 1) * sizeof *x), *y = malloc((n + r->nval + 1) * sizeof *y);
  double *ys = malloc((n + 1) * sizeof *ys), *vx = x + n, *vy = y + n;
  if (!x || !y || !ys) {
    free(x);
    free(y);
    free(ys);
    return 1;
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
  if (st) {
    fprintf(stderr, "clipcl train: %s\n", clipcl_last_error());
    return 1;
  }
  snprintf(path, sizeof path, "%s/report.html", dir);
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    fprintf(stderr, "clipcl train: %s: cannot write\n", tmp);
    return 1;
  }
  fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>clipcl training: ");
  html_escape(f, title);
  fprintf(f, "</title>\n<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}"
             "img.t{width:96px;height:96px;image-rendering:pixelated;margin:2px}</style></head><body>\n");
  fprintf(f, "<h1>clipcl training: ");
  html_escape(f, title);
  fprintf(f, "</h1>\n");
  if (n)
    fprintf(f, "<p>%zu logged steps; loss %.4f at step %ld, %.4f at step %ld.</p>\n", n, r->loss[0].value,
            r->loss[0].step, r->loss[n - 1].value, r->loss[n - 1].step);
  fprintf(f, "<h2>Loss</h2>\n<p><img src=\"loss.png\" alt=\"loss curve\" width=\"720\" height=\"360\"><br>"
             "light blue: training loss per step; dark blue: its moving average; orange: validation loss.</p>\n");
  if (r->nval) {
    fprintf(f, "<table><tr><th>step</th><th>epoch</th><th>validation loss</th></tr>\n");
    for (size_t i = 0; i < r->nval; i++)
      fprintf(f, "<tr><td>%ld</td><td>%.3g</td><td>%.4f</td></tr>\n", r->val[i].step, r->val[i].epoch,
              r->val[i].value);
    fprintf(f, "</table>\n");
  }
  if (r->zeroshot_json) {
    fprintf(f, "<h2>Zero-shot</h2>\n<pre>");
    html_escape(f, r->zeroshot_json);
    fprintf(f, "</pre>\n");
  }
  if (r->config_json) {
    fprintf(f, "<h2>Model</h2>\n<pre>");
    html_escape(f, r->config_json);
    fprintf(f, "</pre>\n");
  }
  fprintf(f, "</body></html>\n");
  if (fclose(f) != 0 || rename(tmp, path) != 0) {
    fprintf(stderr, "clipcl train: %s: cannot write\n", path);
    return 1;
  }
  return 0;
}

/* zeroshot_report.c: the files a zero-shot run leaves: metrics JSON
 * (jansson), per-image predictions CSV, the confusion matrix as CSV and as a
 * PNG heat map. Not here: computing the metrics (zeroshot.c) or printing the
 * table (the CLI's job). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clipcl.h"
#include "eval/eval.h"
#include "util/error.h"

#define TIE_RULE "equal scores rank the lower class index first"
/* 15 significant digits print 0.1 as 0.1 and stay within 1e-15 relative */
#define JSON_FLAGS (JSON_INDENT(2) | JSON_REAL_PRECISION(15))

static const char *class_name(const char *const *names, int c, char *tmp, size_t cap) {
  if (names) return names[c];
  snprintf(tmp, cap, "%d", c);
  return tmp;
}

static clipcl_status check_metrics(const clipcl_zeroshot_metrics *m, const char *what) {
  if (!m || m->classes < 1 || !m->support || !m->per_class)
    return cc_fail(CLIPCL_ERR_ARG, "%s: metrics not computed", what);
  return CLIPCL_OK;
}

static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static clipcl_status build_json(const clipcl_zeroshot_metrics *m, const char *const *names, json_t **out) {
  json_t *root = json_object(), *per = json_object(), *sup = json_object(), *cn = json_array(),
         *conf = m->confusion ? json_array() : json_null();
  int bad = !root || !per || !sup || !cn || !conf;
  bad |= json_object_set_new(root, "n", json_integer(m->n));
  bad |= json_object_set_new(root, "classes", json_integer(m->classes));
  bad |= json_object_set_new(root, "top1", json_real(m->top1));
  bad |= json_object_set_new(root, "top5", json_real(m->top5));
  bad |= json_object_set_new(root, "top5_k", json_integer(m->k5));
  bad |= json_object_set_new(root, "mean_per_class_recall", num_or_null(m->mean_per_class_recall));
  char tmp[16];
  for (int c = 0; c < m->classes && !bad; c++) {
    const char *name = class_name(names, c, tmp, sizeof tmp);
    if (!name) {
      json_decref(root), json_decref(per), json_decref(sup), json_decref(cn), json_decref(conf);
      return cc_fail(CLIPCL_ERR_ARG, "zero-shot JSON: class %d has no name", c);
    }
    if (json_object_get(per, name)) {
      json_decref(root), json_decref(per), json_decref(sup), json_decref(cn), json_decref(conf);
      return cc_fail(CLIPCL_ERR_ARG, "zero-shot JSON: class name \"%s\" appears twice", name);
    }
    json_t *js = json_string(name);
    if (!js) {
      json_decref(root), json_decref(per), json_decref(sup), json_decref(cn), json_decref(conf);
      return cc_fail(CLIPCL_ERR_ARG, "zero-shot JSON: class %d's name is not valid UTF-8", c);
    }
    bad |= json_array_append_new(cn, js);
    bad |= json_object_set_new(per, name, num_or_null(m->per_class[c]));
    bad |= json_object_set_new(sup, name, json_integer(m->support[c]));
    if (m->confusion) {
      json_t *row = json_array();
      bad |= !row;
      for (int p = 0; p < m->classes && row; p++)
        bad |= json_array_append_new(row, json_integer(m->confusion[(size_t)c * m->classes + p]));
      bad |= json_array_append_new(conf, row);
    }
  }
  bad |= json_object_set_new(root, "per_class", per);
  bad |= json_object_set_new(root, "support", sup);
  bad |= json_object_set_new(root, "classnames", cn);
  bad |= json_object_set_new(root, "confusion_matrix", conf);
  bad |= json_object_set_new(root, "tie_rule", json_string(TIE_RULE));
  if (bad) {
    json_decref(root);
    return cc_fail(CLIPCL_ERR_NOMEM, "zero-shot JSON: out of memory");
  }
  *out = root;
  return CLIPCL_OK;
}

clipcl_status clipcl_zeroshot_json(const clipcl_zeroshot_metrics *m, const char *const *classnames, char **out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "zero-shot JSON: no output");
  *out = NULL;
  CC_TRY(check_metrics(m, "zero-shot JSON"));
  json_t *root = NULL;
  CC_TRY(build_json(m, classnames, &root));
  *out = json_dumps(root, JSON_FLAGS);
  json_decref(root);
  return *out ? CLIPCL_OK : cc_fail(CLIPCL_ERR_NOMEM, "zero-shot JSON: out of memory");
}

clipcl_status clipcl_zeroshot_write_json(const char *path, const clipcl_zeroshot_metrics *m,
                                         const char *const *classnames) {
  if (!path) return cc_fail(CLIPCL_ERR_ARG, "zero-shot JSON: no path");
  char *s;
  CC_TRY(clipcl_zeroshot_json(m, classnames, &s));
  clipcl_status st = cc_save_line(path, s);
  free(s);
  return st;
}

clipcl_status clipcl_zeroshot_write_predictions(const char *path, const char *const *paths,
                                                const int32_t *labels, const int32_t *pred,
                                                const float *score, size_t stride, size_t n, int classes,
                                                const char *const *classnames) {
  if (!path) return cc_fail(CLIPCL_ERR_ARG, "predictions CSV: no path");
  if (classes < 1 || stride < 1 || (n && (!labels || !pred || !score)))
    return cc_fail(CLIPCL_ERR_ARG, "%s: bad arguments", path);
  cc_buf b = {0};
  char tmp[32], tmp2[16];
  cc_buf_str(&b, "path,true_label,predicted_label,score\n");
  for (size_t i = 0; i < n; i++) {
    int y = labels[i], p = pred[i * stride];
    if (y < 0 || y >= classes || p < 0 || p >= classes) {
      cc_buf_free(&b);
      return cc_fail(CLIPCL_ERR_ARG, "%s: image %zu: label %d or prediction %d outside 0..%d", path, i, y, p,
                     classes - 1);
    }
    if (paths && paths[i]) {
      cc_buf_csv(&b, paths[i]);
    } else {
      snprintf(tmp, sizeof tmp, "%zu", i);
      cc_buf_str(&b, tmp);
    }
    cc_buf_str(&b, ",");
    cc_buf_csv(&b, class_name(classnames, y, tmp2, sizeof tmp2));
    cc_buf_str(&b, ",");
    cc_buf_csv(&b, class_name(classnames, p, tmp2, sizeof tmp2));
    cc_buf_printf(&b, ",%.9g\n", (double)score[i * stride]);
  }
  clipcl_status st = cc_buf_save(&b, path);
  cc_buf_free(&b);
  return st;
}

clipcl_status clipcl_confusion_write_csv(const char *path, const clipcl_zeroshot_metrics *m,
                                         const char *const *classnames) {
  if (!path) return cc_fail(CLIPCL_ERR_ARG, "confusion CSV: no path");
  CC_TRY(check_metrics(m, path));
  if (!m->confusion)
    return cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: no confusion matrix above %d classes", path, CLIPCL_CONFUSION_MAX);
  cc_buf b = {0};
  char tmp[16];
  cc_buf_str(&b, "true\\predicted");
  for (int c = 0; c < m->classes; c++) {
    cc_buf_str(&b, ",");
    cc_buf_csv(&b, class_name(classnames, c, tmp, sizeof tmp));
  }
  cc_buf_str(&b, "\n");
  for (int c = 0; c < m->classes; c++) {
    cc_buf_csv(&b, class_name(classnames, c, tmp, sizeof tmp));
    for (int p = 0; p < m->classes; p++)
      cc_buf_printf(&b, ",%lld", (long long)m->confusion[(size_t)c * m->classes + p]);
    cc_buf_str(&b, "\n");
  }
  clipcl_status st = cc_buf_save(&b, path);
  cc_buf_free(&b);
  return st;
}

/* White to dark blue; a sequential scale reads as "more" without a legend. */
static void heat_colour(double t, uint8_t rgb[3]) {
  static const double stops[5][3] = {
      {255, 255, 255}, {200, 220, 240}, {110, 165, 215}, {35, 105, 180}, {8, 40, 100}};
  if (!(t > 0)) t = 0;
  if (t > 1) t = 1;
  double x = t * 4;
  int i = x >= 4 ? 3 : (int)x;
  double f = x - i;
  for (int c = 0; c < 3; c++) rgb[c] = (uint8_t)lround(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]));
}

clipcl_status clipcl_confusion_write_png(const char *path, const clipcl_zeroshot_metrics *m) {
  if (!path) return cc_fail(CLIPCL_ERR_ARG, "confusion PNG: no path");
  CC_TRY(check_metrics(m, path));
  if (!m->confusion)
    return cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: no confusion matrix above %d classes", path, CLIPCL_CONFUSION_MAX);
  int C = m->classes, cell = 640 / C;
  if (cell > 32) cell = 32;
  if (cell < 1) cell = 1;
  int grid = cell >= 6, side = C * cell + grid;
  static const uint8_t grid_rgb[3] = {190, 190, 190}, empty_rgb[3] = {230, 225, 215};
  clipcl_image img = {side, side, malloc((size_t)side * side * 3)};
  if (!img.rgb) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
  for (size_t i = 0; i < (size_t)side * side; i++) memcpy(img.rgb + 3 * i, grid_rgb, 3);
  for (int r = 0; r < C; r++) {
    for (int c = 0; c < C; c++) {
      uint8_t rgb[3];
      if (m->support[r] == 0)
        memcpy(rgb, empty_rgb, 3);
      else
        heat_colour(sqrt((double)m->confusion[(size_t)r * C + c] / (double)m->support[r]), rgb);
      /* with a grid, each cell keeps its first row and column for the line */
      for (int y = grid; y < cell; y++)
        for (int x = grid; x < cell; x++)
          memcpy(img.rgb + 3 * ((size_t)(r * cell + y) * side + (size_t)c * cell + x), rgb, 3);
    }
  }
  clipcl_status st = clipcl_image_save_png(path, &img);
  free(img.rgb);
  return st;
}

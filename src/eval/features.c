/* features.c: the feature cache of the linear probe (and any other command
 * that embeds a data set twice): <prefix>.npy, <prefix>.labels.npy and the
 * <prefix>.json that says what they hold. Not here: deciding the identity
 * string (the caller hashes model and data) or the .npy format (io/npy.c).
 *
 * Crash safety: the old JSON is removed before the arrays are replaced and
 * the new one is written last, so a JSON on disk always describes complete
 * arrays, and an interrupted save reads as a miss.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clipcl.h"
#include "eval/eval.h"
#include "io/npy.h"
#include "util/error.h"

#define FEATURES_FORMAT "clipcl-features"
#define LABEL_MAX 16777216 /* integers a float32 holds exactly */

static char *join(const char *prefix, const char *suffix) {
  size_t a = strlen(prefix), b = strlen(suffix);
  char *s = malloc(a + b + 1);
  if (!s) return NULL;
  memcpy(s, prefix, a);
  memcpy(s + a, suffix, b + 1);
  return s;
}

clipcl_status clipcl_features_save(const char *prefix, const char *identity, const float *X,
                                   const int32_t *labels, size_t n, int dim) {
  if (!prefix || !*prefix || !identity) return cc_fail(CLIPCL_ERR_ARG, "feature cache: no prefix or identity");
  if (dim < 1 || (n && !X)) return cc_fail(CLIPCL_ERR_ARG, "%s: bad arguments (dim %d)", prefix, dim);
  if (n > SIZE_MAX / 4 / (size_t)dim) return cc_fail(CLIPCL_ERR_ARG, "%s: sizes overflow", prefix);
  char *pf = join(prefix, ".npy"), *pl = join(prefix, ".labels.npy"), *pj = join(prefix, ".json");
  float *lf = NULL;
  json_t *meta = NULL;
  char *text = NULL;
  clipcl_status st = CLIPCL_OK;
  if (!pf || !pl || !pj) st = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", prefix);
  if (!st && labels) {
    lf = malloc((n ? n : 1) * sizeof *lf);
    if (!lf) st = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", prefix);
    for (size_t i = 0; i < n && !st; i++) {
      if (labels[i] < 0 || labels[i] >= LABEL_MAX)
        st = cc_fail(CLIPCL_ERR_ARG, "%s: label %d of sample %zu is outside 0..%d", prefix, labels[i], i, LABEL_MAX - 1);
      else
        lf[i] = (float)labels[i];
    }
  }
  if (!st) {
    meta = json_pack("{s:s, s:i, s:s, s:I, s:i, s:b}", "format", FEATURES_FORMAT, "version", 1, "identity",
                     identity, "n", (json_int_t)n, "dim", dim, "labels", labels != NULL);
    if (!meta || !json_object_get(meta, "identity"))
      st = cc_fail(CLIPCL_ERR_ARG, "%s: the identity is not valid UTF-8", prefix);
    else if (!(text = json_dumps(meta, JSON_INDENT(2))))
      st = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", prefix);
  }
  if (!st && unlink(pj) != 0 && errno != ENOENT) st = cc_fail(CLIPCL_ERR_IO, "%s: cannot remove the old cache description", pj);
  if (!st) st = cc_npy_write_f32(pf, X, 2, (size_t[]){n, (size_t)dim});
  if (!st && labels) st = cc_npy_write_f32(pl, lf, 1, (size_t[]){n});
  if (!st) st = cc_save_line(pj, text);
  free(text);
  json_decref(meta);
  free(lf);
  free(pf), free(pl), free(pj);
  return st;
}

clipcl_status clipcl_features_load(const char *prefix, const char *identity, float **X, int32_t **labels,
                                   size_t *n, int *dim, int *hit) {
  if (!X || !n || !dim || !hit) return cc_fail(CLIPCL_ERR_ARG, "feature cache: NULL output");
  *X = NULL;
  if (labels) *labels = NULL;
  *n = 0, *dim = 0, *hit = 0;
  if (!prefix || !*prefix || !identity) return cc_fail(CLIPCL_ERR_ARG, "feature cache: no prefix or identity");
  char *pf = join(prefix, ".npy"), *pl = join(prefix, ".labels.npy"), *pj = join(prefix, ".json");
  clipcl_status st = CLIPCL_OK;
  json_t *meta = NULL;
  float *data = NULL, *lf = NULL;
  int32_t *li = NULL;
  if (!pf || !pl || !pj) st = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", prefix);
  FILE *f = st ? NULL : fopen(pj, "rb");
  if (!st && !f && errno != ENOENT) st = cc_fail(CLIPCL_ERR_IO, "%s: cannot open", pj);
  if (f) {
    json_error_t err;
    meta = json_loadf(f, JSON_REJECT_DUPLICATES, &err);
    fclose(f);
    const char *fmt = NULL, *id = NULL;
    int version = 0, has_labels = 0;
    json_int_t jn = -1, jd = -1;
    if (!meta)
      st = cc_fail(CLIPCL_ERR_FORMAT, "%s:%d: %s", pj, err.line, err.text);
    else if (json_unpack(meta, "{s:s, s:i, s:s, s:I, s:I, s:b}", "format", &fmt, "version", &version, "identity",
                         &id, "n", &jn, "dim", &jd, "labels", &has_labels) != 0 ||
             strcmp(fmt, FEATURES_FORMAT) != 0 || version != 1 || jn < 0 || jd < 1 || jd > INT32_MAX)
      st = cc_fail(CLIPCL_ERR_FORMAT, "%s: not a clipcl feature cache description (version 1)", pj);
    else if (strcmp(id, identity) == 0) {
      int nd;
      size_t shape[2];
      st = cc_npy_read_f32(pf, &data, &nd, shape);
      if (!st && (nd != 2 || shape[0] != (size_t)jn || shape[1] != (size_t)jd))
        st = cc_fail(CLIPCL_ERR_FORMAT, "%s: shape differs from %s (%lld x %lld)", pf, pj, (long long)jn, (long long)jd);
      if (!st && labels && has_labels) {
        st = cc_npy_read_f32(pl, &lf, &nd, shape);
        if (!st && (nd != 1 || shape[0] != (size_t)jn))
          st = cc_fail(CLIPCL_ERR_FORMAT, "%s: expected %lld labels", pl, (long long)jn);
        if (!st && !(li = malloc((jn ? (size_t)jn : 1) * sizeof *li))) st = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", pl);
        for (size_t i = 0; !st && i < (size_t)jn; i++) {
          if (!(lf[i] >= 0 && lf[i] < LABEL_MAX && lf[i] == floorf(lf[i])))
            st = cc_fail(CLIPCL_ERR_FORMAT, "%s: entry %zu (%g) is not a label", pl, i, (double)lf[i]);
          else
            li[i] = (int32_t)lf[i];
        }
      }
      if (!st) {
        *X = data, data = NULL;
        if (labels) *labels = li, li = NULL;
        *n = (size_t)jn;
        *dim = (int)jd;
        *hit = 1;
      }
    }
  }
  json_decref(meta);
  free(data), free(lf), free(li);
  free(pf), free(pl), free(pj);
  return st;
}

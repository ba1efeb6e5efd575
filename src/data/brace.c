/* brace.c: shard-spec expansion as webdataset does it for open_clip: the spec
 * is split at "::", and each part is brace-expanded with the rules of Python's
 * braceexpand package (alternatives, integer and letter ranges with steps,
 * zero padding, nesting, backslash escapes). Not here: opening the shards
 * (source_tar.c).
 *
 * The expansion is a cartesian product of literal runs and brace groups, the
 * same structure braceexpand builds; lists are materialised because shard
 * lists are small (the total is capped at CC_DATA_MAX_NAMES).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "util/error.h"

typedef struct {
  char **v;
  int n, cap;
} slist;

static void sl_free(slist *l) {
  cc_names_free(l->v, l->n);
  l->v = NULL;
  l->n = l->cap = 0;
}

static clipcl_status sl_push_n(slist *l, const char *s, size_t n) {
  if (l->n >= CC_DATA_MAX_NAMES)
    return cc_fail(CLIPCL_ERR_ARG, "brace expansion gives more than %d names", CC_DATA_MAX_NAMES);
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 8;
    char **v = realloc(l->v, (size_t)cap * sizeof *v);
    if (!v) return cc_fail(CLIPCL_ERR_NOMEM, "brace expansion: out of memory");
    l->v = v;
    l->cap = cap;
  }
  char *c = malloc(n + 1);
  if (!c) return cc_fail(CLIPCL_ERR_NOMEM, "brace expansion: out of memory");
  memcpy(c, s, n);
  c[n] = 0;
  l->v[l->n++] = c;
  return CLIPCL_OK;
}

/* Moves every string of b to the end of a (b is left empty). */
static clipcl_status sl_append(slist *a, slist *b) {
  for (int i = 0; i < b->n; i++) {
    clipcl_status s = sl_push_n(a, b->v[i], strlen(b->v[i]));
    if (s != CLIPCL_OK) return s;
  }
  sl_free(b);
  return CLIPCL_OK;
}

/* acc = acc x next (concatenation of every pair, acc's order outermost). */
static clipcl_status sl_product(slist *acc, const slist *next) {
  if ((long long)acc->n * next->n > CC_DATA_MAX_NAMES)
    return cc_fail(CLIPCL_ERR_ARG, "brace expansion gives more than %d names", CC_DATA_MAX_NAMES);
  slist out = {0};
  for (int i = 0; i < acc->n; i++)
    for (int j = 0; j < next->n; j++) {
      size_t a = strlen(acc->v[i]), b = strlen(next->v[j]);
      char *c = malloc(a + b + 1);
      if (!c) {
        sl_free(&out);
        return cc_fail(CLIPCL_ERR_NOMEM, "brace expansion: out of memory");
      }
      memcpy(c, acc->v[i], a);
      memcpy(c + a, next->v[j], b + 1);
      clipcl_status s = sl_push_n(&out, c, a + b);
      free(c);
      if (s != CLIPCL_OK) {
        sl_free(&out);
        return s;
      }
    }
  sl_free(acc);
  *acc = out;
  return CLIPCL_OK;
}

static clipcl_status parse_pattern(const char *p, size_t len, slist *out);

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }

/* Reads -?\d+ at *i (at most 18 digits so it fits); 1 on success. */
static int read_int(const char *e, size_t len, size_t *i, long long *v, size_t *start, size_t *end) {
  size_t k = *i;
  *start = k;
  int neg = 0;
  if (k < len && e[k] == '-') neg = 1, k++;
  size_t d0 = k;
  long long x = 0;
  while (k < len && is_digit(e[k])) {
    if (k - d0 >= 18) return 0;
    x = x * 10 + (e[k] - '0');
    k++;
  }
  if (k == d0) return 0;
  *v = neg ? -x : x;
  *i = k;
  *end = k;
  return 1;
}

/* Optional "..-?\d+" step suffix then end of expression; 1 if it matched. */
static int read_step(const char *e, size_t len, size_t i, long long *step) {
  *step = 1;
  if (i == len) return 1;
  if (len - i < 3 || e[i] != '.' || e[i + 1] != '.') return 0;
  i += 2;
  if (e[i] == '-') i++;
  size_t d0 = i;
  long long x = 0;
  while (i < len && is_digit(e[i])) {
    if (i - d0 >= 18) return 0;
    x = x * 10 + (e[i] - '0');
    i++;
  }
  if (i == d0 || i != len) return 0;
  *step = x ? x : 1; /* Python's int(incr) or 1 */
  return 1;
}

/* {left..right[..step]} with integers; 1 = matched (list in out), 0 = not
 * an integer range, negative = error already set. */
static int int_range(const char *e, size_t len, slist *out) {
  size_t i = 0, ls, le, rs, re;
  long long a, b, step;
  if (!read_int(e, len, &i, &a, &ls, &le)) return 0;
  if (len - i < 2 || e[i] != '.' || e[i + 1] != '.') return 0;
  i += 2;
  if (!read_int(e, len, &i, &b, &rs, &re)) return 0;
  if (!read_step(e, len, i, &step)) return 0;
  /* padding when either end (other than "0"/"-0") starts with 0 or -0 */
  int pad = 0;
  const char *ends[2] = {e + ls, e + rs};
  size_t elen[2] = {le - ls, re - rs};
  for (int k = 0; k < 2; k++) {
    const char *s = ends[k];
    size_t n = elen[k];
    int is_zero = (n == 1 && s[0] == '0') || (n == 2 && s[0] == '-' && s[1] == '0');
    if (!is_zero && (s[0] == '0' || (n >= 2 && s[0] == '-' && s[1] == '0'))) pad = 1;
  }
  int width = pad ? (int)(elen[0] > elen[1] ? elen[0] : elen[1]) : 0;
  long long count = (a <= b ? b - a : a - b) / step + 1;
  if (count > CC_DATA_MAX_NAMES) {
    cc_fail(CLIPCL_ERR_ARG, "brace expansion gives more than %d names", CC_DATA_MAX_NAMES);
    return -1;
  }
  char buf[64];
  for (long long k = 0; k < count; k++) {
    long long v = a <= b ? a + k * step : a - k * step;
    int n = snprintf(buf, sizeof buf, "%0*lld", width, v);
    if (sl_push_n(out, buf, (size_t)n) != CLIPCL_OK) return -1;
  }
  return 1;
}

/* {x..y[..step]} with ASCII letters over "A..Za..z", using Python slice
 * semantics as braceexpand does (so {A..A} and descending ranges to 'A' work). */
static int char_range(const char *e, size_t len, slist *out) {
  if (len < 4 || !is_alpha(e[0]) || e[1] != '.' || e[2] != '.' || !is_alpha(e[3])) return 0;
  long long step;
  if (!read_step(e, len, 4, &step)) return 0;
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  const long long n = 52;
  long long a = strchr(alphabet, e[0]) - alphabet, b = strchr(alphabet, e[3]) - alphabet;
  long long start, stop, st;
  if (a < b) {
    start = a, stop = b + 1, st = step;
  } else {
    if (b == 0) b = -n; /* Python: end or -len(alphabet) */
    start = a, stop = b - 1, st = -step;
  }
  /* PySlice_AdjustIndices */
  if (st > 0) {
    if (start < 0) start += n;
    if (start < 0) start = 0;
    if (start > n) start = n;
    if (stop < 0) stop += n;
    if (stop < 0) stop = 0;
    if (stop > n) stop = n;
    for (long long i = start; i < stop; i += st)
      if (sl_push_n(out, &alphabet[i], 1) != CLIPCL_OK) return -1;
  } else {
    if (start < 0) start += n;
    if (start < 0) start = -1;
    if (start >= n) start = n - 1;
    if (stop < 0) stop += n;
    if (stop < 0) stop = -1;
    if (stop >= n) stop = n - 1;
    for (long long i = start; i > stop; i += st)
      if (sl_push_n(out, &alphabet[i], 1) != CLIPCL_OK) return -1;
  }
  return 1;
}

/* Comma alternatives at depth 0: 1 = matched, 0 = no comma, negative error. */
static int sequence(const char *e, size_t len, slist *out) {
  size_t start = 0, pos = 0;
  int depth = 0, items = 0;
  while (pos < len) {
    if (e[pos] == '\\') {
      pos += 2;
      continue;
    }
    if (e[pos] == '{') depth++;
    else if (e[pos] == '}') depth--;
    else if (e[pos] == ',' && depth == 0) {
      slist part = {0};
      if (parse_pattern(e + start, pos - start, &part) != CLIPCL_OK || sl_append(out, &part) != CLIPCL_OK) {
        sl_free(&part);
        return -1;
      }
      items++;
      start = pos + 1;
    }
    pos++;
  }
  if (depth != 0) {
    cc_fail(CLIPCL_ERR_ARG, "unbalanced braces in '%.*s'", (int)len, e);
    return -1;
  }
  if (!items) return 0;
  slist part = {0};
  if (parse_pattern(e + start, len - start, &part) != CLIPCL_OK || sl_append(out, &part) != CLIPCL_OK) {
    sl_free(&part);
    return -1;
  }
  return 1;
}

static clipcl_status parse_pattern(const char *p, size_t len, slist *out) {
  slist acc = {0};
  clipcl_status s = sl_push_n(&acc, "", 0);
  size_t start = 0, pos = 0;
  int depth = 0;
  while (s == CLIPCL_OK && pos < len) {
    if (p[pos] == '\\') {
      pos += 2;
      continue;
    }
    if (p[pos] == '{') {
      if (depth == 0 && pos > start) {
        slist lit = {0};
        s = sl_push_n(&lit, p + start, pos - start);
        if (s == CLIPCL_OK) s = sl_product(&acc, &lit);
        sl_free(&lit);
        start = pos;
      }
      depth++;
    } else if (p[pos] == '}') {
      depth--;
      if (depth < 0) {
        s = cc_fail(CLIPCL_ERR_ARG, "unbalanced braces in '%.*s'", (int)len, p);
        break;
      }
      if (depth == 0) {
        const char *e = p + start + 1;
        size_t elen = pos - start - 1;
        slist item = {0};
        int m = int_range(e, elen, &item);
        if (m == 0) m = char_range(e, elen, &item);
        if (m == 0) m = sequence(e, elen, &item);
        if (m < 0) {
          s = CLIPCL_ERR_ARG;
          if (strstr(clipcl_last_error(), "out of memory")) s = CLIPCL_ERR_NOMEM;
        } else if (m == 0) {
          /* not a range or list: the braces stay, the inside is expanded */
          slist open = {0}, inner = {0}, close = {0};
          s = sl_push_n(&open, "{", 1);
          if (s == CLIPCL_OK) s = sl_product(&acc, &open);
          if (s == CLIPCL_OK) s = parse_pattern(e, elen, &inner);
          if (s == CLIPCL_OK) s = sl_product(&acc, &inner);
          if (s == CLIPCL_OK) s = sl_push_n(&close, "}", 1);
          if (s == CLIPCL_OK) s = sl_product(&acc, &close);
          sl_free(&open), sl_free(&inner), sl_free(&close);
        } else {
          s = sl_product(&acc, &item);
        }
        sl_free(&item);
        start = pos + 1;
      }
    }
    pos++;
  }
  if (s == CLIPCL_OK && depth != 0) s = cc_fail(CLIPCL_ERR_ARG, "unbalanced braces in '%.*s'", (int)len, p);
  if (s == CLIPCL_OK && start < len) {
    slist lit = {0};
    s = sl_push_n(&lit, p + start, len - start);
    if (s == CLIPCL_OK) s = sl_product(&acc, &lit);
    sl_free(&lit);
  }
  if (s != CLIPCL_OK) {
    sl_free(&acc);
    return s;
  }
  *out = acc;
  return CLIPCL_OK;
}

/* braceexpand drops the backslash of every escape once expansion is done. */
static void unescape(char *s) {
  char *w = s;
  for (char *r = s; *r; r++) {
    if (*r == '\\' && r[1]) r++;
    *w++ = *r;
  }
  *w = 0;
}

clipcl_status cc_brace_expand(const char *spec, char ***names, int *n) {
  *names = NULL;
  *n = 0;
  slist all = {0};
  const char *p = spec;
  for (;;) {
    const char *sep = strstr(p, "::");
    size_t len = sep ? (size_t)(sep - p) : strlen(p);
    slist part = {0};
    clipcl_status s = parse_pattern(p, len, &part);
    if (s == CLIPCL_OK) s = sl_append(&all, &part);
    if (s != CLIPCL_OK) {
      sl_free(&part);
      sl_free(&all);
      return cc_fail_ctx(s, "%s", spec);
    }
    if (!sep) break;
    p = sep + 2;
  }
  for (int i = 0; i < all.n; i++) unescape(all.v[i]);
  *names = all.v;
  *n = all.n;
  return CLIPCL_OK;
}

void cc_names_free(char **names, int n) {
  if (!names) return;
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
}

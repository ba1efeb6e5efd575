/* brace.c: shard-spec expansion as webdataset does it for open_clip: the spec
 * is split at "::", and each part is brace-expanded with the rules of Python's
 * braceexpand package (alternatives, integer and letter ranges with steps,
 * zero padding, nesting, backslash escapes). Not here: opening the shards
 * (source_tar.c).
 *
 * A part is parsed into a small tree first: a pattern is a sequence of
 * items (literal text, an integer range, a letter range, or a group of
 * alternative patterns). The number of names and their total length are
 * computed from the tree, so a spec over the caps (CC_DATA_MAX_NAMES names,
 * BRACE_MAX_BYTES of text, BRACE_MAX_DEPTH nested braces, BRACE_MAX_GROUPS
 * groups) is refused before anything is built; then every name is written
 * once, depth first, in braceexpand's order, into one block.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "util/error.h"

/* Total text of all names, NULs included (a million names of 63 bytes). */
#define BRACE_MAX_BYTES ((size_t)64 << 20)
/* Braces nested deeper than this are not a shard list; the parser recurses. */
#define BRACE_MAX_DEPTH 64
/* Brace groups in one "::" part; the expansion recurses once per group. */
#define BRACE_MAX_GROUPS 1024
/* Saturation value for counts and sizes: above every cap. */
#define BIG ((unsigned long long)1 << 62)

static _Atomic int max_names = CC_DATA_MAX_NAMES;
void cc_brace_set_max_names(int n) { max_names = n > 0 && n < CC_DATA_MAX_NAMES ? n : CC_DATA_MAX_NAMES; }

typedef struct node node;
typedef struct {
  node *v;
  int n, cap;
} pattern;

enum { N_LIT, N_INT, N_CHR, N_ALT };
struct node {
  int kind;
  const char *s; /* N_LIT: the text (in the spec, or in own when it had escapes) */
  size_t len;
  char *own;     /* N_LIT: the text with its escapes removed, or NULL */
  long long a, step, count; /* N_INT: a, a+step, ... (step may be negative) */
  int width;                /* N_INT: zero padding */
  char chars[56];           /* N_CHR: one name per letter */
  int nchars;
  pattern *alts;            /* N_ALT */
  int nalts;
};

static void node_free(node *x);
static void pat_free(pattern *p) {
  for (int i = 0; i < p->n; i++) node_free(&p->v[i]);
  free(p->v);
  p->v = NULL;
  p->n = p->cap = 0;
}

static node *pat_push(pattern *p, int kind) {
  if (p->n == p->cap) {
    int cap = p->cap ? 2 * p->cap : 4;
    node *v = realloc(p->v, (size_t)cap * sizeof *v);
    if (!v) return NULL;
    p->v = v;
    p->cap = cap;
  }
  node *x = &p->v[p->n++];
  memset(x, 0, sizeof *x);
  x->kind = kind;
  return x;
}

static clipcl_status oom(void) { return cc_fail(CLIPCL_ERR_NOMEM, "brace expansion: out of memory"); }

/* Literal text. braceexpand removes the backslash of every escape once the
 * names are built; a literal can never end in a lone backslash that would
 * escape the next item's first character (that backslash would have escaped
 * the brace or comma that ends the literal), so removing them here, once per
 * literal, gives the same names. */
static clipcl_status push_lit(pattern *p, const char *s, size_t len) {
  if (!len) return CLIPCL_OK;
  node *x = pat_push(p, N_LIT);
  if (!x) return oom();
  x->s = s;
  x->len = len;
  if (memchr(s, '\\', len)) {
    if (!(x->own = malloc(len))) return oom();
    size_t w = 0;
    for (size_t r = 0; r < len; r++) {
      if (s[r] == '\\' && r + 1 < len) r++;
      x->own[w++] = s[r];
    }
    x->s = x->own;
    x->len = w;
  }
  return CLIPCL_OK;
}

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

/* {left..right[..step]} with integers: 1 = matched (node filled), 0 = not
 * an integer range. */
static int int_range(const char *e, size_t len, node *x) {
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
  x->kind = N_INT;
  x->width = pad ? (int)(elen[0] > elen[1] ? elen[0] : elen[1]) : 0;
  x->a = a;
  x->step = a <= b ? step : -step;
  x->count = (a <= b ? b - a : a - b) / step + 1;
  return 1;
}

/* {x..y[..step]} with ASCII letters over "A..Za..z", using Python slice
 * semantics as braceexpand does (so {A..A} and descending ranges to 'A' work). */
static int char_range(const char *e, size_t len, node *x) {
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
  x->kind = N_CHR;
  x->nchars = 0;
  /* PySlice_AdjustIndices */
  if (st > 0) {
    if (start < 0) start += n;
    if (start < 0) start = 0;
    if (start > n) start = n;
    if (stop < 0) stop += n;
    if (stop < 0) stop = 0;
    if (stop > n) stop = n;
    for (long long i = start; i < stop; i += st) x->chars[x->nchars++] = alphabet[i];
  } else {
    if (start < 0) start += n;
    if (start < 0) start = -1;
    if (start >= n) start = n - 1;
    if (stop < 0) stop += n;
    if (stop < 0) stop = -1;
    if (stop >= n) stop = n - 1;
    for (long long i = start; i > stop; i += st) x->chars[x->nchars++] = alphabet[i];
  }
  return 1;
}

static clipcl_status parse_pattern(const char *p, size_t len, int depth, pattern *out);

static void node_free(node *x) {
  free(x->own);
  x->own = NULL;
  if (x->kind != N_ALT) return;
  for (int k = 0; k < x->nalts; k++) pat_free(&x->alts[k]);
  free(x->alts);
  x->alts = NULL;
  x->nalts = 0;
}

/* Comma alternatives at depth 0 into x: 1 = matched, 0 = no comma,
 * negative = error (message set; x may hold alternatives to free). */
static int sequence(const char *e, size_t len, int depth, node *x) {
  int items = 0;
  for (int pass = 0; pass < 2; pass++) {
    size_t start = 0, pos = 0;
    int d = 0;
    for (;;) {
      if (pos >= len || (e[pos] == ',' && d == 0)) {
        if (pass == 0) {
          items++;
        } else {
          x->nalts++;
          if (parse_pattern(e + start, (pos < len ? pos : len) - start, depth + 1, &x->alts[x->nalts - 1]))
            return -1;
        }
        if (pos >= len) break;
        start = pos + 1;
      } else if (e[pos] == '\\') {
        pos += 2;
        continue;
      } else if (e[pos] == '{') {
        d++;
      } else if (e[pos] == '}') {
        d--;
      }
      pos++;
    }
    if (d != 0) {
      cc_fail(CLIPCL_ERR_ARG, "unbalanced braces in '%.*s'", (int)len, e);
      return -1;
    }
    if (pass == 0) {
      if (items < 2) return 0;
      x->kind = N_ALT;
      if (!(x->alts = calloc((size_t)items, sizeof *x->alts))) {
        oom();
        return -1;
      }
    }
  }
  return 1;
}

/* Parses the inside of one brace pair (e[-1] is '{', e[elen] is '}') into
 * items appended to out. */
static clipcl_status parse_group(const char *e, size_t elen, int depth, pattern *out) {
  node x;
  memset(&x, 0, sizeof x);
  int m = int_range(e, elen, &x);
  if (m == 0) m = char_range(e, elen, &x);
  if (m == 0) m = sequence(e, elen, depth, &x);
  if (m < 0) {
    node_free(&x);
    return strstr(clipcl_last_error(), "out of memory") ? CLIPCL_ERR_NOMEM : CLIPCL_ERR_ARG;
  }
  if (m == 0) {
    /* not a range or list: the braces stay, the inside is expanded */
    CC_TRY(push_lit(out, e - 1, 1));
    pattern inner = {0};
    clipcl_status s = parse_pattern(e, elen, depth + 1, &inner);
    for (int i = 0; s == CLIPCL_OK && i < inner.n; i++) {
      node *y = pat_push(out, N_LIT);
      if (!y) {
        s = oom();
        break;
      }
      *y = inner.v[i];
      inner.v[i].kind = N_LIT; /* moved: nothing left to free there */
      inner.v[i].own = NULL;
    }
    pat_free(&inner);
    CC_TRY(s);
    return push_lit(out, e + elen, 1);
  }
  node *y = pat_push(out, x.kind);
  if (!y) {
    node_free(&x);
    return oom();
  }
  *y = x;
  return CLIPCL_OK;
}

static clipcl_status parse_pattern(const char *p, size_t len, int depth, pattern *out) {
  if (depth > BRACE_MAX_DEPTH)
    return cc_fail(CLIPCL_ERR_ARG, "braces nested more than %d deep", BRACE_MAX_DEPTH);
  size_t start = 0, open = 0;
  int d = 0;
  for (size_t pos = 0; pos < len; pos++) {
    if (p[pos] == '\\') {
      pos++;
      continue;
    }
    if (p[pos] == '{') {
      if (d == 0) {
        CC_TRY(push_lit(out, p + start, pos - start));
        open = pos;
      }
      d++;
    } else if (p[pos] == '}') {
      if (--d < 0) return cc_fail(CLIPCL_ERR_ARG, "unbalanced braces in '%.*s'", (int)len, p);
      if (d == 0) {
        CC_TRY(parse_group(p + open + 1, pos - open - 1, depth, out));
        start = pos + 1;
      }
    }
  }
  if (d != 0) return cc_fail(CLIPCL_ERR_ARG, "unbalanced braces in '%.*s'", (int)len, p);
  if (start < len) CC_TRY(push_lit(out, p + start, len - start));
  return CLIPCL_OK;
}

/* ---- sizes -------------------------------------------------------------- */
static unsigned long long sat_add(unsigned long long a, unsigned long long b) { return a + b > BIG ? BIG : a + b; }
static unsigned long long sat_mul(unsigned long long a, unsigned long long b) {
  return a && b > BIG / a ? BIG : a * b;
}

/* Ranges and lists in p, nested ones included. */
static long groups(const pattern *p) {
  long g = 0;
  for (int i = 0; i < p->n; i++) {
    const node *x = &p->v[i];
    if (x->kind != N_LIT) g++;
    for (int k = 0; k < x->nalts; k++) g += groups(&x->alts[k]);
  }
  return g;
}

/* Names a pattern expands to (*count) and their total length in bytes. */
static void measure(const pattern *p, unsigned long long *count, unsigned long long *bytes) {
  unsigned long long c = 1, b = 0;
  for (int i = 0; i < p->n; i++) {
    const node *x = &p->v[i];
    unsigned long long ic = 0, ib = 0;
    if (x->kind == N_LIT) {
      ic = 1, ib = x->len;
    } else if (x->kind == N_CHR) {
      ic = (unsigned long long)x->nchars, ib = ic;
    } else if (x->kind == N_INT) {
      ic = (unsigned long long)x->count;
      if (ic > (unsigned long long)max_names) {
        ib = BIG; /* refused for its count anyway */
      } else {
        for (long long j = 0; j < x->count; j++) {
          long long v = x->a + j * x->step;
          unsigned long long u = v < 0 ? (unsigned long long)-v : (unsigned long long)v, d = 1;
          while (u >= 10) u /= 10, d++;
          d += v < 0;
          ib += d > (unsigned long long)x->width ? d : (unsigned long long)x->width;
        }
      }
    } else {
      for (int k = 0; k < x->nalts; k++) {
        unsigned long long ac, ab;
        measure(&x->alts[k], &ac, &ab);
        ic = sat_add(ic, ac);
        ib = sat_add(ib, ab);
      }
    }
    /* all of (names so far) x (this item's names) */
    b = sat_add(sat_mul(b, ic), sat_mul(ib, c));
    c = sat_mul(c, ic);
  }
  *count = c;
  *bytes = b;
}

/* ---- generation ----------------------------------------------------------- */
typedef struct cont {
  const pattern *p;
  int i;
  const struct cont *up;
} cont;

typedef struct {
  char *buf; /* the name being built */
  size_t len, cap;
  char **names; /* the result block: total pointers, then the text */
  char *text;   /* every finished name, NUL-terminated, one after another */
  size_t tlen, tcap;
  int n;
} gen;


/* Appends n bytes to the name being built. */
static clipcl_status put(gen *g, const char *s, size_t n) {
  if (g->len + n + 1 > g->cap) {
    size_t c = g->cap ? g->cap : 256;
    while (c < g->len + n + 1) c *= 2;
    char *b = realloc(g->buf, c);
    if (!b) return oom();
    g->buf = b;
    g->cap = c;
  }
  memcpy(g->buf + g->len, s, n);
  g->len += n;
  return CLIPCL_OK;
}

/* The name in g->buf is complete: append it to the text, whose size was
 * measured exactly beforehand. */
static clipcl_status finish(gen *g) {
  if (g->tlen + g->len + 1 > g->tcap) return cc_fail(CLIPCL_ERR_ARG, "brace expansion: names longer than measured");
  char *t = g->text + g->tlen;
  if (g->len) memcpy(t, g->buf, g->len); /* buf is NULL before the first put */
  t[g->len] = 0;
  g->tlen += g->len + 1;
  g->names[g->n++] = t;
  return CLIPCL_OK;
}

/* Writes every name of p from item i on, then of the continuations k, after
 * the text already in g->buf. Only ranges and alternatives recurse. */
static clipcl_status walk(gen *g, const pattern *p, int i, const cont *k) {
  size_t mark = g->len;
  clipcl_status s = CLIPCL_OK;
  for (;;) {
    if (i == p->n) {
      if (k) {
        p = k->p, i = k->i, k = k->up;
        continue;
      }
      s = finish(g);
      break;
    }
    const node *x = &p->v[i];
    if (x->kind == N_LIT) {
      if ((s = put(g, x->s, x->len))) break;
      i++;
      continue;
    }
    size_t here = g->len;
    if (x->kind == N_CHR) {
      for (int j = 0; j < x->nchars && !s; j++) {
        g->len = here;
        if (!(s = put(g, &x->chars[j], 1))) s = walk(g, p, i + 1, k);
      }
    } else if (x->kind == N_INT) {
      char num[64];
      for (long long j = 0; j < x->count && !s; j++) {
        int w = snprintf(num, sizeof num, "%0*lld", x->width, x->a + j * x->step);
        g->len = here;
        if (!(s = put(g, num, (size_t)w))) s = walk(g, p, i + 1, k);
      }
    } else {
      cont next = {p, i + 1, k};
      for (int j = 0; j < x->nalts && !s; j++) {
        g->len = here;
        s = walk(g, &x->alts[j], 0, &next);
      }
    }
    break;
  }
  g->len = mark;
  return s;
}

clipcl_status cc_brace_expand(const char *spec, char ***names, int *n) {
  *names = NULL;
  *n = 0;
  /* parse every "::" part and measure them all before building anything */
  int nparts = 1;
  for (const char *q = spec; (q = strstr(q, "::")); q += 2) nparts++;
  pattern *parts = calloc((size_t)nparts, sizeof *parts);
  if (!parts) return cc_fail_ctx(oom(), "%s", spec);
  clipcl_status s = CLIPCL_OK;
  unsigned long long total = 0, bytes = 0;
  const char *p = spec;
  for (int k = 0; k < nparts && s == CLIPCL_OK; k++) {
    const char *sep = strstr(p, "::");
    size_t len = sep ? (size_t)(sep - p) : strlen(p);
    s = parse_pattern(p, len, 0, &parts[k]);
    unsigned long long c, b;
    if (s == CLIPCL_OK && groups(&parts[k]) > BRACE_MAX_GROUPS)
      s = cc_fail(CLIPCL_ERR_ARG, "more than %d brace groups", BRACE_MAX_GROUPS);
    if (s == CLIPCL_OK) {
      measure(&parts[k], &c, &b);
      total = sat_add(total, c);
      bytes = sat_add(bytes, sat_add(b, c)); /* + a NUL each */
    }
    p = sep ? sep + 2 : p + len;
  }
  if (s == CLIPCL_OK && total > (unsigned long long)max_names)
    s = cc_fail(CLIPCL_ERR_ARG, "brace expansion gives more than %d names", max_names);
  if (s == CLIPCL_OK && bytes > BRACE_MAX_BYTES)
    s = cc_fail(CLIPCL_ERR_ARG, "brace expansion gives more than %zu MiB of names", BRACE_MAX_BYTES >> 20);
  gen g = {0};
  /* one block: the pointer array, then the text it points into */
  if (s == CLIPCL_OK && !(g.names = malloc((size_t)total * sizeof *g.names + (size_t)bytes + 1))) s = oom();
  if (s == CLIPCL_OK) {
    g.text = (char *)(g.names + total);
    g.tcap = (size_t)bytes;
  }
  for (int k = 0; k < nparts && s == CLIPCL_OK; k++) s = walk(&g, &parts[k], 0, NULL);
  for (int k = 0; k < nparts; k++) pat_free(&parts[k]);
  free(parts);
  free(g.buf);
  if (s != CLIPCL_OK) {
    free(g.names);
    return cc_fail_ctx(s, "%s", spec);
  }
  *names = g.names;
  *n = g.n;
  return CLIPCL_OK;
}

void cc_names_free(char **names, int n) {
  if (!names) return;
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
}

/* clean.c: the text cleaning in front of CLIP's tokenizer, following what
 * open_clip 2.20 runs: ftfy 6.3 fix_text(), html.unescape() twice, strip(),
 * `\s+` -> ' ', strip(), str.lower(). Everything works on code points. The
 * character data (entities, case mappings, width forms) is generated from
 * the reference Python into html_entities.c / unicode_tables.c, so this
 * file holds only rules. Not here: splitting and BPE (tokenizer.c).
 *
 * Mojibake repair (ftfy's fix_encoding) is NOT done. It is a heuristic (a
 * "badness" score over a few hundred characters deciding whether to
 * re-decode text through one of ten legacy code pages); a partial copy
 * would fix some strings open_clip fixes and damage others it leaves
 * alone, so we leave such text as it is. The two diverge only on text that
 * ftfy judges to be mojibake (e.g. "CafÃ©"), which real captions
 * occasionally contain; the parity corpus marks those strings.
 * Everything else in ftfy's default pipeline is deterministic and is done
 * here in ftfy's order, repeated until the text stops changing, per
 * line-terminated segment exactly as fix_text() splits it.
 */
#include "text/clean.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/text_tables.h"
#include "util/error.h"

/* ---- buffers and UTF-8 ---------------------------------------------------- */

void cc_u32s_free(cc_u32s *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

clipcl_status cc_u32s_reserve(cc_u32s *b, size_t need) {
  if (need <= b->cap) return CLIPCL_OK;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) {
    if (cap > SIZE_MAX / 2 / sizeof(uint32_t)) return cc_fail(CLIPCL_ERR_NOMEM, "text: too long");
    cap *= 2;
  }
  uint32_t *p = realloc(b->p, cap * sizeof *p);
  if (!p) return cc_fail(CLIPCL_ERR_NOMEM, "text: out of memory (%zu code points)", cap);
  b->p = p;
  b->cap = cap;
  return CLIPCL_OK;
}

static clipcl_status put(cc_u32s *b, uint32_t c) {
  if (b->n == b->cap) CC_TRY(cc_u32s_reserve(b, b->n + 1));
  b->p[b->n++] = c;
  return CLIPCL_OK;
}

static clipcl_status putn(cc_u32s *b, const uint32_t *c, size_t n) {
  if (n > SIZE_MAX / sizeof(uint32_t) - b->n) return cc_fail(CLIPCL_ERR_NOMEM, "text: too long");
  CC_TRY(cc_u32s_reserve(b, b->n + n));
  if (n) memcpy(b->p + b->n, c, n * sizeof *c);
  b->n += n;
  return CLIPCL_OK;
}

clipcl_status cc_utf8_decode(const char *s, size_t len, cc_u32s *out) {
  const unsigned char *u = (const unsigned char *)s;
  CC_TRY(cc_u32s_reserve(out, out->n + len));
  for (size_t i = 0; i < len;) {
    uint32_t c = u[i];
    size_t k;
    uint32_t min;
    if (c < 0x80) {
      out->p[out->n++] = c;
      i++;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      k = 1, min = 0x80, c &= 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      k = 2, min = 0x800, c &= 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      k = 3, min = 0x10000, c &= 0x07;
    } else {
      return cc_fail(CLIPCL_ERR_FORMAT, "text: invalid UTF-8 at byte %zu", i);
    }
    if (len - i <= k) return cc_fail(CLIPCL_ERR_FORMAT, "text: truncated UTF-8 sequence at byte %zu", i);
    for (size_t j = 1; j <= k; j++) {
      if ((u[i + j] & 0xC0) != 0x80) return cc_fail(CLIPCL_ERR_FORMAT, "text: invalid UTF-8 at byte %zu", i);
      c = (c << 6) | (u[i + j] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
      return cc_fail(CLIPCL_ERR_FORMAT, "text: invalid UTF-8 (overlong, surrogate or too large) at byte %zu", i);
    out->p[out->n++] = c;
    i += k + 1;
  }
  return CLIPCL_OK;
}

size_t cc_utf8_put(uint32_t c, char *d) {
  if (c < 0x80) {
    d[0] = (char)c;
    return 1;
  } else if (c < 0x800) {
    d[0] = (char)(0xC0 | (c >> 6));
    d[1] = (char)(0x80 | (c & 0x3F));
    return 2;
  } else if (c < 0x10000) {
    d[0] = (char)(0xE0 | (c >> 12));
    d[1] = (char)(0x80 | ((c >> 6) & 0x3F));
    d[2] = (char)(0x80 | (c & 0x3F));
    return 3;
  }
  d[0] = (char)(0xF0 | (c >> 18));
  d[1] = (char)(0x80 | ((c >> 12) & 0x3F));
  d[2] = (char)(0x80 | ((c >> 6) & 0x3F));
  d[3] = (char)(0x80 | (c & 0x3F));
  return 4;
}

/* ---- table lookups ---------------------------------------------------------- */

const cc_cp_map *cc_cp_map_find(const cc_cp_map *m, size_t n, uint32_t cp) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (m[mid].cp < cp) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && m[lo].cp == cp ? &m[lo] : NULL;
}

int cc_cp_in_ranges(const cc_cp_range *r, size_t n, uint32_t cp) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (r[mid].hi < cp) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && r[lo].lo <= cp;
}

const cc_entity *cc_entity_find(const cc_entity *e, size_t n, const char *name, size_t len) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const char *k = e[mid].name;
    size_t kl = strlen(k);
    int c = memcmp(k, name, kl < len ? kl : len);
    if (c == 0) c = kl < len ? -1 : kl > len ? 1 : 0;
    if (c == 0) return &e[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

/* looks a run of code points up as an entity name (all names are ASCII) */
static const cc_entity *entity_find_u32(const cc_entity *e, size_t n, const uint32_t *s, size_t len) {
  char buf[40];
  if (len == 0 || len > sizeof buf) return NULL;
  for (size_t i = 0; i < len; i++) {
    if (s[i] >= 0x80) return NULL;
    buf[i] = (char)s[i];
  }
  return cc_entity_find(e, n, buf, len);
}

static int is_ascii_alnum(uint32_t c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
static int is_hex(uint32_t c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
static uint32_t hex_val(uint32_t c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

/* ---- white space -------------------------------------------------------------- */

/* The `regex` module's \s (Unicode White_Space); checked against the
 * reference for every code point by tests/test_tokenizer_classes.c. */
int cc_regex_space(uint32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* str.isspace() adds the information separators U+001C..U+001F */
int cc_py_isspace(uint32_t c) { return cc_regex_space(c) || (c >= 0x1C && c <= 0x1F); }

/* ---- html.unescape (Python 3.11 html/__init__.py semantics) --------------- */

static clipcl_status put_charref(cc_u32s *out, uint32_t num) {
  if (num == 0) return put(out, 0xFFFD);
  if (num == 0x0D) return put(out, 0x0D);
  if (num >= 0x80 && num <= 0x9F) return put(out, cc_c1_map[num - 0x80]);
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return put(out, 0xFFFD);
  /* the code points html.unescape drops */
  if ((num >= 0x01 && num <= 0x08) || num == 0x0B || (num >= 0x0E && num <= 0x1F) || num == 0x7F ||
      (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE)
    return CLIPCL_OK;
  return put(out, num);
}

/* Python's int() of a huge digit string either gives a number past
 * U+10FFFF (-> U+FFFD) or, past 4300 digits, raises; we saturate and so
 * always give U+FFFD. */
#define CHARREF_SAT 0x110000u

static int entity_name_char(uint32_t c) {
  return !(c == '\t' || c == '\n' || c == '\f' || c == ' ' || c == '<' || c == '&' || c == '#' || c == ';');
}

clipcl_status cc_html_unescape(const uint32_t *in, size_t n, cc_u32s *out) {
  size_t i = 0;
  while (i < n) {
    if (in[i] != '&' || i + 1 >= n) {
      CC_TRY(put(out, in[i++]));
      continue;
    }
    if (in[i + 1] == '#') {
      size_t j = i + 2, k = j;
      uint32_t num = 0;
      while (k < n && in[k] >= '0' && in[k] <= '9') {
        num = num >= CHARREF_SAT ? CHARREF_SAT : num * 10 + (in[k] - '0');
        k++;
      }
      if (k == j && j < n && (in[j] == 'x' || in[j] == 'X')) {
        k = j + 1;
        while (k < n && is_hex(in[k])) {
          num = num >= CHARREF_SAT ? CHARREF_SAT : num * 16 + hex_val(in[k]);
          k++;
        }
        if (k == j + 1) k = j; /* "&#x" without digits: no match */
      }
      if (k == j) {
        CC_TRY(put(out, '&'));
        i++;
        continue;
      }
      if (num > CHARREF_SAT) num = CHARREF_SAT;
      if (k < n && in[k] == ';') k++;
      CC_TRY(put_charref(out, num));
      i = k;
      continue;
    }
    /* named: [^\t\n\f <&#;]{1,32};? then the longest known prefix */
    size_t j = i + 1, k = j;
    while (k < n && k - j < 32 && entity_name_char(in[k])) k++;
    if (k == j) {
      CC_TRY(put(out, '&'));
      i++;
      continue;
    }
    if (k < n && in[k] == ';') k++;
    const uint32_t *s = in + j;
    size_t len = k - j;
    const cc_entity *e = entity_find_u32(cc_html5_entities, cc_html5_entities_n, s, len);
    size_t used = len;
    for (size_t x = len - 1; !e && x >= 2; x--) {
      e = entity_find_u32(cc_html5_entities, cc_html5_entities_n, s, x);
      if (e) used = x;
    }
    if (e) {
      CC_TRY(putn(out, e->to, e->n));
      CC_TRY(putn(out, s + used, len - used));
    } else {
      CC_TRY(put(out, '&'));
      CC_TRY(putn(out, s, len));
    }
    i = k;
  }
  return CLIPCL_OK;
}

/* ---- ftfy fixers -------------------------------------------------------------- */

/* fixes.unescape_html: only `&#?[0-9A-Za-z]{1,24};`, decoded when it is an
 * HTML5 name ending in ';', one of ftfy's upper-case names, or a numeric
 * reference that html.unescape decodes entirely. */
static clipcl_status ftfy_unescape(const uint32_t *in, size_t n, cc_u32s *out) {
  size_t i = 0;
  while (i < n) {
    if (in[i] != '&') {
      CC_TRY(put(out, in[i++]));
      continue;
    }
    size_t j = i + 1;
    int hash = j < n && in[j] == '#';
    if (hash) j++;
    size_t k = j;
    while (k < n && k - j <= 24 && is_ascii_alnum(in[k])) k++;
    if (k == j || k - j > 24 || k >= n || in[k] != ';') {
      CC_TRY(put(out, in[i++]));
      continue;
    }
    size_t end = k + 1; /* the match is in[i, end) */
    if (!hash) {
      const cc_entity *e = entity_find_u32(cc_html5_entities, cc_html5_entities_n, in + j, end - j);
      if (!e) e = entity_find_u32(cc_ftfy_upper_entities, cc_ftfy_upper_entities_n, in + j, end - j);
      if (e) CC_TRY(putn(out, e->to, e->n));
      else CC_TRY(putn(out, in + i, end - i));
    } else {
      size_t mark = out->n;
      CC_TRY(cc_html_unescape(in + i, end - i, out));
      int partial = 0;
      for (size_t q = mark; q < out->n; q++) partial |= out->p[q] == ';';
      if (partial) {
        out->n = mark;
        CC_TRY(putn(out, in + i, end - i));
      }
    }
    i = end;
  }
  return CLIPCL_OK;
}

/* the per-character fixers, in ftfy's order: C1 controls as Windows-1252,
 * Latin ligatures, full/half width, curly quotes */
static clipcl_status per_char_fixes(const uint32_t *in, size_t n, cc_u32s *out) {
  for (size_t i = 0; i < n; i++) {
    uint32_t c = in[i];
    if (c < 0x80) {
      CC_TRY(put(out, c));
      continue;
    }
    uint32_t a[8];
    size_t m = 1;
    a[0] = c;
    if (c <= 0x9F) a[0] = cc_c1_map[c - 0x80];
    /* ligature, width and quote maps each act on the previous one's output */
    for (int step = 0; step < 3; step++) {
      uint32_t b[8];
      size_t mb = 0;
      for (size_t q = 0; q < m; q++) {
        const cc_cp_map *e = NULL;
        uint32_t x = a[q];
        if (step == 0) e = cc_cp_map_find(cc_ligature_map, cc_ligature_map_n, x);
        else if (step == 1 && (x == 0x3000 || (x >= 0xFF01 && x <= 0xFFEF)))
          e = cc_cp_map_find(cc_width_map, cc_width_map_n, x);
        if (step == 2) {
          if (x == 0x02BC || (x >= 0x2018 && x <= 0x201B)) x = '\'';
          else if (x >= 0x201C && x <= 0x201F) x = '"';
        }
        if (e) {
          for (size_t r = 0; r < e->n; r++) b[mb++] = e->to[r];
        } else {
          b[mb++] = x;
        }
      }
      memcpy(a, b, mb * sizeof *b);
      m = mb;
    }
    CC_TRY(putn(out, a, m));
  }
  return CLIPCL_OK;
}

static clipcl_status fix_line_breaks(const uint32_t *in, size_t n, cc_u32s *out) {
  for (size_t i = 0; i < n; i++) {
    uint32_t c = in[i];
    if (c == '\r' && i + 1 < n && in[i + 1] == '\n') continue;
    if (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85) c = '\n';
    CC_TRY(put(out, c));
  }
  return CLIPCL_OK;
}

/* Python re's \d on str: any Unicode decimal digit */
static int py_decimal(uint32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  return utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_ND;
}

/* ANSI escapes `\033\[((?:\d|;)*)([a-zA-Z])` */
static clipcl_status remove_terminal_escapes(const uint32_t *in, size_t n, cc_u32s *out) {
  for (size_t i = 0; i < n; i++) {
    if (in[i] == 0x1B && i + 1 < n && in[i + 1] == '[') {
      size_t k = i + 2;
      while (k < n && (in[k] == ';' || py_decimal(in[k]))) k++;
      if (k < n && in[k] < 0x80 && ((in[k] | 0x20) >= 'a' && (in[k] | 0x20) <= 'z')) {
        i = k;
        continue;
      }
    }
    CC_TRY(put(out, in[i]));
  }
  return CLIPCL_OK;
}

static int ftfy_control(uint32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
         c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

static clipcl_status remove_control_chars(const uint32_t *in, size_t n, cc_u32s *out) {
  for (size_t i = 0; i < n; i++)
    if (!ftfy_control(in[i])) CC_TRY(put(out, in[i]));
  return CLIPCL_OK;
}

/* unicodedata.normalize('NFC') through utf8proc. Text made only of code
 * points below U+0300 is already NFC: nothing there decomposes or combines. */
static clipcl_status nfc(const uint32_t *in, size_t n, cc_u32s *out) {
  int simple = 1;
  for (size_t i = 0; i < n && simple; i++) simple = in[i] < 0x300;
  if (simple) return putn(out, in, n);
  if (n > SIZE_MAX / 4 - 1) return cc_fail(CLIPCL_ERR_NOMEM, "text: too long");
  char *u8 = malloc(n * 4 + 1);
  if (!u8) return cc_fail(CLIPCL_ERR_NOMEM, "text: out of memory");
  size_t len = 0;
  for (size_t i = 0; i < n; i++) len += cc_utf8_put(in[i], u8 + len);
  utf8proc_uint8_t *res = NULL;
  utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)u8, (utf8proc_ssize_t)len, &res,
                                    UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  free(u8);
  if (r < 0) {
    free(res);
    return cc_fail(CLIPCL_ERR_FORMAT, "text: NFC normalisation failed: %s", utf8proc_errmsg(r));
  }
  clipcl_status s = cc_utf8_decode((const char *)res, (size_t)r, out);
  free(res);
  return s;
}

typedef clipcl_status (*fixer)(const uint32_t *in, size_t n, cc_u32s *out);

/* fix_and_explain() on one segment: all fixers in order until nothing changes */
static clipcl_status fix_segment(const uint32_t *in, size_t n, int unescape, cc_u32s *out) {
  int plain = 1, amp = 0;
  for (size_t i = 0; i < n && plain; i++) {
    uint32_t c = in[i];
    plain = (c >= 0x20 && c < 0x7F) || c == '\t' || c == '\n';
    amp |= c == '&';
  }
  if (plain && !(unescape && amp)) return putn(out, in, n);

  static const fixer steps[] = {per_char_fixes, fix_line_breaks, remove_terminal_escapes, remove_control_chars, nfc};
  cc_u32s a = {0}, b = {0};
  clipcl_status s = putn(&a, in, n);
  /* every pass that changes the text shortens it or removes a fixable
   * character, so this settles in a few rounds; the cap only guards against
   * a table bug looping forever */
  for (int round = 0; s == CLIPCL_OK && round < 64; round++) {
    cc_u32s start = {0};
    s = putn(&start, a.p, a.n);
    if (s == CLIPCL_OK && unescape) {
      b.n = 0;
      s = ftfy_unescape(a.p, a.n, &b);
      cc_u32s t = a;
      a = b, b = t;
    }
    for (size_t k = 0; s == CLIPCL_OK && k < sizeof steps / sizeof *steps; k++) {
      b.n = 0;
      s = steps[k](a.p, a.n, &b);
      cc_u32s t = a;
      a = b, b = t;
    }
    int same = s == CLIPCL_OK && start.n == a.n && (a.n == 0 || !memcmp(start.p, a.p, a.n * sizeof *a.p));
    cc_u32s_free(&start);
    if (same) break;
  }
  if (s == CLIPCL_OK) s = putn(out, a.p, a.n);
  cc_u32s_free(&a);
  cc_u32s_free(&b);
  return s;
}

/* ftfy.fix_text: segments end after each '\n' (or every 10^6 code points);
 * once a segment holds '<' the text is taken for HTML and entities are left
 * alone in that segment and every later one. */
clipcl_status cc_ftfy_fix_text(const uint32_t *in, size_t n, cc_u32s *out) {
  int unescape = 1;
  size_t pos = 0;
  while (pos < n) {
    size_t end = pos;
    while (end < n && in[end] != '\n') end++;
    end = end < n ? end + 1 : n;
    if (end - pos > 1000000) end = pos + 1000000;
    for (size_t i = pos; i < end && unescape; i++)
      if (in[i] == '<') unescape = 0;
    CC_TRY(fix_segment(in + pos, end - pos, unescape, out));
    pos = end;
  }
  return CLIPCL_OK;
}

/* ---- str.lower() ----------------------------------------------------------------- */

static int final_sigma(const uint32_t *s, size_t n, size_t i) {
  size_t j = i;
  uint32_t c = 0;
  while (j > 0) {
    c = s[--j];
    if (!cc_cp_in_ranges(cc_case_ignorable, cc_case_ignorable_n, c)) goto found;
  }
  return 0;
found:
  if (!cc_cp_in_ranges(cc_cased, cc_cased_n, c)) return 0;
  for (j = i + 1; j < n; j++) {
    c = s[j];
    if (!cc_cp_in_ranges(cc_case_ignorable, cc_case_ignorable_n, c))
      return !cc_cp_in_ranges(cc_cased, cc_cased_n, c);
  }
  return 1;
}

clipcl_status cc_py_lower(const uint32_t *in, size_t n, cc_u32s *out) {
  CC_TRY(cc_u32s_reserve(out, out->n + n));
  for (size_t i = 0; i < n; i++) {
    uint32_t c = in[i];
    if (c < 0x80) {
      CC_TRY(put(out, c >= 'A' && c <= 'Z' ? c + 32 : c));
    } else if (c == 0x3A3) {
      CC_TRY(put(out, final_sigma(in, n, i) ? 0x3C2 : 0x3C3));
    } else {
      const cc_cp_map *e = cc_cp_map_find(cc_lower_map, cc_lower_map_n, c);
      if (e) CC_TRY(putn(out, e->to, e->n));
      else CC_TRY(put(out, c));
    }
  }
  return CLIPCL_OK;
}

/* ---- the whole cleaning ------------------------------------------------------ */

clipcl_status cc_text_clean(const uint32_t *in, size_t n, cc_u32s *out) {
  cc_u32s a = {0}, b = {0};
  clipcl_status s = cc_ftfy_fix_text(in, n, &a);
  for (int k = 0; k < 2 && s == CLIPCL_OK; k++) {
    int amp = 0;
    for (size_t i = 0; i < a.n && !amp; i++) amp = a.p[i] == '&';
    if (!amp) break;
    b.n = 0;
    s = cc_html_unescape(a.p, a.n, &b);
    cc_u32s t = a;
    a = b, b = t;
  }
  if (s == CLIPCL_OK) {
    /* strip(), `\s+` -> ' ', strip() */
    size_t lo = 0, hi = a.n;
    while (lo < hi && cc_py_isspace(a.p[lo])) lo++;
    while (hi > lo && cc_py_isspace(a.p[hi - 1])) hi--;
    b.n = 0;
    for (size_t i = lo; i < hi && s == CLIPCL_OK; i++) {
      if (cc_regex_space(a.p[i])) {
        while (i + 1 < hi && cc_regex_space(a.p[i + 1])) i++;
        s = put(&b, ' ');
      } else {
        s = put(&b, a.p[i]);
      }
    }
    lo = 0, hi = b.n;
    while (lo < hi && cc_py_isspace(b.p[lo])) lo++;
    while (hi > lo && cc_py_isspace(b.p[hi - 1])) hi--;
    out->n = 0;
    if (s == CLIPCL_OK && hi > lo) s = cc_py_lower(b.p + lo, hi - lo, out); /* b.p is NULL when empty */
  }
  cc_u32s_free(&a);
  cc_u32s_free(&b);
  return s;
}

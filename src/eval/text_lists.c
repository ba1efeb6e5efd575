/* text_lists.c: class-name and template lists (one UTF-8 entry per line),
 * the built-in ImageNet template sets, and template formatting.
 *
 * Rules (clipcl.h): an optional UTF-8 BOM and CRLF line ends are accepted;
 * spaces and tabs around an entry are dropped; a blank line, invalid UTF-8, a
 * control character, a duplicate entry, or a template without "{}" is an
 * error naming the file and the 1-based line. Not here: tokenising the
 * formatted prompts or encoding them (the text tower's job).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clipcl.h"
#include "eval/eval.h"
#include "util/file.h"
#include "util/error.h"

#define LIST_MAX_FILE (64u << 20)
#define LIST_MAX_ENTRY 65536
#define LIST_MAX_ENTRIES 1000000

/* OpenAI's 80 ImageNet prompt templates and the 7-template subset, as listed
 * in open_clip 2.20.0's zero_shot_metadata.py (OPENAI_IMAGENET_TEMPLATES and
 * SIMPLE_IMAGENET_TEMPLATES, from OpenAI's Prompt_Engineering_for_ImageNet
 * notebook; MIT licence), with the f-string slot written "{}". */
static const char *const openai_templates[] = {
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.",
    "a photo of the hard to see {}.", "a low resolution photo of the {}.", "a rendering of a {}.",
    "graffiti of a {}.", "a bad photo of the {}.", "a cropped photo of the {}.",
    "a tattoo of a {}.", "the embroidered {}.", "a photo of a hard to see {}.",
    "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.",
    "a dark photo of the {}.", "a drawing of a {}.", "a photo of my {}.", "the plastic {}.",
    "a photo of the cool {}.", "a close-up photo of a {}.", "a black and white photo of the {}.",
    "a painting of the {}.", "a painting of a {}.", "a pixelated photo of the {}.",
    "a sculpture of the {}.", "a bright photo of the {}.", "a cropped photo of a {}.",
    "a plastic {}.", "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.",
    "a rendering of the {}.", "a {} in a video game.", "a photo of one {}.", "a doodle of a {}.",
    "a close-up photo of the {}.", "a photo of a {}.", "the origami {}.", "the {} in a video game.",
    "a sketch of a {}.", "a doodle of the {}.", "a origami {}.", "a low resolution photo of a {}.",
    "the toy {}.", "a rendition of the {}.", "a photo of the clean {}.", "a photo of a large {}.",
    "a rendition of a {}.", "a photo of a nice {}.", "a photo of a weird {}.",
    "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.", "a sketch of the {}.",
    "a embroidered {}.", "a pixelated photo of a {}.", "itap of the {}.",
    "a jpeg corrupted photo of the {}.", "a good photo of a {}.", "a plushie {}.",
    "a photo of the nice {}.", "a photo of the small {}.", "a photo of the weird {}.",
    "the cartoon {}.", "art of the {}.", "a drawing of the {}.", "a photo of the large {}.",
    "a black and white photo of a {}.", "the plushie {}.", "a dark photo of a {}.", "itap of a {}.",
    "graffiti of the {}.", "a toy {}.", "itap of my {}.", "a photo of a cool {}.",
    "a photo of a small {}.", "a tattoo of the {}.",
};
static const char *const simple_templates[] = {
    "itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
    "a {} in a video game.", "art of the {}.", "a photo of the small {}.",
};

void clipcl_text_list_free(clipcl_text_list *l) {
  if (!l) return;
  for (int i = 0; i < l->n; i++) free(l->items[i]);
  free(l->items);
  l->items = NULL;
  l->n = 0;
}

typedef struct {
  const char *s;
  int line;
} entry_ref;

static int cmp_entry(const void *a, const void *b) {
  const entry_ref *x = a, *y = b;
  int c = strcmp(x->s, y->s);
  return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* The earliest line that repeats an earlier entry, and that entry's line. */
static int find_duplicate(char **items, const int *lines, int n, int *first) {
  entry_ref *r = malloc((size_t)n * sizeof *r);
  if (!r) return -2;
  for (int i = 0; i < n; i++) r[i] = (entry_ref){items[i], lines[i]};
  qsort(r, (size_t)n, sizeof *r, cmp_entry);
  int best = -1;
  for (int i = 1; i < n; i++) {
    if (strcmp(r[i].s, r[i - 1].s) != 0) continue;
    int g = i - 1;
    while (g > 0 && strcmp(r[g - 1].s, r[i].s) == 0) g--;
    if (best < 0 || r[i].line < best) {
      best = r[i].line;
      *first = r[g].line;
    }
  }
  free(r);
  return best;
}

static const char *kind_name(int kind) { return kind == CLIPCL_LIST_TEMPLATES ? "template" : "class name"; }

clipcl_status clipcl_text_list_parse(const char *data, size_t len, const char *source, int kind,
                                     clipcl_text_list *out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "text list: no output");
  *out = (clipcl_text_list){0, NULL};
  if (!source) source = "<memory>";
  if (!data && len) return cc_fail(CLIPCL_ERR_ARG, "%s: no data", source);
  if (kind != CLIPCL_LIST_CLASSNAMES && kind != CLIPCL_LIST_TEMPLATES)
    return cc_fail(CLIPCL_ERR_ARG, "%s: unknown list kind %d", source, kind);
  const unsigned char *p = (const unsigned char *)data, *end = p + len;
  if (len >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) p += 3;

  clipcl_text_list l = {0, NULL};
  int *lines = NULL, cap = 0;
  clipcl_status st = CLIPCL_OK;
  for (int line = 1; p < end; line++) {
    const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
    const unsigned char *e = nl ? nl : end, *next = nl ? nl + 1 : end;
    if (e > p && e[-1] == '\r') e--;
    size_t bad = cc_utf8_check(p, (size_t)(e - p));
    if (bad != (size_t)(e - p)) {
      st = cc_fail(CLIPCL_ERR_FORMAT, "%s:%d: invalid UTF-8 at byte %zu of the line", source, line, bad + 1);
      break;
    }
    for (const unsigned char *c = p; c < e; c++)
      if ((*c < 0x20 && *c != '\t') || *c == 0x7f) {
        st = cc_fail(CLIPCL_ERR_FORMAT, "%s:%d: control character 0x%02x at byte %zu of the line", source,
                     line, *c, (size_t)(c - p) + 1);
        break;
      }
    if (st) break;
    while (p < e && (*p == ' ' || *p == '\t')) p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t')) e--;
    size_t n = (size_t)(e - p);
    if (n == 0) {
      st = cc_fail(CLIPCL_ERR_FORMAT, "%s:%d: blank line (one %s per line, no blank lines)", source, line,
                   kind_name(kind));
      break;
    }
    if (n > LIST_MAX_ENTRY) {
      st = cc_fail(CLIPCL_ERR_FORMAT, "%s:%d: entry longer than %d bytes", source, line, LIST_MAX_ENTRY);
      break;
    }
    if (kind == CLIPCL_LIST_TEMPLATES) {
      int has = 0;
      for (size_t i = 0; i + 1 < n; i++)
        if (p[i] == '{' && p[i + 1] == '}') has = 1;
      if (!has) {
        st = cc_fail(CLIPCL_ERR_FORMAT, "%s:%d: template has no \"{}\" for the class name", source, line);
        break;
      }
    }
    if (l.n == LIST_MAX_ENTRIES) {
      st = cc_fail(CLIPCL_ERR_FORMAT, "%s:%d: more than %d entries", source, line, LIST_MAX_ENTRIES);
      break;
    }
    if (l.n == cap) {
      int nc = cap ? cap * 2 : 64;
      char **ni = realloc(l.items, (size_t)nc * sizeof *ni);
      if (ni) l.items = ni;
      int *nli = ni ? realloc(lines, (size_t)nc * sizeof *nli) : NULL;
      if (!nli) {
        st = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", source);
        break;
      }
      lines = nli;
      cap = nc;
    }
    char *s = malloc(n + 1);
    if (!s) {
      st = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", source);
      break;
    }
    memcpy(s, p, n);
    s[n] = 0;
    lines[l.n] = line;
    l.items[l.n++] = s;
    p = next;
  }
  if (!st && l.n == 0) st = cc_fail(CLIPCL_ERR_FORMAT, "%s: no %s entries", source, kind_name(kind));
  if (!st) {
    int first = 0, dup = find_duplicate(l.items, lines, l.n, &first);
    if (dup == -2)
      st = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", source);
    else if (dup > 0)
      st = cc_fail(CLIPCL_ERR_FORMAT, "%s:%d: duplicate %s (same as line %d)", source, dup, kind_name(kind),
                   first);
  }
  free(lines);
  if (st) {
    clipcl_text_list_free(&l);
    return st;
  }
  *out = l;
  return CLIPCL_OK;
}

clipcl_status clipcl_text_list_load(const char *path, int kind, clipcl_text_list *out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "text list: no output");
  *out = (clipcl_text_list){0, NULL};
  if (!path) return cc_fail(CLIPCL_ERR_ARG, "text list: no path");
  char *buf;
  size_t len;
  clipcl_status st = cc_read_file(path, LIST_MAX_FILE, &buf, &len);
  if (!st) st = clipcl_text_list_parse(buf, len, path, kind, out);
  free(buf);
  return st;
}

static clipcl_status copy_builtin(const char *const *src, int n, clipcl_text_list *out) {
  clipcl_text_list l = {0, calloc((size_t)n, sizeof(char *))};
  if (!l.items) return cc_fail(CLIPCL_ERR_NOMEM, "templates: out of memory");
  for (; l.n < n; l.n++) {
    size_t len = strlen(src[l.n]) + 1;
    if (!(l.items[l.n] = malloc(len))) {
      clipcl_text_list_free(&l);
      return cc_fail(CLIPCL_ERR_NOMEM, "templates: out of memory");
    }
    memcpy(l.items[l.n], src[l.n], len);
  }
  *out = l;
  return CLIPCL_OK;
}

clipcl_status clipcl_templates_get(const char *name_or_path, clipcl_text_list *out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "templates: no output");
  *out = (clipcl_text_list){0, NULL};
  if (!name_or_path || !*name_or_path) return cc_fail(CLIPCL_ERR_ARG, "templates: no name or path");
  if (strcmp(name_or_path, "openai") == 0)
    return copy_builtin(openai_templates, (int)(sizeof openai_templates / sizeof *openai_templates), out);
  if (strcmp(name_or_path, "simple") == 0)
    return copy_builtin(simple_templates, (int)(sizeof simple_templates / sizeof *simple_templates), out);
  return clipcl_text_list_load(name_or_path, CLIPCL_LIST_TEMPLATES, out);
}

clipcl_status clipcl_template_format(const char *tmpl, const char *classname, char **out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "template format: no output");
  *out = NULL;
  if (!tmpl || !classname) return cc_fail(CLIPCL_ERR_ARG, "template format: NULL template or class name");
  size_t tl = strlen(tmpl), cl = strlen(classname), slots = 0;
  for (size_t i = 0; i + 1 < tl; i++)
    if (tmpl[i] == '{' && tmpl[i + 1] == '}') slots++, i++;
  if (slots == 0) return cc_fail(CLIPCL_ERR_ARG, "template \"%s\" has no \"{}\"", tmpl);
  if (cl > 2 && slots > (SIZE_MAX - tl - 1) / (cl - 2))
    return cc_fail(CLIPCL_ERR_ARG, "template format: result too long");
  size_t n = tl - 2 * slots + slots * cl;
  char *s = malloc(n + 1), *w = s;
  if (!s) return cc_fail(CLIPCL_ERR_NOMEM, "template format: out of memory");
  for (size_t i = 0; i < tl; i++) {
    if (i + 1 < tl && tmpl[i] == '{' && tmpl[i + 1] == '}') {
      memcpy(w, classname, cl);
      w += cl;
      i++;
    } else {
      *w++ = tmpl[i];
    }
  }
  *w = 0;
  *out = s;
  return CLIPCL_OK;
}

/* dataset.c: clipcl_dataset_open (which source a spec names), the row arena
 * shared by CSV and folder sources, the accessors, and small string helpers
 * (UTF-8 check, blank test, path join, seed mixing). The sources themselves
 * are in source_csv.c, source_tar.c and source_folder.c; batches in loader.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data.h"
#include "util/error.h"

void clipcl_dataset_options_init(clipcl_dataset_options *o) {
  if (o) memset(o, 0, sizeof *o);
}

static clipcl_data_kind guess_kind(const char *spec) {
  if (strstr(spec, "::") || strchr(spec, '{')) return CLIPCL_DATA_TAR;
  if (cc_ends_with_ci(spec, ".tar") || cc_ends_with_ci(spec, ".tgz") || cc_ends_with_ci(spec, ".tar.gz"))
    return CLIPCL_DATA_TAR;
  if (cc_ends_with_ci(spec, ".csv") || cc_ends_with_ci(spec, ".tsv")) return CLIPCL_DATA_CSV;
  struct stat st;
  if (stat(spec, &st) == 0 && S_ISDIR(st.st_mode)) return CLIPCL_DATA_FOLDER;
  return CLIPCL_DATA_AUTO;
}

clipcl_status clipcl_dataset_open(const char *spec, const clipcl_dataset_options *opt, clipcl_dataset **out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "dataset: no output handle");
  *out = NULL;
  if (!spec || !*spec) return cc_fail(CLIPCL_ERR_ARG, "dataset: empty data set spec");
  clipcl_dataset_options defaults;
  clipcl_dataset_options_init(&defaults);
  if (!opt) opt = &defaults;
  clipcl_data_kind kind = opt->kind;
  if (kind == CLIPCL_DATA_AUTO) kind = guess_kind(spec);
  if (kind == CLIPCL_DATA_AUTO) {
    struct stat st;
    if (stat(spec, &st) != 0)
      return cc_fail(CLIPCL_ERR_IO, "%s: cannot open data set: %s", spec, strerror(errno));
    return cc_fail(CLIPCL_ERR_ARG,
                   "%s: cannot tell the kind of data set from its name (expected a .csv/.tsv manifest, "
                   ".tar shards or a directory of class folders)",
                   spec);
  }
  if (kind != CLIPCL_DATA_CSV && kind != CLIPCL_DATA_TAR && kind != CLIPCL_DATA_FOLDER)
    return cc_fail(CLIPCL_ERR_ARG, "%s: unknown data set kind %d", spec, (int)kind);

  clipcl_dataset *ds = calloc(1, sizeof *ds);
  if (!ds) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", spec);
  ds->kind = kind;
  ds->size = -1;
  ds->spec = strdup(spec);
  if (!ds->spec) {
    free(ds);
    return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", spec);
  }
  clipcl_status s;
  switch (kind) {
    case CLIPCL_DATA_CSV: s = cc_csv_open(ds, spec, opt); break;
    case CLIPCL_DATA_TAR: s = cc_tar_open(ds, spec); break;
    default: s = cc_folder_open(ds, spec); break;
  }
  if (s != CLIPCL_OK) {
    clipcl_dataset_free(ds);
    return s;
  }
  *out = ds;
  return CLIPCL_OK;
}

void clipcl_dataset_free(clipcl_dataset *ds) {
  if (!ds) return;
  free(ds->spec);
  free(ds->base_dir);
  free(ds->arena);
  free(ds->rows);
  cc_names_free(ds->classes, ds->nclasses);
  free(ds->shards); /* one block (cc_brace_expand) */
  free(ds);
}

clipcl_data_kind clipcl_dataset_kind(const clipcl_dataset *ds) { return ds ? ds->kind : CLIPCL_DATA_AUTO; }
int64_t clipcl_dataset_size(const clipcl_dataset *ds) { return ds ? ds->size : -1; }
int clipcl_dataset_num_shards(const clipcl_dataset *ds) { return ds ? ds->nshards : 0; }
int clipcl_dataset_has_captions(const clipcl_dataset *ds) { return ds ? ds->has_captions : 0; }
int clipcl_dataset_has_labels(const clipcl_dataset *ds) { return ds ? ds->has_labels : 0; }

int clipcl_dataset_num_classes(const clipcl_dataset *ds) {
  if (!ds) return 0;
  if (ds->kind == CLIPCL_DATA_FOLDER) return ds->nclasses;
  return ds->has_labels ? ds->num_labels : 0;
}

const char *clipcl_dataset_class_name(const clipcl_dataset *ds, int i) {
  if (!ds || ds->kind != CLIPCL_DATA_FOLDER || i < 0 || i >= ds->nclasses) return NULL;
  return ds->classes[i];
}

const char *clipcl_dataset_caption(const clipcl_dataset *ds, int64_t row) {
  if (!ds || !ds->has_captions || !ds->rows || row < 0 || (uint64_t)row >= ds->nrows) return NULL;
  return ds->arena + ds->rows[row].caption;
}

const char *clipcl_dataset_image_path(const clipcl_dataset *ds, int64_t row, char *buf, size_t cap) {
  if (!ds || !ds->rows || row < 0 || (uint64_t)row >= ds->nrows || !buf || cap == 0) return NULL;
  char *p = cc_row_path(ds, &ds->rows[row]);
  if (!p) return NULL;
  size_t n = strlen(p);
  if (n >= cap) {
    free(p);
    return NULL;
  }
  memcpy(buf, p, n + 1);
  free(p);
  return buf;
}

/* ---- arena and rows ------------------------------------------------------ */
clipcl_status cc_arena_put(clipcl_dataset *ds, const char *s, size_t n, uint64_t *off) {
  if (n > SIZE_MAX / 2 - ds->arena_len - 1)
    return cc_fail(CLIPCL_ERR_NOMEM, "%s: data set strings exceed the address space", ds->spec);
  size_t need = ds->arena_len + n + 1;
  if (need > ds->arena_cap) {
    size_t cap = ds->arena_cap ? ds->arena_cap : 4096;
    while (cap < need) cap *= 2;
    char *a = realloc(ds->arena, cap);
    if (!a) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory for %zu bytes of paths and captions", ds->spec, cap);
    ds->arena = a;
    ds->arena_cap = cap;
  }
  if (n) memcpy(ds->arena + ds->arena_len, s, n);
  ds->arena[ds->arena_len + n] = 0;
  *off = ds->arena_len;
  ds->arena_len = need;
  return CLIPCL_OK;
}

clipcl_status cc_rows_push(clipcl_dataset *ds, const cc_row *r) {
  if (ds->nrows == ds->rows_cap) {
    size_t cap = ds->rows_cap ? ds->rows_cap * 2 : 256;
    if (cap > SIZE_MAX / sizeof *ds->rows) return cc_fail(CLIPCL_ERR_NOMEM, "%s: too many rows", ds->spec);
    cc_row *p = realloc(ds->rows, cap * sizeof *p);
    if (!p) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory for %zu rows", ds->spec, cap);
    ds->rows = p;
    ds->rows_cap = cap;
  }
  ds->rows[ds->nrows++] = *r;
  return CLIPCL_OK;
}

char *cc_row_path(const clipcl_dataset *ds, const cc_row *r) {
  const char *p = ds->arena + r->path;
  if (p[0] == '/' || !ds->base_dir || !ds->base_dir[0]) return strdup(p);
  return cc_path_join(ds->base_dir, p);
}

const char *cc_row_source(const clipcl_dataset *ds, size_t row, char *buf, size_t cap) {
  const cc_row *r = &ds->rows[row];
  if (ds->kind == CLIPCL_DATA_CSV)
    snprintf(buf, cap, "%s:%llu (row %llu)", ds->spec, (unsigned long long)r->line, (unsigned long long)row + 1);
  else
    snprintf(buf, cap, "%s", ds->arena + r->path);
  return buf;
}

const char *cc_row_flaw_text(const clipcl_dataset *ds, const cc_row *r, char *buf, size_t cap) {
  (void)ds;
  switch ((cc_row_flaw)r->flaw) {
    case CC_ROW_OK: snprintf(buf, cap, "no problem"); break;
    case CC_ROW_SHORT: snprintf(buf, cap, "row has only %d field(s), too few for the columns used", r->nfields); break;
    case CC_ROW_LONG: snprintf(buf, cap, "row has %s%d fields, more than the header", r->nfields == 255 ? ">= " : "", r->nfields); break;
    case CC_ROW_FIELD_BIG: snprintf(buf, cap, "a field is longer than %zu bytes", CC_DATA_MAX_CAPTION); break;
    case CC_ROW_NO_PATH: snprintf(buf, cap, "empty image path (or one holding a NUL byte)"); break;
    case CC_ROW_LABEL: snprintf(buf, cap, "label is not an integer in 0..%d", CC_DATA_MAX_LABEL); break;
  }
  return buf;
}

/* ---- helpers ---------------------------------------------------------------- */
int cc_utf8_valid(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    int len;
    unsigned cp, min;
    if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (n - i < (size_t)len) return 0;
    for (int k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    i += (size_t)len;
  }
  return 1;
}

/* Python's str.strip() white space: ASCII \t\n\v\f\r space, \x1c-\x1f,
 * U+0085, U+00A0, U+1680, U+2000-200A, U+2028/2029, U+202F, U+205F, U+3000. */
int cc_blank(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) {
      i++;
      continue;
    }
    if (c == 0xc2 && i + 1 < n && (s[i + 1] == 0x85 || s[i + 1] == 0xa0)) {
      i += 2;
      continue;
    }
    if (i + 2 < n) {
      unsigned cp = ((c & 0x0fu) << 12) | ((s[i + 1] & 0x3fu) << 6) | (s[i + 2] & 0x3fu);
      if ((c & 0xf0) == 0xe0 && (s[i + 1] & 0xc0) == 0x80 && (s[i + 2] & 0xc0) == 0x80 &&
          (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
           cp == 0x205f || cp == 0x3000)) {
        i += 3;
        continue;
      }
    }
    return 0;
  }
  return 1;
}

int cc_ends_with_ci(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  if (m > n) return 0;
  for (size_t i = 0; i < m; i++) {
    unsigned char a = (unsigned char)s[n - m + i], b = (unsigned char)suffix[i];
    if (a >= 'A' && a <= 'Z') a = (unsigned char)(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = (unsigned char)(b - 'A' + 'a');
    if (a != b) return 0;
  }
  return 1;
}

char *cc_path_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  int slash = a > 0 && dir[a - 1] != '/';
  char *p = malloc(a + b + (size_t)slash + 1);
  if (!p) return NULL;
  memcpy(p, dir, a);
  if (slash) p[a] = '/';
  memcpy(p + a + slash, name, b + 1);
  return p;
}

static uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t cc_data_seed(uint64_t seed, uint64_t purpose, uint64_t epoch, uint64_t index) {
  return mix64(mix64(mix64(mix64(seed) ^ purpose) ^ epoch) ^ index);
}

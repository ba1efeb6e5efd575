/* source_csv.c: CSV/TSV manifests as open_clip's CsvDataset reads them with
 * pandas.read_csv(sep=...): a header row naming the columns, the image path
 * and caption (or integer label) columns picked by name, '"' quoting with
 * doubled quotes and separators or line breaks inside quotes, a UTF-8 BOM,
 * \n, \r\n or \r line ends, blank lines skipped. Not here: opening images or
 * checking captions (the loader's workers do that, so a bad row is reported
 * when it comes up rather than failing the whole manifest).
 *
 * Where we part from pandas, on purpose: a row with more fields than the
 * header is one bad sample (pandas fails the whole file); an empty or missing
 * field stays empty (pandas turns it into NaN, which open_clip captions as
 * "nan"); "NA", "null" and friends are text, not missing values. The file is
 * parsed in one streaming pass; only the two needed columns are stored.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "util/error.h"

/* Header names beyond this many columns are not believable for a manifest. */
#define CSV_MAX_COLUMNS 65536

typedef struct {
  FILE *f;
  const char *path;
  unsigned char buf[1 << 16];
  size_t len, pos;
  int eof;
  uint64_t line; /* physical line of the next character, from 1 */
} reader;

static int rd_get(reader *r) {
  if (r->pos == r->len) {
    if (r->eof) return EOF;
    r->len = fread(r->buf, 1, sizeof r->buf, r->f);
    r->pos = 0;
    if (r->len == 0) {
      r->eof = 1;
      return EOF;
    }
  }
  return r->buf[r->pos++];
}

static int rd_peek(reader *r) {
  int c = rd_get(r);
  if (c != EOF) r->pos--;
  return c;
}

/* Field text of the record being parsed; grows, and remembers when it had to
 * cut a field (over CC_DATA_MAX_CAPTION) so the row is flagged. */
typedef struct {
  char *v;
  size_t n, cap;
  int too_big;
} field;

static clipcl_status fld_put(field *f, char c, const char *path) {
  if (f->n >= CC_DATA_MAX_CAPTION) {
    f->too_big = 1;
    return CLIPCL_OK;
  }
  if (f->n + 1 >= f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 256;
    char *v = realloc(f->v, cap);
    if (!v) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
    f->v = v;
    f->cap = cap;
  }
  f->v[f->n++] = c;
  return CLIPCL_OK;
}

/* A record being read: which columns we keep and their text. */
typedef struct {
  int want[2];      /* column indexes to keep (-1: none) */
  field keep[2];
  int nfields;
  int too_big;
  uint64_t start_line;
  field header;     /* header mode: every field, NUL-separated */
  int header_mode;
  int header_fields;
} record;

/* Reads one record; returns 1 when a record was read, 0 at end of file,
 * negative on error (message set). Blank lines are skipped. */
static int read_record(reader *r, char sep, record *rec) {
  int c;
  /* skip blank lines: empty, or only spaces (and tabs unless tab separates) */
  for (;;) {
    c = rd_peek(r);
    if (c == EOF) return 0;
    if (c == '\n' || c == '\r') {
      rd_get(r);
      if (c == '\r' && rd_peek(r) == '\n') rd_get(r);
      r->line++;
      continue;
    }
    if (c == ' ' || (c == '\t' && sep != '\t')) {
      /* look ahead within the buffer for a whitespace-only line; if it runs
       * past the buffer, treat it as content (rare, and harmless: a row of
       * blanks then fails as a short row) */
      size_t k = r->pos;
      while (k < r->len && (r->buf[k] == ' ' || (r->buf[k] == '\t' && sep != '\t'))) k++;
      if (k < r->len && (r->buf[k] == '\n' || r->buf[k] == '\r')) {
        r->pos = k;
        continue;
      }
    }
    break;
  }
  rec->start_line = r->line;
  rec->nfields = 0;
  rec->too_big = 0;
  for (int k = 0; k < 2; k++) rec->keep[k].n = 0, rec->keep[k].too_big = 0;
  rec->header.n = 0;
  rec->header_fields = 0;

  enum { START, PLAIN, QUOTED, QUOTE_IN_QUOTED } st = START;
  field *cur = NULL;
  clipcl_status s = CLIPCL_OK;
#define PUT(ch)                                     \
  do {                                              \
    if (cur) s = fld_put(cur, (char)(ch), r->path); \
    if (s != CLIPCL_OK) return -1;                  \
  } while (0)
#define BEGIN_FIELD()                                                         \
  do {                                                                        \
    cur = NULL;                                                               \
    if (rec->header_mode) {                                                   \
      if (rec->nfields >= CSV_MAX_COLUMNS) {                                  \
        cc_fail(CLIPCL_ERR_FORMAT, "%s: header has more than %d columns", r->path, CSV_MAX_COLUMNS); \
        return -1;                                                            \
      }                                                                       \
      cur = &rec->header;                                                     \
    } else {                                                                  \
      for (int k_ = 0; k_ < 2; k_++)                                          \
        if (rec->want[k_] == rec->nfields) cur = &rec->keep[k_];              \
    }                                                                         \
  } while (0)
#define END_FIELD()                                                           \
  do {                                                                        \
    if (rec->header_mode) PUT(0); /* the NUL counts: it may overflow */      \
    if (cur && cur->too_big) rec->too_big = 1;                                \
    if (rec->nfields < 0x7fffffff) rec->nfields++;                            \
  } while (0)

  BEGIN_FIELD();
  for (;;) {
    c = rd_get(r);
    if (c == EOF) {
      if (st == QUOTED) {
        cc_fail(CLIPCL_ERR_FORMAT, "%s:%llu: end of file inside a quoted field", r->path,
                (unsigned long long)rec->start_line);
        return -1;
      }
      END_FIELD();
      return 1;
    }
    int newline = c == '\n' || c == '\r';
    if (newline) {
      if (c == '\r' && rd_peek(r) == '\n') {
        rd_get(r);
        if (st == QUOTED) {
          PUT('\r'); /* a CRLF inside quotes is kept as it is */
          c = '\n';
        }
      }
      r->line++;
    }
    switch (st) {
      case START:
        if (c == '"') {
          st = QUOTED;
          break;
        }
        /* fall through */
      case PLAIN:
        if (newline) {
          END_FIELD();
          return 1;
        }
        if (c == sep) {
          END_FIELD();
          BEGIN_FIELD();
          st = START;
          break;
        }
        PUT(c);
        st = PLAIN;
        break;
      case QUOTED:
        if (c == '"')
          st = QUOTE_IN_QUOTED;
        else
          PUT(c);
        break;
      case QUOTE_IN_QUOTED:
        if (c == '"') {
          PUT('"');
          st = QUOTED;
        } else if (newline) {
          END_FIELD();
          return 1;
        } else if (c == sep) {
          END_FIELD();
          BEGIN_FIELD();
          st = START;
        } else {
          /* text after a closing quote joins the field, as in pandas */
          PUT(c);
          st = PLAIN;
        }
        break;
    }
  }
#undef PUT
#undef BEGIN_FIELD
#undef END_FIELD
}

/* "12" -> 12; only digits (an optional '+'), at most CC_DATA_MAX_LABEL. */
static int parse_label(const char *s, size_t n, int32_t *out) {
  size_t i = 0;
  if (i < n && s[i] == '+') i++;
  if (i == n) return 0;
  long long v = 0;
  for (; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    v = v * 10 + (s[i] - '0');
    if (v > CC_DATA_MAX_LABEL) return 0;
  }
  *out = (int32_t)v;
  return 1;
}

static clipcl_status find_columns(const char *path, const record *hdr, const char *img_key, const char *second_key,
                                  int *img_col, int *second_col) {
  *img_col = *second_col = -1;
  const char *p = hdr->header.v;
  for (int i = 0; i < hdr->nfields; i++) {
    size_t n = strlen(p);
    /* the first of duplicated names wins: pandas renames the later ones */
    if (*img_col < 0 && strcmp(p, img_key) == 0) *img_col = i;
    if (*second_col < 0 && strcmp(p, second_key) == 0) *second_col = i;
    p += n + 1;
  }
  const char *missing = *img_col < 0 ? img_key : *second_col < 0 ? second_key : NULL;
  if (!missing) return CLIPCL_OK;
  char cols[512];
  size_t w = 0;
  cols[0] = 0;
  p = hdr->header.v;
  for (int i = 0; i < hdr->nfields && w < sizeof cols - 8; i++) {
    size_t n = strlen(p);
    int k = snprintf(cols + w, sizeof cols - w, "%s'%s'", i ? ", " : "", p);
    if (k < 0 || (size_t)k >= sizeof cols - w) {
      snprintf(cols + w, sizeof cols - w, ", ...");
      break;
    }
    w += (size_t)k;
    p += n + 1;
  }
  return cc_fail(CLIPCL_ERR_FORMAT, "%s: no column '%s' in the header (columns: %s)", path, missing, cols);
}

clipcl_status cc_csv_open(clipcl_dataset *ds, const char *path, const clipcl_dataset_options *o) {
  const char *img_key = o->img_key ? o->img_key : "filepath";
  const char *label_key = o->label_key;
  const char *cap_key = o->caption_key ? o->caption_key : "title";
  char sep;
  if (o->separator && o->separator[0]) {
    if (o->separator[1])
      return cc_fail(CLIPCL_ERR_UNSUPPORTED, "%s: separator '%s' is longer than one character", path,
                     o->separator);
    sep = o->separator[0];
  } else {
    sep = cc_ends_with_ci(path, ".tsv") ? '\t' : ',';
  }
  if (sep == '"' || sep == '\n' || sep == '\r')
    return cc_fail(CLIPCL_ERR_ARG, "%s: the separator cannot be a quote or a line break", path);

  /* image paths are relative to the manifest's directory */
  const char *slash = strrchr(path, '/');
  ds->base_dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup("");
  if (!ds->base_dir) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
  ds->has_labels = label_key != NULL;
  ds->has_captions = !ds->has_labels;

  reader *r = calloc(1, sizeof *r);
  if (!r) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
  r->path = path;
  r->line = 1;
  r->f = fopen(path, "rb");
  if (!r->f) {
    clipcl_status s = cc_fail(CLIPCL_ERR_IO, "%s: cannot open manifest: %s", path, strerror(errno));
    free(r);
    return s;
  }
  /* UTF-8 byte-order mark */
  if (rd_get(r) == 0xef) {
    if (rd_get(r) == 0xbb && rd_get(r) == 0xbf)
      ;
    else
      r->pos = 0;
  } else {
    r->pos = 0;
  }

  record rec;
  memset(&rec, 0, sizeof rec);
  rec.want[0] = rec.want[1] = -1;
  rec.header_mode = 1;
  clipcl_status s = CLIPCL_OK;
  int got = read_record(r, sep, &rec);
  if (got < 0) {
    s = CLIPCL_ERR_FORMAT;
    if (strstr(clipcl_last_error(), "out of memory")) s = CLIPCL_ERR_NOMEM;
    goto done;
  }
  if (got == 0) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: empty manifest (no header row)", path);
    goto done;
  }
  if (rec.too_big) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: header row longer than %zu bytes", path, CC_DATA_MAX_CAPTION);
    goto done;
  }
  int ncols = rec.nfields;
  int img_col, second_col;
  s = find_columns(path, &rec, img_key, label_key ? label_key : cap_key, &img_col, &second_col);
  if (s != CLIPCL_OK) goto done;
  rec.header_mode = 0;
  rec.want[0] = img_col;
  rec.want[1] = second_col;
  int need = (img_col > second_col ? img_col : second_col) + 1;
  int maxlabel = -1;
  uint64_t nrows = 0;
  for (;;) {
    got = read_record(r, sep, &rec);
    if (got < 0) {
      s = strstr(clipcl_last_error(), "out of memory") ? CLIPCL_ERR_NOMEM : CLIPCL_ERR_FORMAT;
      goto done;
    }
    if (got == 0) break;
    if (ferror(r->f)) break;
    cc_row row = {0};
    row.line = rec.start_line;
    row.label = -1;
    row.nfields = (uint8_t)(rec.nfields > 255 ? 255 : rec.nfields);
    if (rec.nfields > ncols) row.flaw = CC_ROW_LONG;
    else if (rec.nfields < need) row.flaw = CC_ROW_SHORT;
    else if (rec.too_big) row.flaw = CC_ROW_FIELD_BIG;
    else if (rec.keep[0].n == 0) row.flaw = CC_ROW_NO_PATH;
    else if (memchr(rec.keep[0].v, 0, rec.keep[0].n)) row.flaw = CC_ROW_NO_PATH;
    const field *pf = &rec.keep[0], *cf = &rec.keep[1];
    if (!row.flaw && label_key) {
      if (!parse_label(cf->v, cf->n, &row.label)) row.flaw = CC_ROW_LABEL;
      else if (row.label > maxlabel) maxlabel = row.label;
    }
    int ok = row.flaw == CC_ROW_OK;
    s = cc_arena_put(ds, ok ? pf->v : "", ok ? pf->n : 0, &row.path);
    if (s == CLIPCL_OK && !label_key) s = cc_arena_put(ds, ok ? cf->v : "", ok ? cf->n : 0, &row.caption);
    if (s != CLIPCL_OK) goto done;
    row.caption_len = ok && !label_key ? (uint32_t)cf->n : 0;
    s = cc_rows_push(ds, &row);
    if (s != CLIPCL_OK) goto done;
    nrows++;
  }
  if (ferror(r->f)) {
    s = cc_fail(CLIPCL_ERR_IO, "%s: read error near line %llu", path, (unsigned long long)r->line);
    goto done;
  }
  if (nrows == 0) {
    s = cc_fail(CLIPCL_ERR_FORMAT, "%s: the manifest has a header but no rows", path);
    goto done;
  }
  ds->size = (int64_t)nrows;
  ds->num_labels = maxlabel + 1;
done:
  fclose(r->f);
  free(r);
  free(rec.header.v);
  free(rec.keep[0].v);
  free(rec.keep[1].v);
  return s;
}

/* ---- every column, for search index metadata ------------------------------ */
clipcl_status cc_csv_each(const char *path, char sep, cc_csv_record_fn fn, void *ctx) {
  if (sep == '"' || sep == '\n' || sep == '\r' || sep == 0)
    return cc_fail(CLIPCL_ERR_ARG, "%s: the separator cannot be a quote, a line break or NUL", path);
  reader *r = calloc(1, sizeof *r);
  if (!r) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
  r->path = path;
  r->line = 1;
  if (!(r->f = fopen(path, "rb"))) {
    clipcl_status s = cc_fail(CLIPCL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    free(r);
    return s;
  }
  if (!(rd_get(r) == 0xef && rd_get(r) == 0xbb && rd_get(r) == 0xbf)) r->pos = 0;
  record rec;
  memset(&rec, 0, sizeof rec);
  rec.want[0] = rec.want[1] = -1;
  rec.header_mode = 1;
  clipcl_status s = CLIPCL_OK;
  char **fields = NULL;
  int fcap = 0;
  for (uint64_t no = 0;; no++) {
    int got = read_record(r, sep, &rec);
    if (got < 0) {
      s = strstr(clipcl_last_error(), "out of memory") ? CLIPCL_ERR_NOMEM : CLIPCL_ERR_FORMAT;
      break;
    }
    if (got == 0) {
      if (ferror(r->f)) s = cc_fail(CLIPCL_ERR_IO, "%s: read error near line %llu", path, (unsigned long long)r->line);
      break;
    }
    if (rec.nfields > fcap) {
      char **f = realloc(fields, (size_t)rec.nfields * sizeof *f);
      if (!f) {
        s = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
        break;
      }
      fields = f;
      fcap = rec.nfields;
    }
    /* fields are NUL-separated; a NUL inside a field shows up as extra pieces */
    int k = 0, flawed = rec.too_big;
    for (size_t i = 0, start = 0; i < rec.header.n; i++)
      if (rec.header.v[i] == 0) {
        if (k < rec.nfields) fields[k] = rec.header.v + start;
        else flawed = 1;
        k++;
        start = i + 1;
      }
    if (k != rec.nfields) flawed = 1;
    if ((s = fn(ctx, no, rec.start_line, flawed ? -1 : rec.nfields, fields)) != CLIPCL_OK) break;
  }
  fclose(r->f);
  free(r);
  free(rec.header.v);
  free(fields);
  return s;
}

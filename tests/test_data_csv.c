/* test_data_csv.c: CSV/TSV manifests (src/data/source_csv.c) as pandas
 * read_csv reads them for open_clip: quoting (separators, doubled quotes and
 * line breaks inside quotes, text after a closing quote, a quote inside an
 * unquoted field), UTF-8 BOM, CRLF and lone CR, blank lines, column
 * selection by header name (defaults, other keys, duplicates), default and
 * explicit separators, paths relative to the manifest, label columns, rows
 * with too many or too few fields, and the header errors that fail the
 * open. Expected values are written out by hand from pandas' documented
 * behaviour. No device needed. */
#include <stdio.h>
#include <string.h>

#include "data/data.h"
#include "data_testutil.h"

static char dir[512];

static const char *mk(const char *name, const char *content) {
  static char path[4][1024];
  static int k;
  char *p = path[k++ % 4];
  snprintf(p, 1024, "%s/%s", dir, name);
  dt_write_str(p, content);
  return p;
}

static clipcl_dataset *open_csv(const char *path, const clipcl_dataset_options *o) {
  clipcl_dataset *ds = NULL;
  if (clipcl_dataset_open(path, o, &ds) != CLIPCL_OK) {
    th_assert(path, 0, "open failed: %s", clipcl_last_error());
    return NULL;
  }
  return ds;
}

static void check_caption(const char *name, clipcl_dataset *ds, int64_t row, const char *want) {
  const char *got = clipcl_dataset_caption(ds, row);
  th_assert(name, got && strcmp(got, want) == 0, "row %lld: got [%s] want [%s]", (long long)row, got ? got : "(null)",
            want);
}

static void check_path(const char *name, clipcl_dataset *ds, int64_t row, const char *want) {
  char buf[2048];
  const char *got = clipcl_dataset_image_path(ds, row, buf, sizeof buf);
  th_assert(name, got && strcmp(got, want) == 0, "row %lld: got [%s] want [%s]", (long long)row, got ? got : "(null)",
            want);
}

static void expect_open_fail(const char *name, const char *path, const clipcl_dataset_options *o, clipcl_status want,
                             const char *part1, const char *part2) {
  clipcl_dataset *ds = NULL;
  clipcl_status s = clipcl_dataset_open(path, o, &ds);
  const char *m = clipcl_last_error();
  th_assert(name, s == want && ds == NULL && strstr(m, part1) && (!part2 || strstr(m, part2)) && !strchr(m, '\n'),
            "status %d, message: %s", s, m);
  clipcl_dataset_free(ds);
}

int main(void) {
  dt_tmpdir(dir, sizeof dir);
  char want[1024];

  /* quoting as RFC 4180 / pandas */
  const char *p = mk("q.csv",
                     "filepath,title\n"
                     "a.png,plain caption\n"
                     "b.png,\"with, comma\"\n"
                     "c.png,\"doubled \"\"quotes\"\" here\"\n"
                     "d.png,\"two\nlines\"\n"
                     "e.png,\"ab\"cd\n"
                     "f.png,a\"b\n"
                     "\"g,.png\",\"\"\n"
                     "h.png,  spaced  \n");
  clipcl_dataset *ds = open_csv(p, NULL);
  if (ds) {
    th_assert("csv kind", clipcl_dataset_kind(ds) == CLIPCL_DATA_CSV && clipcl_dataset_has_captions(ds) &&
                              !clipcl_dataset_has_labels(ds), NULL);
    th_assert("csv size", clipcl_dataset_size(ds) == 8, "%lld", (long long)clipcl_dataset_size(ds));
    check_caption("plain", ds, 0, "plain caption");
    check_caption("comma in quotes", ds, 1, "with, comma");
    check_caption("doubled quotes", ds, 2, "doubled \"quotes\" here");
    check_caption("newline in quotes", ds, 3, "two\nlines");
    check_caption("text after closing quote", ds, 4, "abcd");
    check_caption("quote inside unquoted field", ds, 5, "a\"b");
    check_caption("empty quoted caption", ds, 6, "");
    check_caption("spaces kept", ds, 7, "  spaced  ");
    snprintf(want, sizeof want, "%s/g,.png", dir);
    check_path("quoted path with comma", ds, 6, want);
    /* line numbers: the record after the two-line caption starts on line 7 */
    th_assert("line numbers", ds->rows[3].line == 5 && ds->rows[4].line == 7 && ds->rows[7].line == 10,
              "lines %llu %llu %llu", (unsigned long long)ds->rows[3].line, (unsigned long long)ds->rows[4].line,
              (unsigned long long)ds->rows[7].line);
    char src[256];
    snprintf(want, sizeof want, "%s:7 (row 5)", p);
    cc_row_source(ds, 4, src, sizeof src);
    th_assert("row source text", strcmp(src, want) == 0, "%s", src);
    clipcl_dataset_free(ds);
  }

  /* BOM, CRLF, blank lines, a CRLF kept inside quotes */
  p = mk("bom.csv", "\xef\xbb\xbf" "filepath,title\r\n\r\na.png,first\r\n   \r\nb.png,\"x\r\ny\"\r\nc.png,last");
  ds = open_csv(p, NULL);
  if (ds) {
    th_assert("bom rows", clipcl_dataset_size(ds) == 3, "%lld", (long long)clipcl_dataset_size(ds));
    check_caption("crlf stripped", ds, 0, "first");
    check_caption("crlf in quotes kept", ds, 1, "x\r\ny");
    check_caption("no final newline", ds, 2, "last");
    th_assert("bom line numbers", ds->rows[0].line == 3 && ds->rows[1].line == 5 && ds->rows[2].line == 7,
              "%llu %llu %llu", (unsigned long long)ds->rows[0].line, (unsigned long long)ds->rows[1].line,
              (unsigned long long)ds->rows[2].line);
    clipcl_dataset_free(ds);
  }
  p = mk("cr.csv", "filepath,title\ra.png,one\rb.png,two\r");
  ds = open_csv(p, NULL);
  if (ds) {
    th_assert("lone CR rows", clipcl_dataset_size(ds) == 2, NULL);
    check_caption("lone CR", ds, 1, "two");
    clipcl_dataset_free(ds);
  }

  /* TSV default separator; commas are text there */
  p = mk("m.tsv", "filepath\ttitle\nimg/a.png\ta, b, c\n/abs/b.png\t\"q\tq\"\n");
  ds = open_csv(p, NULL);
  if (ds) {
    check_caption("tsv comma is text", ds, 0, "a, b, c");
    check_caption("tsv quoted tab", ds, 1, "q\tq");
    snprintf(want, sizeof want, "%s/img/a.png", dir);
    check_path("relative to the manifest", ds, 0, want);
    check_path("absolute kept", ds, 1, "/abs/b.png");
    clipcl_dataset_free(ds);
  }

  /* other column names, column order, duplicates, explicit separator */
  p = mk("keys.csv", "text;extra;image;text\nhello;x;p.png;second\n");
  clipcl_dataset_options o;
  clipcl_dataset_options_init(&o);
  o.img_key = "image";
  o.caption_key = "text";
  o.separator = ";";
  ds = open_csv(p, &o);
  if (ds) {
    check_caption("chosen column, first duplicate", ds, 0, "hello");
    snprintf(want, sizeof want, "%s/p.png", dir);
    check_path("chosen image column", ds, 0, want);
    clipcl_dataset_free(ds);
  }

  /* a manifest with no directory part: paths stay as written */
  {
    char cwd[1024];
    if (!getcwd(cwd, sizeof cwd) || chdir(dir) != 0) dt_die("chdir");
    ds = open_csv("q.csv", NULL);
    if (ds) {
      check_path("manifest in the working directory", ds, 0, "a.png");
      clipcl_dataset_free(ds);
    }
    if (chdir(cwd) != 0) dt_die("chdir back");
  }

  /* rows with problems are kept and flagged for the loader to report */
  p = mk("flaws.csv", "filepath,title,extra\n"
                      "a.png,ok,1\n"
                      "b.png,too,many,fields\n"
                      "c.png\n"
                      ",no path,1\n"
                      "d.png,,1\n");
  ds = open_csv(p, NULL);
  if (ds) {
    th_assert("flaw rows", ds->nrows == 5, "%zu", ds->nrows);
    th_assert("flaw ok", ds->rows[0].flaw == CC_ROW_OK, NULL);
    th_assert("flaw long", ds->rows[1].flaw == CC_ROW_LONG, NULL);
    th_assert("flaw short", ds->rows[2].flaw == CC_ROW_SHORT, NULL);
    th_assert("flaw no path", ds->rows[3].flaw == CC_ROW_NO_PATH, NULL);
    th_assert("empty caption is not a parse flaw", ds->rows[4].flaw == CC_ROW_OK, NULL);
    clipcl_dataset_free(ds);
  }

  /* label mode for evaluation CSVs */
  p = mk("labels.csv", "filepath,label\na.png,3\nb.png,0\nc.png,x\nd.png,-1\ne.png,99999999999\n");
  clipcl_dataset_options_init(&o);
  o.label_key = "label";
  ds = open_csv(p, &o);
  if (ds) {
    th_assert("labels flags", clipcl_dataset_has_labels(ds) && !clipcl_dataset_has_captions(ds), NULL);
    th_assert("label values", ds->rows[0].label == 3 && ds->rows[1].label == 0, "%d %d", ds->rows[0].label,
              ds->rows[1].label);
    th_assert("bad labels flagged", ds->rows[2].flaw == CC_ROW_LABEL && ds->rows[3].flaw == CC_ROW_LABEL &&
                                        ds->rows[4].flaw == CC_ROW_LABEL, NULL);
    th_assert("num classes = max label + 1", clipcl_dataset_num_classes(ds) == 4, "%d",
              clipcl_dataset_num_classes(ds));
    th_assert("no captions in label mode", clipcl_dataset_caption(ds, 0) == NULL, NULL);
    clipcl_dataset_free(ds);
  }

  /* failures at open: each names the file and the problem on one line */
  clipcl_dataset_options_init(&o);
  p = mk("nocol.csv", "filepath,caption\na.png,x\n");
  expect_open_fail("missing caption column", p, NULL, CLIPCL_ERR_FORMAT, "no column 'title'", "'caption'");
  o.img_key = "image";
  expect_open_fail("missing image column", p, &o, CLIPCL_ERR_FORMAT, "no column 'image'", "nocol.csv");
  p = mk("tsvbad.tsv", "filepath,title\na.png,x\n");
  expect_open_fail("comma file read as TSV", p, NULL, CLIPCL_ERR_FORMAT, "no column 'filepath'",
                   "'filepath,title'");
  p = mk("empty.csv", "");
  expect_open_fail("empty manifest", p, NULL, CLIPCL_ERR_FORMAT, "empty manifest", NULL);
  p = mk("hdr.csv", "filepath,title\n\n");
  expect_open_fail("header only", p, NULL, CLIPCL_ERR_FORMAT, "no rows", NULL);
  p = mk("unterminated.csv", "filepath,title\na.png,ok\nb.png,\"open quote\nnever closed\n");
  expect_open_fail("unterminated quote", p, NULL, CLIPCL_ERR_FORMAT, "unterminated.csv:3:", "quoted field");
  clipcl_dataset_options_init(&o);
  o.separator = "::";
  expect_open_fail("long separator", p, &o, CLIPCL_ERR_UNSUPPORTED, "longer than one character", NULL);
  snprintf(want, sizeof want, "%s/missing.csv", dir);
  expect_open_fail("missing manifest", want, NULL, CLIPCL_ERR_IO, "cannot open manifest", "missing.csv");
  snprintf(want, sizeof want, "%s/q.json", dir);
  dt_write_str(want, "{}");
  expect_open_fail("unknown kind", want, NULL, CLIPCL_ERR_ARG, "cannot tell the kind", NULL);

  /* a huge caption field flags its row instead of growing without bound */
  {
    size_t big = CC_DATA_MAX_CAPTION + 10;
    char *s = malloc(big + 64);
    if (!s) dt_die("malloc");
    int h = sprintf(s, "filepath,title\na.png,");
    memset(s + h, 'x', big);
    sprintf(s + h + big, "\nb.png,fine\n");
    p = mk("big.csv", s);
    free(s);
    ds = open_csv(p, NULL);
    if (ds) {
      th_assert("oversized field flagged", ds->rows[0].flaw == CC_ROW_FIELD_BIG && ds->rows[1].flaw == CC_ROW_OK, NULL);
      check_caption("row after an oversized field", ds, 1, "fine");
      clipcl_dataset_free(ds);
    }
  }

  dt_rm_rf(dir);
  return th_finish(NULL);
}

/* test_text_lists.c: class-name and template lists: BOM, CRLF and spaces
 * accepted; blank lines, duplicates, templates without "{}", invalid UTF-8,
 * control characters and empty files refused with "file:line:" in the
 * message; the built-in template sets equal open_clip's (fixtures written by
 * tests/tools/make_eval_fixtures.py); formatting fills every "{}". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static int parse(const char *data, int kind, clipcl_text_list *l) {
  return clipcl_text_list_parse(data, strlen(data), "list.txt", kind, l);
}

/* Expects failure with a message containing want. */
static void refuse(const char *name, const char *data, int kind, const char *want) {
  clipcl_text_list l;
  clipcl_status st = parse(data, kind, &l);
  th_assert(name, st == CLIPCL_ERR_FORMAT && strstr(clipcl_last_error(), want) && l.n == 0 && !l.items,
            "status %d, message \"%s\", want \"%s\"", st, clipcl_last_error(), want);
  clipcl_text_list_free(&l);
}

static void accept(const char *name, const char *data, int kind, int n, const char *const *want) {
  clipcl_text_list l;
  clipcl_status st = parse(data, kind, &l);
  int ok = st == CLIPCL_OK && l.n == n;
  for (int i = 0; ok && i < n; i++) ok = strcmp(l.items[i], want[i]) == 0;
  th_assert(name, ok, "status %d (%s), %d entries", st, clipcl_last_error(), l.n);
  clipcl_text_list_free(&l);
}

static void write_file(const char *path, const char *data) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(data, 1, strlen(data), f) != strlen(data) || fclose(f)) {
    fprintf(stderr, "cannot write %s\n", path);
    exit(1);
  }
}

static void same_as_fixture(const char *builtin, const char *fixture, int n) {
  clipcl_text_list a, b;
  TH_OK(clipcl_templates_get(builtin, &a));
  TH_OK(clipcl_text_list_load(fixture, CLIPCL_LIST_TEMPLATES, &b));
  int ok = a.n == n && b.n == n;
  for (int i = 0; ok && i < n; i++) ok = strcmp(a.items[i], b.items[i]) == 0;
  th_assert(builtin, ok, "built-in set (%d) differs from %s (%d)", a.n, fixture, b.n);
  clipcl_text_list_free(&a);
  clipcl_text_list_free(&b);
}

int main(void) {
  const char *cls[] = {"cat", "dog", "sea lion", "caf\xc3\xa9"};
  accept("plain", "cat\ndog\nsea lion\ncaf\xc3\xa9\n", CLIPCL_LIST_CLASSNAMES, 4, cls);
  accept("BOM, CRLF, no final newline, spaces", "\xef\xbb\xbf" "cat\r\n  dog\t\r\nsea lion \r\ncaf\xc3\xa9",
         CLIPCL_LIST_CLASSNAMES, 4, cls);
  const char *tpl[] = {"a photo of a {}.", "{}", "a {} and a {}"};
  accept("templates", "a photo of a {}.\n{}\na {} and a {}\n", CLIPCL_LIST_TEMPLATES, 3, tpl);

  refuse("blank line", "cat\ndog\n\nfox\n", CLIPCL_LIST_CLASSNAMES, "list.txt:3: blank line");
  refuse("white-space line", "cat\n \t\r\nfox\n", CLIPCL_LIST_CLASSNAMES, "list.txt:2: blank line");
  refuse("trailing blank line", "cat\ndog\n\n", CLIPCL_LIST_CLASSNAMES, "list.txt:3: blank line");
  refuse("leading blank line after BOM", "\xef\xbb\xbf\ncat\n", CLIPCL_LIST_CLASSNAMES, "list.txt:1: blank line");
  refuse("duplicate", "cat\ndog\nfox\ndog\ncat\n", CLIPCL_LIST_CLASSNAMES, "list.txt:4: duplicate class name (same as line 2)");
  refuse("duplicate after trimming", "cat\ndog\r\n dog \n", CLIPCL_LIST_CLASSNAMES, "list.txt:3: duplicate");
  refuse("duplicate template", "a {}\nthe {}\na {}\n", CLIPCL_LIST_TEMPLATES, "list.txt:3: duplicate template (same as line 1)");
  refuse("template without slot", "a photo of a {}.\na photo of a {0}.\n", CLIPCL_LIST_TEMPLATES,
         "list.txt:2: template has no \"{}\"");
  refuse("template with a split slot", "a { }\n", CLIPCL_LIST_TEMPLATES, "list.txt:1: template has no");
  refuse("invalid UTF-8", "cat\ndo\xffg\n", CLIPCL_LIST_CLASSNAMES, "list.txt:2: invalid UTF-8 at byte 3");
  refuse("overlong UTF-8", "\xc0\xaf\n", CLIPCL_LIST_CLASSNAMES, "list.txt:1: invalid UTF-8");
  refuse("surrogate", "cat\n\xed\xa0\x80\n", CLIPCL_LIST_CLASSNAMES, "list.txt:2: invalid UTF-8");
  refuse("truncated UTF-8", "cat\ncaf\xc3", CLIPCL_LIST_CLASSNAMES, "list.txt:2: invalid UTF-8");
  refuse("control character", "cat\nd\x01og\n", CLIPCL_LIST_CLASSNAMES, "list.txt:2: control character 0x01");
  refuse("lone CR", "cat\rdog\n", CLIPCL_LIST_CLASSNAMES, "list.txt:1: control character 0x0d");
  refuse("empty", "", CLIPCL_LIST_CLASSNAMES, "list.txt: no class name entries");
  refuse("only a BOM", "\xef\xbb\xbf", CLIPCL_LIST_TEMPLATES, "list.txt: no template entries");
  {
    clipcl_text_list l;
    const char nul[] = "cat\nd\0g\n";
    clipcl_status st = clipcl_text_list_parse(nul, sizeof nul - 1, "nul.txt", CLIPCL_LIST_CLASSNAMES, &l);
    th_assert("NUL byte", st == CLIPCL_ERR_FORMAT && strstr(clipcl_last_error(), "nul.txt:2: control character 0x00"),
              "status %d: %s", st, clipcl_last_error());
  }

  /* files, through the loader */
  char tmp[64];
  snprintf(tmp, sizeof tmp, "/tmp/clipcl_test_text_lists_%d.txt", (int)getpid());
  write_file(tmp, "\xef\xbb\xbf" "cat\r\ndog\r\n");
  clipcl_text_list l;
  TH_OK(clipcl_text_list_load(tmp, CLIPCL_LIST_CLASSNAMES, &l));
  th_assert("file", l.n == 2 && !strcmp(l.items[0], "cat") && !strcmp(l.items[1], "dog"), "%d entries", l.n);
  clipcl_text_list_free(&l);
  write_file(tmp, "a photo of a {}.\nno slot here\n");
  clipcl_status st = clipcl_templates_get(tmp, &l);
  char want[256];
  snprintf(want, sizeof want, "%s:2: template has no", tmp);
  th_assert("template file error names file and line", st == CLIPCL_ERR_FORMAT && strstr(clipcl_last_error(), want),
            "status %d: %s", st, clipcl_last_error());
  remove(tmp);
  st = clipcl_text_list_load("/nonexistent/classes.txt", CLIPCL_LIST_CLASSNAMES, &l);
  th_assert("missing file", st == CLIPCL_ERR_IO && strstr(clipcl_last_error(), "/nonexistent/classes.txt"), "status %d", st);

  /* built-in sets against open_clip's lists */
  same_as_fixture("openai", "data/templates_openai.txt", 80);
  same_as_fixture("simple", "data/templates_simple.txt", 7);

  /* formatting */
  char *s = NULL;
  TH_OK(clipcl_template_format("a photo of a {}.", "sea lion", &s));
  th_assert("format", s && !strcmp(s, "a photo of a sea lion."), "got \"%s\"", s ? s : "");
  free(s);
  TH_OK(clipcl_template_format("{} and {}{}", "x", &s));
  th_assert("format every slot", s && !strcmp(s, "x and xx"), "got \"%s\"", s ? s : "");
  free(s);
  TH_OK(clipcl_template_format("{{}}", "ab", &s));
  th_assert("format braces", s && !strcmp(s, "{ab}"), "got \"%s\"", s ? s : "");
  free(s);
  st = clipcl_template_format("no slot", "x", &s);
  th_assert("format without slot", st == CLIPCL_ERR_ARG && s == NULL, "status %d", st);
  return th_finish(NULL);
}

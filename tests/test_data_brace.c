/* test_data_brace.c: shard-spec expansion (src/data/brace.c) against lists
 * worked out by hand from Python braceexpand 0.1.7's rules (webdataset's
 * expand_urls: split at "::", expand each part): alternatives, nesting,
 * integer ranges with zero padding and steps, descending ranges, letter
 * ranges with steps across the case boundary, escapes, literal braces,
 * unbalanced braces and the caps (names, bytes, nesting, groups), each at
 * the limit and one past. No device needed. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "harness.h"

/* want: names separated by spaces ("" = one empty name is not used here) */
static void expect(const char *spec, const char *want) {
  char **v;
  int n;
  clipcl_status s = cc_brace_expand(spec, &v, &n);
  if (s != CLIPCL_OK) {
    th_assert(spec, 0, "failed: %s", clipcl_last_error());
    return;
  }
  char got[4096] = "";
  size_t w = 0;
  for (int i = 0; i < n && w < sizeof got - 2; i++) {
    int k = snprintf(got + w, sizeof got - w, "%s%s", i ? " " : "", v[i]);
    if (k > 0) w += (size_t)k;
  }
  free(v);
  th_assert(spec, strcmp(got, want) == 0, "got [%s] want [%s]", got, want);
}

static void expect_fail(const char *spec, clipcl_status want, const char *msg_part) {
  char **v;
  int n;
  clipcl_status s = cc_brace_expand(spec, &v, &n);
  if (s == CLIPCL_OK) free(v);
  th_assert(spec, s == want && strstr(clipcl_last_error(), msg_part) != NULL, "status %d, message: %s", s,
            clipcl_last_error());
}

int main(void) {
  expect("shard.tar", "shard.tar");
  expect("s/{000000..000003}.tar", "s/000000.tar s/000001.tar s/000002.tar s/000003.tar");
  expect("{8..11}", "8 9 10 11");
  expect("{08..11}", "08 09 10 11");           /* padded to the wider end */
  expect("{8..011}", "008 009 010 011");
  expect("{0..2}", "0 1 2");                   /* "0" alone does not pad */
  expect("{00..2}", "00 01 02");
  expect("{3..1}", "3 2 1");
  expect("{1..7..3}", "1 4 7");
  expect("{1..8..3}", "1 4 7");
  expect("{7..1..3}", "7 4 1");
  expect("{1..3..-2}", "1 3");                  /* the step's sign is ignored */
  expect("{1..3..0}", "1 2 3");                 /* int(0) or 1 */
  expect("{-2..1}", "-2 -1 0 1");
  expect("{-02..1}", "-02 -01 000 001");        /* Python '%03d' of negatives */
  expect("{5..5}", "5");
  expect("{a,b}{1..2}", "a1 a2 b1 b2");
  expect("x{a,b{1,2}}y", "xay xb1y xb2y");
  expect("{a,}z", "az z");
  expect("{,}", " ");                            /* two empty names */
  expect("{a..d}", "a b c d");
  expect("{d..a}", "d c b a");
  expect("{Y..b}", "Y Z a b");
  expect("{a..e..2}", "a c e");
  expect("{a..f..2}", "a c e");
  expect("{z..a..5}", "z u p k f a");
  expect("{b..A..3}", "b Y V S P M J G D A");
  expect("{A..A}", "A");
  expect("{a..Z}", "a Z");
  expect("{C..A}", "C B A");
  expect("{abc}", "{abc}");                     /* neither list nor range */
  expect("{}", "{}");
  expect("{x{1,2}}", "{x1} {x2}");
  expect("a\\{1,2\\}b", "a{1,2}b");             /* escapes, removed at the end */
  expect("{a\\,b,c}", "a,b c");
  expect("{1..2}::t/{a,b}.tar", "1 2 t/a.tar t/b.tar");
  expect("a.tar::b.tar::c.tar", "a.tar b.tar c.tar");
  expect("{1..3}{1..2}", "11 12 21 22 31 32");
  expect_fail("shards/{000..003.tar", CLIPCL_ERR_ARG, "unbalanced braces");
  expect_fail("a}b", CLIPCL_ERR_ARG, "unbalanced braces");
  expect_fail("{0..999}{0..999}{0..9}", CLIPCL_ERR_ARG, "more than");
  expect_fail("{0..99999999999}", CLIPCL_ERR_ARG, "more than");
  /* the caps, at the limit and one past */
  {
    char **v;
    int n;
    clipcl_status s = cc_brace_expand("{0..999999}", &v, &n); /* CC_DATA_MAX_NAMES */
    th_assert("1,000,000 names expand", s == CLIPCL_OK && n == CC_DATA_MAX_NAMES &&
              !strcmp(v[0], "0") && !strcmp(v[n - 1], "999999"), "status %d, n %d", s, n);
    if (s == CLIPCL_OK) free(v);
    expect_fail("{0..999999}::x", CLIPCL_ERR_ARG, "more than 1000000 names");
    /* 64 names of 1 MiB - 5 letters, 4 digits and a NUL make exactly 64 MiB */
    size_t len = ((size_t)1 << 20) - 5;
    char *big = malloc(len + 16);
    memset(big, 'a', len);
    memcpy(big + len, "{0000..0063}", 13);
    s = cc_brace_expand(big, &v, &n);
    th_assert("64 MiB of names expand", s == CLIPCL_OK && n == 64 && strlen(v[63]) == len + 4 &&
              !strcmp(v[63] + len, "0063"), "status %d, n %d", s, n);
    if (s == CLIPCL_OK) free(v);
    memcpy(big + len, "{0000..0064}", 13);
    s = cc_brace_expand(big, &v, &n);
    th_assert("64 MiB + 1 name refused", s == CLIPCL_ERR_ARG && strstr(clipcl_last_error(), "64 MiB of names"),
              "status %d", s);
    if (s == CLIPCL_OK) free(v);
    free(big);
  }
  {
    char deep[200] = "", *w = deep;
    for (int i = 0; i < 64; i++) *w++ = '{';
    *w++ = 'a';
    for (int i = 0; i < 64; i++) *w++ = '}';
    *w = 0;
    expect(deep, "{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{a"
                 "}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}");
    memmove(deep + 1, deep, strlen(deep) + 1);
    deep[0] = '{';
    strcat(deep, "}");
    char **v0;
    int n0;
    clipcl_status s0 = cc_brace_expand(deep, &v0, &n0);
    th_assert("65 nested braces refused", s0 == CLIPCL_ERR_ARG && strstr(clipcl_last_error(), "nested more than 64 deep"),
              "status %d", s0);
    if (s0 == CLIPCL_OK) free(v0);
    char groups[8192] = "";
    for (int i = 0; i < 1024; i++) strcat(groups, "{5..5}");
    expect(groups + 6 * 1023, "5");
    char **v;
    int n;
    clipcl_status s = cc_brace_expand(groups, &v, &n);
    th_assert("1024 groups expand", s == CLIPCL_OK && n == 1 && strlen(v[0]) == 1024, "status %d", s);
    if (s == CLIPCL_OK) free(v);
    strcat(groups, "{5..5}");
    s = cc_brace_expand(groups, &v, &n);
    th_assert("1025 groups refused", s == CLIPCL_ERR_ARG && strstr(clipcl_last_error(), "more than 1024 brace groups"),
              "status %d", s);
    if (s == CLIPCL_OK) free(v);
  }
  return th_finish(NULL);
}

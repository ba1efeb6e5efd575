/* test_data_brace.c: shard-spec expansion (src/data/brace.c) against lists
 * worked out by hand from Python braceexpand 0.1.7's rules (webdataset's
 * expand_urls: split at "::", expand each part): alternatives, nesting,
 * integer ranges with zero padding and steps, descending ranges, letter
 * ranges with steps across the case boundary, escapes, literal braces,
 * unbalanced braces and the size cap. No device needed. */
#include <stdarg.h>
#include <stdio.h>
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
  cc_names_free(v, n);
  th_assert(spec, strcmp(got, want) == 0, "got [%s] want [%s]", got, want);
}

static void expect_fail(const char *spec, clipcl_status want, const char *msg_part) {
  char **v;
  int n;
  clipcl_status s = cc_brace_expand(spec, &v, &n);
  if (s == CLIPCL_OK) cc_names_free(v, n);
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
  return th_finish(NULL);
}

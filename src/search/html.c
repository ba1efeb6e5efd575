/* html.c: the search results page: ranked thumbnails with scores and paths,
 * as HTML5 that is also well-formed XML (so a strict XML parser can check
 * it). Not here: running the search (index.c).
 *
 * Paths are arbitrary bytes. In URLs every byte outside [A-Za-z0-9-._~/] is
 * percent-encoded, which also makes them safe inside attributes; in text
 * they are HTML-escaped, invalid UTF-8 and control characters shown as
 * U+FFFD so the page is valid UTF-8.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clipcl.h"
#include "eval/eval.h"
#include "util/error.h"

static void url_bytes(cc_buf *b, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    unsigned c = *p;
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~' || c == '/') {
      cc_buf_add(b, p, 1);
    } else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      cc_buf_add(b, e, 3);
    }
  }
}

/* URL of an image path: file:// for absolute paths, relative otherwise. */
static void image_url(cc_buf *b, const char *path, const char *base) {
  int join = path[0] != '/' && base && *base;
  const char *first = join ? base : path;
  if (first[0] == '/') cc_buf_str(b, "file://");
  if (join) {
    url_bytes(b, base);
    if (base[strlen(base) - 1] != '/') cc_buf_add(b, "/", 1);
  }
  /* ':' is always encoded, so a relative path never reads as a scheme */
  url_bytes(b, path);
}

/* shortest decimal that reads back as the same float (0.9f as "0.9") */
static void float_text(cc_buf *b, float v) {
  char s[32];
  for (int prec = 6; prec <= 9; prec++) {
    snprintf(s, sizeof s, "%.*g", prec, (double)v);
    if (strtof(s, NULL) == v) break;
  }
  cc_buf_str(b, s);
}

static void text(cc_buf *b, const char *s) {
  const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
  while (p < end) {
    size_t ok = cc_utf8_check(p, (size_t)(end - p));
    for (const unsigned char *q = p; q < p + ok; q++) {
      switch (*q) {
        case '&': cc_buf_str(b, "&amp;"); break;
        case '<': cc_buf_str(b, "&lt;"); break;
        case '>': cc_buf_str(b, "&gt;"); break;
        case '"': cc_buf_str(b, "&quot;"); break;
        case '\'': cc_buf_str(b, "&#39;"); break;
        default:
          if ((*q < 0x20 && *q != '\t') || *q == 0x7f)
            cc_buf_str(b, "\xEF\xBF\xBD");
          else
            cc_buf_add(b, q, 1);
      }
    }
    p += ok;
    if (p < end) {
      /* one replacement per bad byte, as a lenient decoder would show it */
      cc_buf_str(b, "\xEF\xBF\xBD");
      p++;
    }
  }
}

clipcl_status clipcl_search_write_html(const char *path, const char *title, const clipcl_search_hit *hits,
                                       int n, const char *image_base) {
  if (!path) return cc_fail(CLIPCL_ERR_ARG, "search page: no path");
  if (n < 0 || (n && !hits)) return cc_fail(CLIPCL_ERR_ARG, "%s: bad hit list", path);
  for (int i = 0; i < n; i++)
    if (!hits[i].path || !*hits[i].path) return cc_fail(CLIPCL_ERR_ARG, "%s: hit %d has no path", path, i);
  if (!title) title = "clipcl search";
  cc_buf b = {0};
  cc_buf_str(&b,
             "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n"
             "<meta name=\"generator\" content=\"clipcl\" />\n<title>");
  text(&b, title);
  cc_buf_str(&b,
             "</title>\n<style>\n"
             "body { font-family: sans-serif; margin: 1em; }\n"
             "ol.hits { display: flex; flex-wrap: wrap; gap: 12px; list-style: none; padding: 0; }\n"
             "ol.hits li { width: 224px; }\n"
             "ol.hits img { width: 224px; height: 224px; object-fit: contain; background: #eee; }\n"
             ".meta { font-size: 12px; word-break: break-all; }\n"
             "</style>\n</head>\n<body>\n<h1>");
  text(&b, title);
  cc_buf_printf(&b, "</h1>\n<p>%d result%s, best first; score = cosine similarity.</p>\n<ol class=\"hits\">\n", n,
                n == 1 ? "" : "s");
  for (int i = 0; i < n; i++) {
    cc_buf_printf(&b, "<li value=\"%d\" data-score=\"", i + 1);
    float_text(&b, hits[i].score);
    cc_buf_str(&b, "\"><a href=\"");
    image_url(&b, hits[i].path, image_base);
    cc_buf_str(&b, "\"><img src=\"");
    image_url(&b, hits[i].path, image_base);
    cc_buf_str(&b, "\" alt=\"");
    text(&b, hits[i].path);
    cc_buf_printf(&b, "\" loading=\"lazy\" /></a>\n<div class=\"meta\"><b>%d.</b> %.4f<br />", i + 1,
                  (double)hits[i].score);
    text(&b, hits[i].path);
    cc_buf_str(&b, "</div></li>\n");
  }
  cc_buf_str(&b, "</ol>\n</body>\n</html>\n");
  clipcl_status st = cc_buf_save(&b, path);
  cc_buf_free(&b);
  return st;
}

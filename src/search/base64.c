/* base64.c: RFC 4648 base64 for the service: images arrive base64-encoded
 * in JSON (clip-retrieval's "image") and thumbnails leave that way. The
 * decoder is strict about what it accepts from the network: only the
 * standard alphabet, white space skipped, "=" padding only at the end and
 * only where it belongs, a size limit checked before allocating. */
#include <stdlib.h>
#include <string.h>

#include "search/search.h"
#include "util/error.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

clipcl_status cc_base64_encode(const void *data, size_t n, char **out, size_t *out_len) {
  *out = NULL;
  if (n > (SIZE_MAX - 1) / 4 * 3 - 3) return cc_fail(CLIPCL_ERR_ARG, "base64: input too large");
  size_t len = (n + 2) / 3 * 4;
  char *s = malloc(len + 1), *w = s;
  if (!s) return cc_fail(CLIPCL_ERR_NOMEM, "base64: out of memory");
  const unsigned char *p = data;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
    *w++ = alphabet[v >> 18], *w++ = alphabet[(v >> 12) & 63], *w++ = alphabet[(v >> 6) & 63], *w++ = alphabet[v & 63];
  }
  if (n - i == 1) {
    unsigned v = (unsigned)p[i] << 16;
    *w++ = alphabet[v >> 18], *w++ = alphabet[(v >> 12) & 63], *w++ = '=', *w++ = '=';
  } else if (n - i == 2) {
    unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
    *w++ = alphabet[v >> 18], *w++ = alphabet[(v >> 12) & 63], *w++ = alphabet[(v >> 6) & 63], *w++ = '=';
  }
  *w = 0;
  *out = s;
  if (out_len) *out_len = len;
  return CLIPCL_OK;
}

static int value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

clipcl_status cc_base64_decode(const char *s, size_t n, size_t max, unsigned char **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  /* count the symbols first: the size is known before any allocation */
  size_t syms = 0, pad = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    if (c == '=') {
      pad++;
      continue;
    }
    if (pad) return cc_fail(CLIPCL_ERR_FORMAT, "base64: data after the '=' padding");
    if (value(c) < 0) return cc_fail(CLIPCL_ERR_FORMAT, "base64: byte 0x%02x at offset %zu is not base64", c, i);
    syms++;
  }
  if (pad > 2 || (pad && (syms + pad) % 4) || syms % 4 == 1)
    return cc_fail(CLIPCL_ERR_FORMAT, "base64: bad length or padding");
  size_t bytes = syms / 4 * 3 + (syms % 4 ? syms % 4 - 1 : 0);
  if (bytes > max) return cc_fail(CLIPCL_ERR_FORMAT, "base64: decodes to %zu bytes, more than the limit of %zu", bytes, max);
  unsigned char *d = malloc(bytes ? bytes : 1);
  if (!d) return cc_fail(CLIPCL_ERR_NOMEM, "base64: out of memory");
  unsigned acc = 0;
  int bits = 0;
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    int v = value((unsigned char)s[i]);
    if (v < 0) continue;
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      d[w++] = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  /* the bits left over must be zero (canonical encoding) */
  if (acc != 0) {
    free(d);
    return cc_fail(CLIPCL_ERR_FORMAT, "base64: stray bits in the last symbol");
  }
  *out = d;
  *out_len = w;
  return CLIPCL_OK;
}

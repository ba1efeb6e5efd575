/* test_safetensors_fuzz.c: seeded mutations of a valid safetensors file
 * (byte flips, digit changes inside the JSON, punctuation swaps, length-field
 * damage, truncations) must never crash cc_st_open or the reads that follow.
 * Every outcome is OK, FORMAT or UNSUPPORTED with a one-line message naming
 * the file; every file that opens satisfies the promised invariants (spans
 * in range, sizes consistent, no overlaps) and all its tensors read. Run it
 * under AddressSanitizer (CLIPCL_ASAN=ON) for the memory side.
 * CLIPCL_FUZZ_ITERS overrides the iteration count (default 4000). */
#include "io/safetensors.h"
#include "io_testutil.h"

static uint64_t rnd(uint64_t n) { return (uint64_t)(th_uniform() * (double)n) % (n ? n : 1); }

static void make_base(const char *path) {
  float a[12], b[7], s = 4.6052f;
  double d[3] = {1e300, -0.5, 1e-300};
  int64_t ids[5] = {0, 1, 2, 3, 4};
  for (int i = 0; i < 12; i++) a[i] = (float)i - 5.5f;
  for (int i = 0; i < 7; i++) b[i] = (float)i * 0.1f;
  cc_st_out t[] = {
      {.name = "visual.proj", .ndim = 2, .shape = {3, 4}, .data = a},
      {.name = "h", .dtype = CC_ST_F16, .ndim = 1, .shape = {7}, .data = b},
      {.name = "bf", .dtype = CC_ST_BF16, .ndim = 3, .shape = {1, 7, 1}, .data = b},
      {.name = "d", .dtype = CC_ST_F64, .ndim = 1, .shape = {3}, .raw = d},
      {.name = "logit_scale", .ndim = 0, .data = &s},
      {.name = "empty", .ndim = 2, .shape = {0, 9}},
      {.name = "position_ids", .dtype = CC_ST_I64, .ndim = 2, .shape = {1, 5}, .raw = ids},
  };
  cc_st_kv meta[] = {{"format", "pt"}, {"model", "ViT-B-32"}};
  TH_OK(cc_st_write(path, t, sizeof t / sizeof *t, meta, 2, NULL, NULL));
}

static void mutate(unsigned char *b, size_t *len, size_t hdr_end) {
  static const char punct[] = "{}[]\",:-0123456789 eE.tfn\\";
  int mode = (int)rnd(6);
  size_t n = *len, region = th_uniform() < 0.85 ? hdr_end : n; /* mostly the header */
  switch (mode) {
    case 0: /* random bytes */
      for (int k = 1 + (int)rnd(4); k > 0; k--) b[rnd(region)] = (unsigned char)rnd(256);
      break;
    case 1: /* single bit flips */
      for (int k = 1 + (int)rnd(3); k > 0; k--) b[rnd(region)] ^= (unsigned char)(1u << rnd(8));
      break;
    case 2: { /* a digit in the JSON becomes another: offsets and shapes */
      for (int tries = 0; tries < 64; tries++) {
        size_t i = 8 + rnd(hdr_end - 8);
        if (b[i] >= '0' && b[i] <= '9') {
          b[i] = (unsigned char)('0' + rnd(10));
          break;
        }
      }
      break;
    }
    case 3: /* JSON punctuation in a random place */
      b[8 + rnd(hdr_end - 8)] = (unsigned char)punct[rnd(sizeof punct - 1)];
      break;
    case 4: /* the length field */
      b[rnd(8)] = (unsigned char)rnd(256);
      break;
    default: /* truncation */
      *len = rnd(n + 1);
      break;
  }
  if (mode != 5 && th_uniform() < 0.1) *len = rnd(*len + 1);
}

int main(void) {
  char dir[512], base[600], path[600];
  tu_tmpdir(dir, sizeof dir);
  snprintf(base, sizeof base, "%s/base.safetensors", dir);
  snprintf(path, sizeof path, "%s/fuzz.safetensors", dir);
  make_base(base);
  size_t blen = 0;
  unsigned char *orig = tu_read(base, &blen), *buf = malloc(blen);
  if (!orig || !buf) return 1;
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = hl << 8 | orig[i];
  size_t hdr_end = (size_t)(8 + hl);

  long iters = 4000;
  const char *e = getenv("CLIPCL_FUZZ_ITERS");
  if (e && atol(e) > 0) iters = atol(e);
  th_seed(0xC11Fu);
  long opened = 0, format = 0, unsupported = 0, bad_status = 0, bad_msg = 0, bad_inv = 0, read_fail = 0;
  char first_bad[512] = "";
  for (long it = 0; it < iters; it++) {
    size_t len = blen;
    memcpy(buf, orig, blen);
    mutate(buf, &len, hdr_end);
    tu_write(path, buf, len);
    cc_st_file *f = NULL;
    clipcl_status s = cc_st_open(path, &f);
    if (s != CLIPCL_OK) {
      const char *m = clipcl_last_error();
      if (s == CLIPCL_ERR_FORMAT) format++;
      else if (s == CLIPCL_ERR_UNSUPPORTED) unsupported++;
      else if (bad_status++ == 0) snprintf(first_bad, sizeof first_bad, "iteration %ld: status %d: %s", it, s, m);
      if (!m[0] || strchr(m, '\n') || !strstr(m, path)) {
        if (bad_msg++ == 0) snprintf(first_bad, sizeof first_bad, "iteration %ld: message \"%s\"", it, m);
      }
      if (f) bad_status++;
      continue;
    }
    opened++;
    /* the header length may have been mutated too */
    uint64_t h2 = 0, prev_end = 0;
    for (int i = 7; i >= 0; i--) h2 = h2 << 8 | buf[i];
    uint64_t data = len - 8 - h2;
    for (size_t i = 0; i < cc_st_count(f); i++) {
      const cc_st_tensor *t = cc_st_get(f, i);
      int ok = t->begin <= t->end && t->end <= data && t->begin >= prev_end &&
               t->end - t->begin == t->numel * cc_st_dtype_size(t->dtype) && cc_st_find(f, t->name) == t;
      uint64_t ne = 1;
      for (int d = 0; d < t->ndim; d++) ne *= (uint64_t)t->shape[d];
      ok &= ne == t->numel;
      if (!ok && bad_inv++ == 0) snprintf(first_bad, sizeof first_bad, "iteration %ld: invariant broken", it);
      prev_end = t->end;
      /* raw bytes, or float32 (F16/BF16 double in size) */
      size_t nb = (size_t)(t->end - t->begin), nf = (size_t)t->numel * 4;
      void *dst = malloc((nb > nf ? nb : nf) + 1);
      clipcl_status rs = cc_st_dtype_is_float(t->dtype) ? cc_st_read_f32(f, t, dst) : cc_st_read_raw(f, t, dst, nb);
      if (rs != CLIPCL_OK && read_fail++ == 0)
        snprintf(first_bad, sizeof first_bad, "iteration %ld: read failed: %s", it, clipcl_last_error());
      free(dst);
    }
    cc_st_close(f);
  }
  printf("%ld mutations: %ld opened, %ld FORMAT, %ld UNSUPPORTED\n", iters, opened, format, unsupported);
  th_assert("only OK, FORMAT or UNSUPPORTED", bad_status == 0, "%ld others; %s", bad_status, first_bad);
  th_assert("messages are one line naming the file", bad_msg == 0, "%ld bad; %s", bad_msg, first_bad);
  th_assert("opened files keep the invariants", bad_inv == 0, "%ld broken; %s", bad_inv, first_bad);
  th_assert("tensors of opened files read", read_fail == 0, "%ld failed; %s", read_fail, first_bad);
  th_assert("the mutations reach both outcomes", opened > iters / 50 && format > iters / 4, "%ld opened, %ld refused",
            opened, format);
  free(orig);
  free(buf);
  tu_rmdir(dir);
  return th_finish(NULL);
}

/* tokenizer.c: CLIP's byte-level BPE tokenizer with ids identical to
 * open_clip 2.20's SimpleTokenizer / tokenize(): vocabulary loading (the
 * embedded bpe_simple_vocab_16e6.txt.gz or a file), the split regex
 * (PCRE2), BPE merges, a word cache shared by threads, SOT/EOT, truncation
 * and padding, and decoding. Text cleaning is in clean.c.
 *
 * Vocabulary, as open_clip builds it: the 256 byte symbols in GPT-2's
 * byte-to-unicode order, the same with "</w>", one symbol per merge line
 * (lines 1..48894 of the file; line 0 is a header), then "<start_of_text>"
 * and "<end_of_text>". Python keys everything by string; we key by the
 * symbol's raw bytes (the byte-to-unicode map is a bijection and "</w>" is
 * plain ASCII, so equal strings are equal bytes) and, like Python's dicts,
 * let a later duplicate win.
 *
 * Note: open_clip 2.20's special tokens are "<start_of_text>" and
 * "<end_of_text>" (OpenAI's clip spells them "<|startoftext|>"); the split
 * regex uses the open_clip spelling, so that is what a caption containing
 * the literal text turns into ids 49406/49407.
 */
#include <limits.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "text/clean.h"
#include "text/text_tables.h"
#include "text/tokenizer_internal.h"
#include "util/error.h"

#define N_MERGES_MAX (49152 - 256 - 2) /* what open_clip reads from the file */
#define CACHE_SHARDS 16
#define CACHE_SHARD_ENTRIES 4096 /* a full shard is emptied: bounded memory */
#define CACHE_WORD_MAX 48        /* longer words are not cached */
#define VOCAB_TEXT_MAX (256u << 20)

extern const unsigned char cc_vocab_gz[];
extern const size_t cc_vocab_gz_size;

static const char SOT_TEXT[] = "<start_of_text>";
static const char EOT_TEXT[] = "<end_of_text>";

typedef struct {
  uint64_t key; /* pair_key(left, right); 0 = empty slot */
  int32_t rank, merged;
} pair_slot;

typedef struct cache_entry {
  struct cache_entry *next;
  uint64_t hash;
  uint32_t len, n_ids;
  unsigned char *word;
  int32_t *ids;
} cache_entry;

typedef struct {
  pthread_mutex_t lock;
  cache_entry *bucket[1024];
  size_t count;
} cache_shard;

struct clipcl_tokenizer {
  int n_vocab, n_merges;
  int32_t sot, eot;
  /* id -> raw bytes of its symbol: bytes + off[id], length off[id+1]-off[id] */
  unsigned char *sym;
  uint32_t *sym_off;
  /* raw bytes -> canonical id (the last id with those bytes) */
  int32_t *str_slot;
  size_t str_cap;
  pair_slot *pairs;
  size_t pair_cap;
  int32_t init_id[256], init_final_id[256];
  pcre2_code *re;
  cache_shard cache[CACHE_SHARDS];
  char identity[64];
};

/* ---- hashing ---------------------------------------------------------------- */

static uint64_t hash_bytes(const unsigned char *p, size_t n) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h ^ (h >> 29);
}

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

/* +1 keeps the pair (0,0) distinct from an empty slot */
static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1; }

static const unsigned char *sym_bytes(const clipcl_tokenizer *t, int32_t id, size_t *len) {
  *len = t->sym_off[id + 1] - t->sym_off[id];
  return t->sym + t->sym_off[id];
}

static int32_t str_find(const clipcl_tokenizer *t, const unsigned char *p, size_t n) {
  size_t mask = t->str_cap - 1, i = hash_bytes(p, n) & mask;
  for (;; i = (i + 1) & mask) {
    int32_t id = t->str_slot[i];
    if (id < 0) return -1;
    size_t l;
    const unsigned char *q = sym_bytes(t, id, &l);
    if (l == n && !memcmp(p, q, n)) return id;
  }
}

/* later ids replace earlier ones with the same bytes, as dict(zip(vocab, ..)) */
static void str_insert(clipcl_tokenizer *t, int32_t id) {
  size_t n;
  const unsigned char *p = sym_bytes(t, id, &n);
  size_t mask = t->str_cap - 1, i = hash_bytes(p, n) & mask;
  for (;; i = (i + 1) & mask) {
    int32_t old = t->str_slot[i];
    if (old < 0) {
      t->str_slot[i] = id;
      return;
    }
    size_t l;
    const unsigned char *q = sym_bytes(t, old, &l);
    if (l == n && !memcmp(p, q, n)) {
      t->str_slot[i] = id;
      return;
    }
  }
}

static const pair_slot *pair_find(const clipcl_tokenizer *t, int32_t a, int32_t b) {
  uint64_t k = pair_key(a, b);
  size_t mask = t->pair_cap - 1, i = mix64(k) & mask;
  for (;; i = (i + 1) & mask) {
    if (t->pairs[i].key == k) return &t->pairs[i];
    if (t->pairs[i].key == 0) return NULL;
  }
}

static void pair_insert(clipcl_tokenizer *t, int32_t a, int32_t b, int32_t rank, int32_t merged) {
  uint64_t k = pair_key(a, b);
  size_t mask = t->pair_cap - 1, i = mix64(k) & mask;
  while (t->pairs[i].key != 0 && t->pairs[i].key != k) i = (i + 1) & mask;
  t->pairs[i].key = k;
  t->pairs[i].rank = rank;
  t->pairs[i].merged = merged;
}

/* ---- GPT-2 byte <-> unicode map ---------------------------------------------- */

/* bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other
 * 68 to U+0100.. in byte order. byte_order[i] is the byte of symbol i. */
static void byte_maps(uint32_t byte_to_cp[256], uint8_t byte_order[256]) {
  int n = 0, extra = 0;
  for (int b = 0; b < 256; b++) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    if (printable) {
      byte_to_cp[b] = (uint32_t)b;
      byte_order[n++] = (uint8_t)b;
    }
  }
  for (int b = 0; b < 256; b++) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    if (!printable) {
      byte_to_cp[b] = 256u + (uint32_t)extra++;
      byte_order[n++] = (uint8_t)b;
    }
  }
}

/* ---- vocabulary file --------------------------------------------------------- */

/* Inflates (gzip) or copies (plain text) the vocabulary, stopping once the
 * lines open_clip reads are in: the shipped file holds 262k lines. */
static clipcl_status vocab_text(const char *what, const unsigned char *data, size_t size, char **out,
                                size_t *out_len) {
  size_t need_lines = N_MERGES_MAX + 1, cap = 1 << 20, len = 0, lines = 0;
  char *buf = NULL;
  if (size < 2 || data[0] != 0x1f || data[1] != 0x8b) {
    /* plain text */
    for (len = 0; len < size && lines < need_lines; len++) lines += data[len] == '\n';
    buf = malloc(len + 1);
    if (!buf) return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", what);
    memcpy(buf, data, len);
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    return CLIPCL_OK;
  }
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return cc_fail(CLIPCL_ERR_NOMEM, "%s: zlib init failed", what);
  buf = malloc(cap + 1);
  if (!buf) {
    inflateEnd(&z);
    return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", what);
  }
  z.next_in = (Bytef *)data;
  uInt chunk = size > UINT_MAX ? UINT_MAX : (uInt)size;
  z.avail_in = chunk;
  size_t fed = chunk;
  clipcl_status st = CLIPCL_OK;
  for (;;) {
    if (len == cap) {
      if (cap >= VOCAB_TEXT_MAX) {
        st = cc_fail(CLIPCL_ERR_FORMAT, "%s: more than %u MiB of text before the last merge line", what,
                     VOCAB_TEXT_MAX >> 20);
        break;
      }
      char *nb = realloc(buf, cap * 2 + 1);
      if (!nb) {
        st = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", what);
        break;
      }
      buf = nb;
      cap *= 2;
    }
    if (z.avail_in == 0 && fed < size) {
      chunk = size - fed > UINT_MAX ? UINT_MAX : (uInt)(size - fed);
      z.next_in = (Bytef *)data + fed;
      z.avail_in = chunk;
      fed += chunk;
    }
    size_t before = len;
    z.next_out = (Bytef *)buf + len;
    z.avail_out = (uInt)(cap - len > UINT_MAX ? UINT_MAX : cap - len);
    int r = inflate(&z, Z_NO_FLUSH);
    len = (size_t)((char *)z.next_out - buf);
    for (size_t i = before; i < len; i++) lines += buf[i] == '\n';
    if (lines >= need_lines) break;
    if (r == Z_STREAM_END) break;
    if (r != Z_OK && !(r == Z_BUF_ERROR && len == cap)) {
      st = cc_fail(CLIPCL_ERR_FORMAT, "%s: corrupt gzip data (%s)", what, z.msg ? z.msg : "inflate failed");
      break;
    }
  }
  inflateEnd(&z);
  if (st != CLIPCL_OK) {
    free(buf);
    return st;
  }
  buf[len] = 0;
  *out = buf;
  *out_len = len;
  return CLIPCL_OK;
}

/* Python's str.split() on one merge line: runs of white space separate */
static int split_ws(const uint32_t *s, size_t n, size_t start[3], size_t end[3]) {
  int k = 0;
  size_t i = 0;
  while (i < n) {
    while (i < n && cc_py_isspace(s[i])) i++;
    if (i == n) break;
    if (k == 3) return 3;
    start[k] = i;
    while (i < n && !cc_py_isspace(s[i])) i++;
    end[k++] = i;
  }
  return k;
}

static clipcl_status build_lines(clipcl_tokenizer *t, const char *what, const char *text, size_t len,
                                 const char **line, size_t *line_len) {
  uint32_t byte_to_cp[256];
  uint8_t byte_order[256];
  int cp_to_byte[512];
  byte_maps(byte_to_cp, byte_order);
  for (int i = 0; i < 512; i++) cp_to_byte[i] = -1;
  for (int b = 0; b < 256; b++) cp_to_byte[byte_to_cp[b]] = b;
  /* line starts: line 0 is the header, merges follow */
  int n_lines = 0;
  for (size_t p = 0; p <= len && n_lines < N_MERGES_MAX + 1;) {
    const char *nl = memchr(text + p, '\n', len - p);
    size_t e = nl ? (size_t)(nl - text) : len;
    line[n_lines] = text + p;
    line_len[n_lines++] = e - p;
    if (!nl) break;
    p = e + 1;
  }
  int n_merges = n_lines - 1;
  if (n_merges > 0 && line_len[n_lines - 1] == 0) n_merges--; /* text ends with '\n' */
  if (n_merges < 1) return cc_fail(CLIPCL_ERR_FORMAT, "%s: no merge lines after the header", what);

  /* symbol bytes: 256 + 256 byte symbols, merges, specials */
  size_t bytes = 256 + 256 * 5 + sizeof SOT_TEXT + sizeof EOT_TEXT;
  for (int i = 1; i <= n_merges; i++) bytes += line_len[i];
  t->n_merges = n_merges;
  t->n_vocab = 512 + n_merges + 2;
  t->sym = malloc(bytes);
  t->sym_off = malloc(((size_t)t->n_vocab + 1) * sizeof *t->sym_off);
  t->str_cap = 1;
  while (t->str_cap < (size_t)t->n_vocab * 2) t->str_cap <<= 1;
  t->pair_cap = 1;
  while (t->pair_cap < (size_t)n_merges * 2) t->pair_cap <<= 1;
  t->str_slot = malloc(t->str_cap * sizeof *t->str_slot);
  t->pairs = calloc(t->pair_cap, sizeof *t->pairs);
  int32_t(*parts)[2] = malloc((size_t)n_merges * sizeof *parts);
  if (!t->sym || !t->sym_off || !t->str_slot || !t->pairs || !parts) {
    free(parts);
    return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", what);
  }
  for (size_t i = 0; i < t->str_cap; i++) t->str_slot[i] = -1;

  size_t off = 0;
  int id = 0;
  for (int i = 0; i < 256; i++, id++) {
    t->sym_off[id] = (uint32_t)off;
    t->sym[off++] = byte_order[i];
  }
  for (int i = 0; i < 256; i++, id++) {
    t->sym_off[id] = (uint32_t)off;
    t->sym[off++] = byte_order[i];
    memcpy(t->sym + off, "</w>", 4);
    off += 4;
  }

  /* merges: the symbol of line i is its two halves joined; the halves'
   * byte offsets are remembered to look them up once every symbol exists */
  cc_u32s cps = {0};
  clipcl_status st = CLIPCL_OK;
  size_t(*half)[2][2] = malloc((size_t)n_merges * sizeof *half);
  if (!half) st = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", what);
  for (int i = 1; i <= n_merges && st == CLIPCL_OK; i++, id++) {
    cps.n = 0;
    st = cc_utf8_decode(line[i], line_len[i], &cps);
    if (st != CLIPCL_OK) {
      st = cc_fail_ctx(CLIPCL_ERR_FORMAT, "%s: line %d", what, i + 1);
      break;
    }
    size_t s[3], e[3];
    if (split_ws(cps.p, cps.n, s, e) != 2) {
      st = cc_fail(CLIPCL_ERR_FORMAT, "%s: line %d: expected two symbols separated by a space", what, i + 1);
      break;
    }
    t->sym_off[id] = (uint32_t)off;
    for (int h = 0; h < 2 && st == CLIPCL_OK; h++) {
      size_t hs = off;
      for (size_t q = s[h]; q < e[h]; q++) {
        uint32_t c = cps.p[q];
        /* "</w>" is plain ASCII and so already its own bytes */
        if (c >= 512 || cp_to_byte[c] < 0) {
          st = cc_fail(CLIPCL_ERR_FORMAT, "%s: line %d: U+%04X is not a byte symbol", what, i + 1, (unsigned)c);
          break;
        }
        t->sym[off++] = (unsigned char)cp_to_byte[c];
      }
      half[i - 1][h][0] = hs;
      half[i - 1][h][1] = off;
    }
  }
  cc_u32s_free(&cps);
  if (st == CLIPCL_OK) {
    t->sot = id;
    t->sym_off[id++] = (uint32_t)off;
    memcpy(t->sym + off, SOT_TEXT, sizeof SOT_TEXT - 1);
    off += sizeof SOT_TEXT - 1;
    t->eot = id;
    t->sym_off[id++] = (uint32_t)off;
    memcpy(t->sym + off, EOT_TEXT, sizeof EOT_TEXT - 1);
    off += sizeof EOT_TEXT - 1;
    t->sym_off[id] = (uint32_t)off;
    for (int v = 0; v < t->n_vocab; v++) str_insert(t, v);
    for (int i = 0; i < n_merges && st == CLIPCL_OK; i++) {
      for (int h = 0; h < 2; h++) {
        parts[i][h] = str_find(t, t->sym + half[i][h][0], half[i][h][1] - half[i][h][0]);
        if (parts[i][h] < 0) {
          st = cc_fail(CLIPCL_ERR_FORMAT, "%s: line %d: symbol '%.*s' is not in the vocabulary", what, i + 2,
                       (int)(half[i][h][1] - half[i][h][0]), (const char *)t->sym + half[i][h][0]);
          break;
        }
      }
    }
    /* ranks by line order, later duplicates winning as in dict(zip(...));
     * the merged symbol is whatever id its bytes canonically have */
    for (int i = 0; i < n_merges && st == CLIPCL_OK; i++) {
      size_t l;
      const unsigned char *p = sym_bytes(t, 512 + i, &l);
      pair_insert(t, parts[i][0], parts[i][1], i, str_find(t, p, l));
    }
    for (int b = 0; b < 256 && st == CLIPCL_OK; b++) {
      unsigned char w[5] = {(unsigned char)b, '<', '/', 'w', '>'};
      t->init_id[b] = str_find(t, w, 1);
      t->init_final_id[b] = str_find(t, w, 5);
    }
  }
  free(half);
  free(parts);
  if (st != CLIPCL_OK) return st;

  /* identity: vocabulary size and CRC-32 of the lines it was built from */
  uLong crc = crc32(0L, Z_NULL, 0);
  for (int i = 0; i <= n_merges; i++) {
    crc = crc32(crc, (const Bytef *)line[i], (uInt)line_len[i]);
    crc = crc32(crc, (const Bytef *)"\n", 1);
  }
  snprintf(t->identity, sizeof t->identity, "clip-bpe-%d-%08lx", t->n_vocab, (unsigned long)crc);
  return CLIPCL_OK;
}

/* build_lines with its line tables on the heap (48,895 entries each) */
static clipcl_status build(clipcl_tokenizer *t, const char *what, const char *text, size_t len) {
  const char **line = malloc((N_MERGES_MAX + 1) * sizeof *line);
  size_t *line_len = malloc((N_MERGES_MAX + 1) * sizeof *line_len);
  if (!line || !line_len) {
    free(line);
    free(line_len);
    return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", what);
  }
  clipcl_status st = build_lines(t, what, text, len, line, line_len);
  free(line);
  free(line_len);
  return st;
}

/* open_clip's split regex. The classes follow the `regex` module's view:
 * PCRE2's \p{L}/\p{N} (Unicode 14) plus the letters and numbers Python's
 * newer tables have, and U+0345, which no alternative matches there.
 * tests/test_tokenizer_classes.c checks every code point. */
static clipcl_status compile_regex(clipcl_tokenizer *t) {
  /* \s spelled out: PCRE2's \s also takes U+180E, which Python's does not
   * since Unicode 6.3 (same set as cc_regex_space in clean.c) */
  const char *fmt =
      "<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}%s]+|[\\p{N}%s]|"
      "[^\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}"
      "\\x{205f}\\x{3000}\\p{L}\\p{N}%s%s%s]+";
  size_t n = strlen(fmt) + 2 * strlen(cc_regex_extra_letters) + 2 * strlen(cc_regex_extra_numbers) +
             strlen(cc_regex_dropped) + 1;
  char *pat = malloc(n);
  if (!pat) return cc_fail(CLIPCL_ERR_NOMEM, "tokenizer: out of memory");
  snprintf(pat, n, fmt, cc_regex_extra_letters, cc_regex_extra_numbers, cc_regex_extra_letters,
           cc_regex_extra_numbers, cc_regex_dropped);
  int err;
  PCRE2_SIZE eoff;
  t->re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS, &err, &eoff,
                        NULL);
  free(pat);
  if (!t->re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    return cc_fail(CLIPCL_ERR_UNSUPPORTED, "tokenizer: split regex does not compile at %zu: %s", (size_t)eoff,
                   (const char *)msg);
  }
  pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* optional: the interpreter is the fallback */
  return CLIPCL_OK;
}

static clipcl_status create_from(const char *what, const unsigned char *data, size_t size, clipcl_tokenizer **out) {
  *out = NULL;
  clipcl_tokenizer *t = calloc(1, sizeof *t);
  if (!t) return cc_fail(CLIPCL_ERR_NOMEM, "tokenizer: out of memory");
  for (int s = 0; s < CACHE_SHARDS; s++) pthread_mutex_init(&t->cache[s].lock, NULL);
  char *text = NULL;
  size_t len = 0;
  clipcl_status st = vocab_text(what, data, size, &text, &len);
  if (st == CLIPCL_OK) st = build(t, what, text, len);
  free(text);
  if (st == CLIPCL_OK) st = compile_regex(t);
  if (st != CLIPCL_OK) {
    clipcl_tokenizer_free(t);
    return st;
  }
  *out = t;
  return CLIPCL_OK;
}

clipcl_status clipcl_tokenizer_create(clipcl_tokenizer **out) {
  if (!out) return cc_fail(CLIPCL_ERR_ARG, "clipcl_tokenizer_create: out is NULL");
  return create_from("built-in vocabulary", cc_vocab_gz, cc_vocab_gz_size, out);
}

clipcl_status clipcl_tokenizer_load(const char *path, clipcl_tokenizer **out) {
  if (!out || !path) return cc_fail(CLIPCL_ERR_ARG, "clipcl_tokenizer_load: NULL argument");
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return cc_fail(CLIPCL_ERR_IO, "%s: cannot open", path);
  unsigned char *data = NULL;
  size_t len = 0, cap = 0;
  clipcl_status st = CLIPCL_OK;
  for (;;) {
    if (len == cap) {
      if (cap >= VOCAB_TEXT_MAX) {
        st = cc_fail(CLIPCL_ERR_FORMAT, "%s: larger than %u MiB", path, VOCAB_TEXT_MAX >> 20);
        break;
      }
      cap = cap ? cap * 2 : 1 << 20;
      unsigned char *nd = realloc(data, cap);
      if (!nd) {
        st = cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", path);
        break;
      }
      data = nd;
    }
    size_t r = fread(data + len, 1, cap - len, f);
    len += r;
    if (r == 0) {
      if (ferror(f)) st = cc_fail(CLIPCL_ERR_IO, "%s: read error", path);
      break;
    }
  }
  fclose(f);
  if (st == CLIPCL_OK) st = create_from(path, data, len, out);
  free(data);
  return st;
}

static void cache_clear(cache_shard *s) {
  for (size_t b = 0; b < sizeof s->bucket / sizeof *s->bucket; b++) {
    cache_entry *e = s->bucket[b];
    while (e) {
      cache_entry *n = e->next;
      free(e);
      e = n;
    }
    s->bucket[b] = NULL;
  }
  s->count = 0;
}

void clipcl_tokenizer_free(clipcl_tokenizer *t) {
  if (!t) return;
  for (int s = 0; s < CACHE_SHARDS; s++) {
    cache_clear(&t->cache[s]);
    pthread_mutex_destroy(&t->cache[s].lock);
  }
  if (t->re) pcre2_code_free(t->re);
  free(t->sym);
  free(t->sym_off);
  free(t->str_slot);
  free(t->pairs);
  free(t);
}

const char *clipcl_tokenizer_identity(const clipcl_tokenizer *t) { return t ? t->identity : ""; }
int clipcl_tokenizer_vocab_size(const clipcl_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t clipcl_tokenizer_sot(const clipcl_tokenizer *t) { return t ? t->sot : -1; }
int32_t clipcl_tokenizer_eot(const clipcl_tokenizer *t) { return t ? t->eot : -1; }

/* ---- growable id list ---------------------------------------------------------- */

typedef struct {
  int32_t *p;
  size_t n, cap;
} ids_buf;

static clipcl_status ids_reserve(ids_buf *b, size_t extra) {
  if (extra > SIZE_MAX / sizeof(int32_t) / 2 - b->n) return cc_fail(CLIPCL_ERR_NOMEM, "tokenizer: too many tokens");
  if (b->n + extra <= b->cap) return CLIPCL_OK;
  size_t cap = b->cap ? b->cap : 128;
  while (cap < b->n + extra) cap *= 2;
  int32_t *p = realloc(b->p, cap * sizeof *p);
  if (!p) return cc_fail(CLIPCL_ERR_NOMEM, "tokenizer: out of memory");
  b->p = p;
  b->cap = cap;
  return CLIPCL_OK;
}

/* ---- BPE ---------------------------------------------------------------------- */

/* Python's bpe(): repeatedly take the pair of adjacent symbols with the
 * lowest merge rank and merge every occurrence of it, left to right without
 * overlap. Done with a heap of candidate pairs (stale ones skipped) so a very
 * long word costs n log n rather than n^2: all entries of the lowest rank
 * are taken out first, then merged in position order, which is exactly the
 * left-to-right pass (a merge never creates a pair of the same rank, as the
 * merged symbol is longer than either half). */
typedef struct {
  int32_t rank;
  uint32_t pos, left, right;
} heap_item;

static int item_less(const heap_item *a, const heap_item *b) {
  return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(heap_item *h, size_t *n, heap_item x) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!item_less(&x, &h[p])) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = x;
}

static heap_item heap_pop(heap_item *h, size_t *n) {
  heap_item top = h[0], x = h[--(*n)];
  size_t i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= *n) break;
    if (c + 1 < *n && item_less(&h[c + 1], &h[c])) c++;
    if (!item_less(&h[c], &x)) break;
    h[i] = h[c];
    i = c;
  }
  if (*n) h[i] = x;
  return top;
}

static clipcl_status bpe_word(const clipcl_tokenizer *t, const unsigned char *w, size_t n, ids_buf *out) {
  if (n == 1) {
    CC_TRY(ids_reserve(out, 1));
    out->p[out->n++] = t->init_final_id[w[0]];
    return CLIPCL_OK;
  }
  if (n > UINT32_MAX / 4) return cc_fail(CLIPCL_ERR_ARG, "tokenizer: word of %zu bytes is too long", n);
  /* symbols as a linked list over positions; the heap holds at most one
   * entry per pair ever formed: n-1 initial plus two per merge */
  int32_t stack_sym[64];
  uint32_t stack_link[128];
  heap_item stack_heap[192];
  int32_t *sym = stack_sym;
  uint32_t *prev = stack_link, *next = stack_link + 64;
  heap_item *heap = stack_heap;
  void *mem = NULL;
  if (n > 64) {
    size_t bytes = n * (sizeof *sym + 2 * sizeof *prev) + 3 * n * sizeof *heap;
    mem = malloc(bytes);
    if (!mem) return cc_fail(CLIPCL_ERR_NOMEM, "tokenizer: out of memory");
    heap = mem;
    sym = (int32_t *)(heap + 3 * n);
    prev = (uint32_t *)(sym + n);
    next = prev + n;
  }
  const uint32_t NONE = UINT32_MAX;
  size_t nh = 0, alive = n;
  for (size_t i = 0; i < n; i++) {
    sym[i] = i + 1 < n ? t->init_id[w[i]] : t->init_final_id[w[i]];
    prev[i] = i ? (uint32_t)(i - 1) : NONE;
    next[i] = i + 1 < n ? (uint32_t)(i + 1) : NONE;
  }
  for (size_t i = 0; i + 1 < n; i++) {
    const pair_slot *p = pair_find(t, sym[i], sym[i + 1]);
    if (p) heap_push(heap, &nh, (heap_item){p->rank, (uint32_t)i, (uint32_t)sym[i], (uint32_t)sym[i + 1]});
  }
  while (nh > 0 && alive > 1) {
    int32_t r = heap[0].rank;
    /* pop every entry of rank r (already in position order) into a list at
     * the end of the heap array: the slots freed by popping */
    size_t nb = 0, cap = 3 * (n > 64 ? n : 64);
    while (nh > 0 && heap[0].rank == r) {
      heap_item it = heap_pop(heap, &nh);
      heap[cap - 1 - nb++] = it;
    }
    for (size_t q = 0; q < nb; q++) {
      heap_item it = heap[cap - 1 - q];
      uint32_t i = it.pos, j = next[i];
      if (sym[i] == INT32_MIN || j == NONE || (uint32_t)sym[i] != it.left || (uint32_t)sym[j] != it.right) continue;
      const pair_slot *p = pair_find(t, sym[i], sym[j]);
      sym[i] = p->merged;
      sym[j] = INT32_MIN;
      next[i] = next[j];
      if (next[j] != NONE) prev[next[j]] = i;
      alive--;
      if (prev[i] != NONE) {
        const pair_slot *a = pair_find(t, sym[prev[i]], sym[i]);
        if (a) heap_push(heap, &nh, (heap_item){a->rank, prev[i], (uint32_t)sym[prev[i]], (uint32_t)sym[i]});
      }
      if (next[i] != NONE) {
        const pair_slot *b = pair_find(t, sym[i], sym[next[i]]);
        if (b) heap_push(heap, &nh, (heap_item){b->rank, i, (uint32_t)sym[i], (uint32_t)sym[next[i]]});
      }
    }
  }
  clipcl_status st = ids_reserve(out, alive);
  if (st == CLIPCL_OK)
    for (uint32_t i = 0; i != NONE; i = next[i]) out->p[out->n++] = sym[i];
  free(mem);
  return st;
}

/* ---- word cache ------------------------------------------------------------------ */

static int cache_get(clipcl_tokenizer *t, uint64_t h, const unsigned char *w, size_t n, ids_buf *out) {
  cache_shard *s = &t->cache[h % CACHE_SHARDS];
  size_t b = (h / CACHE_SHARDS) % (sizeof s->bucket / sizeof *s->bucket);
  int found = 0;
  pthread_mutex_lock(&s->lock);
  for (cache_entry *e = s->bucket[b]; e; e = e->next) {
    if (e->hash == h && e->len == n && !memcmp(e->word, w, n)) {
      if (ids_reserve(out, e->n_ids) == CLIPCL_OK) {
        memcpy(out->p + out->n, e->ids, e->n_ids * sizeof *e->ids);
        out->n += e->n_ids;
        found = 1;
      }
      break;
    }
  }
  pthread_mutex_unlock(&s->lock);
  return found;
}

static void cache_put(clipcl_tokenizer *t, uint64_t h, const unsigned char *w, size_t n, const int32_t *ids,
                      size_t n_ids) {
  cache_shard *s = &t->cache[h % CACHE_SHARDS];
  size_t b = (h / CACHE_SHARDS) % (sizeof s->bucket / sizeof *s->bucket);
  cache_entry *e = malloc(sizeof *e + n_ids * sizeof(int32_t) + n);
  if (!e) return; /* the cache is only a speed-up */
  e->hash = h;
  e->len = (uint32_t)n;
  e->n_ids = (uint32_t)n_ids;
  e->ids = (int32_t *)(e + 1);
  e->word = (unsigned char *)(e->ids + n_ids);
  memcpy(e->ids, ids, n_ids * sizeof *ids);
  memcpy(e->word, w, n);
  pthread_mutex_lock(&s->lock);
  if (s->count >= CACHE_SHARD_ENTRIES) cache_clear(s);
  e->next = s->bucket[b];
  s->bucket[b] = e;
  s->count++;
  pthread_mutex_unlock(&s->lock);
}

static clipcl_status encode_word(clipcl_tokenizer *t, const unsigned char *w, size_t n, ids_buf *out) {
  if (n == sizeof SOT_TEXT - 1 && !memcmp(w, SOT_TEXT, n)) {
    CC_TRY(ids_reserve(out, 1));
    out->p[out->n++] = t->sot;
    return CLIPCL_OK;
  }
  if (n == sizeof EOT_TEXT - 1 && !memcmp(w, EOT_TEXT, n)) {
    CC_TRY(ids_reserve(out, 1));
    out->p[out->n++] = t->eot;
    return CLIPCL_OK;
  }
  if (n == 1 || n > CACHE_WORD_MAX) return bpe_word(t, w, n, out);
  uint64_t h = hash_bytes(w, n);
  if (cache_get(t, h, w, n, out)) return CLIPCL_OK;
  size_t start = out->n;
  CC_TRY(bpe_word(t, w, n, out));
  cache_put(t, h, w, n, out->p + start, out->n - start);
  return CLIPCL_OK;
}

/* ---- tokenize ------------------------------------------------------------------ */

/* cleaned text -> ids of every piece the split regex finds, appended to out */
static clipcl_status encode_text(clipcl_tokenizer *t, const char *text, ids_buf *out) {
  cc_u32s in = {0}, clean = {0};
  char *u8 = NULL;
  pcre2_match_data *md = NULL;
  clipcl_status st = cc_utf8_decode(text, strlen(text), &in);
  if (st == CLIPCL_OK) st = cc_text_clean(in.p, in.n, &clean);
  cc_u32s_free(&in);
  size_t len = 0;
  if (st == CLIPCL_OK && clean.n) {
    if (clean.n > (SIZE_MAX - 1) / 4) st = cc_fail(CLIPCL_ERR_NOMEM, "tokenizer: text too long");
    else if (!(u8 = malloc(clean.n * 4 + 1))) st = cc_fail(CLIPCL_ERR_NOMEM, "tokenizer: out of memory");
    for (size_t i = 0; st == CLIPCL_OK && i < clean.n; i++) len += cc_utf8_put(clean.p[i], u8 + len);
  }
  cc_u32s_free(&clean);
  if (st == CLIPCL_OK && len) {
    md = pcre2_match_data_create_from_pattern(t->re, NULL);
    if (!md) st = cc_fail(CLIPCL_ERR_NOMEM, "tokenizer: out of memory");
  }
  for (size_t pos = 0; st == CLIPCL_OK && pos < len;) {
    int rc = pcre2_match(t->re, (PCRE2_SPTR)u8, len, pos, PCRE2_NO_UTF_CHECK, md, NULL);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      st = cc_fail(CLIPCL_ERR_UNSUPPORTED, "tokenizer: split regex failed: %s", (const char *)msg);
      break;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    if (ov[1] <= ov[0]) { /* cannot happen: every alternative consumes */
      st = cc_fail(CLIPCL_ERR_FORMAT, "tokenizer: empty split match");
      break;
    }
    st = encode_word(t, (const unsigned char *)u8 + ov[0], ov[1] - ov[0], out);
    pos = ov[1];
  }
  if (md) pcre2_match_data_free(md);
  free(u8);
  return st;
}

clipcl_status cc_tokenizer_split(const clipcl_tokenizer *t, const char *u8, size_t len, size_t *ends, size_t max,
                                 size_t *n) {
  pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->re, NULL);
  if (!md) return cc_fail(CLIPCL_ERR_NOMEM, "tokenizer: out of memory");
  *n = 0;
  for (size_t pos = 0; pos < len;) {
    int rc = pcre2_match(t->re, (PCRE2_SPTR)u8, len, pos, 0, md, NULL);
    if (rc < 0) break;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    if (*n < max) {
      ends[2 * *n] = ov[0];
      ends[2 * *n + 1] = ov[1];
    }
    ++*n;
    pos = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
  }
  pcre2_match_data_free(md);
  return CLIPCL_OK;
}

clipcl_status clipcl_tokenize(clipcl_tokenizer *t, const char *text, int context_length, int32_t *ids,
                              int *n_tokens) {
  if (!t || !text || !ids) return cc_fail(CLIPCL_ERR_ARG, "clipcl_tokenize: NULL argument");
  if (context_length < 1) return cc_fail(CLIPCL_ERR_ARG, "clipcl_tokenize: context length %d < 1", context_length);
  ids_buf b = {0};
  clipcl_status st = ids_reserve(&b, 80);
  if (st == CLIPCL_OK) {
    b.p[b.n++] = t->sot;
    st = encode_text(t, text, &b);
  }
  if (st == CLIPCL_OK) st = ids_reserve(&b, 1);
  if (st != CLIPCL_OK) {
    free(b.p);
    return st;
  }
  b.p[b.n++] = t->eot;
  size_t ctx = (size_t)context_length, keep = b.n < ctx ? b.n : ctx;
  memcpy(ids, b.p, keep * sizeof *ids);
  if (b.n > ctx) ids[ctx - 1] = t->eot; /* open_clip: truncate, last kept token becomes EOT */
  for (size_t i = keep; i < ctx; i++) ids[i] = 0;
  if (n_tokens) *n_tokens = b.n > INT_MAX ? INT_MAX : (int)b.n;
  free(b.p);
  return CLIPCL_OK;
}

/* ---- decode --------------------------------------------------------------------- */

/* bytes.decode('utf-8', errors='replace'): each maximal ill-formed subpart
 * becomes one U+FFFD, as CPython does */
static size_t utf8_repair(const unsigned char *s, size_t n, char *d) {
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    size_t k = 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
      if (d) d[o] = (char)c;
      o++, i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) k = 1;
    else if (c >= 0xE0 && c <= 0xEF) k = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) k = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    size_t j = 1;
    if (k) {
      for (; j <= k && i + j < n; j++) {
        unsigned b = s[i + j];
        if (j == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
      }
    }
    if (k && j == k + 1) {
      if (d) memcpy(d + o, s + i, k + 1);
      o += k + 1;
      i += k + 1;
    } else {
      if (d) memcpy(d + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i += k ? j : 1;
    }
  }
  return o;
}

clipcl_status clipcl_detokenize(const clipcl_tokenizer *t, const int32_t *ids, int n, int flags, char *out,
                                size_t cap, size_t *len) {
  if (!t || (!ids && n > 0) || n < 0) return cc_fail(CLIPCL_ERR_ARG, "clipcl_detokenize: bad argument");
  int from = 0, to = n;
  if (flags & CLIPCL_DETOK_TEXT_ONLY) {
    if (from < to && ids[from] == t->sot) from++;
    for (int i = from; i < to; i++)
      if (ids[i] == t->eot) {
        to = i;
        break;
      }
  }
  size_t raw_len = 0;
  for (int i = from; i < to; i++) {
    if (ids[i] < 0 || ids[i] >= t->n_vocab)
      return cc_fail(CLIPCL_ERR_ARG, "clipcl_detokenize: id %d at %d is outside the vocabulary (%d)", (int)ids[i], i,
                     t->n_vocab);
    raw_len += t->sym_off[ids[i] + 1] - t->sym_off[ids[i]];
  }
  unsigned char *raw = malloc(raw_len + 1);
  char *txt = malloc(raw_len * 3 + 1);
  if (!raw || !txt) {
    free(raw);
    free(txt);
    return cc_fail(CLIPCL_ERR_NOMEM, "clipcl_detokenize: out of memory");
  }
  size_t o = 0;
  for (int i = from; i < to; i++) {
    size_t l;
    const unsigned char *p = sym_bytes(t, ids[i], &l);
    memcpy(raw + o, p, l);
    o += l;
  }
  size_t tl = utf8_repair(raw, raw_len, txt);
  free(raw);
  /* .replace('</w>', ' ') */
  size_t w = 0;
  for (size_t i = 0; i < tl;) {
    if (i + 4 <= tl && !memcmp(txt + i, "</w>", 4)) {
      txt[w++] = ' ';
      i += 4;
    } else {
      txt[w++] = txt[i++];
    }
  }
  if ((flags & CLIPCL_DETOK_TEXT_ONLY) && w > 0 && txt[w - 1] == ' ') w--;
  if (len) *len = w;
  clipcl_status st = CLIPCL_OK;
  if (out && cap > w) {
    memcpy(out, txt, w);
    out[w] = 0;
  } else if (out || cap) {
    st = cc_fail(CLIPCL_ERR_ARG, "clipcl_detokenize: buffer of %zu bytes, need %zu", cap, w + 1);
  }
  free(txt);
  return st;
}

/* test_safetensors_bad.c: every malformed safetensors file named in issue 3
 * is refused by cc_st_open with CLIPCL_ERR_FORMAT (UNSUPPORTED / IO where
 * stated), no handle, and a one-line message naming the file and the
 * problem. Files are built by hand here: an 8-byte length, the JSON text,
 * then zero bytes of data. */
#include <fcntl.h>
#include <sys/stat.h>

#include "io/safetensors.h"
#include "io_testutil.h"

static char dir[512], path[600];

/* Header length field `hlen` (or the JSON's length when -1), the JSON, then
 * `data` zero bytes. */
static void make(long long hlen, const char *json, size_t data) {
  size_t jl = strlen(json);
  uint64_t n = hlen < 0 ? (uint64_t)jl : (uint64_t)hlen;
  unsigned char *b = calloc(8 + jl + data, 1);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(n >> (8 * i));
  memcpy(b + 8, json, jl);
  tu_write(path, b, 8 + jl + data);
  free(b);
}

static void expect(const char *name, clipcl_status want, const char *word) {
  cc_st_file *f = (cc_st_file *)&f; /* must come back NULL */
  clipcl_status s = cc_st_open(path, &f);
  tu_check_fail(name, s, want, path, word);
  if (f) {
    th_assert(name, 0, "handle not NULL on failure");
    if (s == CLIPCL_OK) cc_st_close(f);
  }
}

/* One tensor entry `entry` named "t", data bytes after the header. */
static void bad_entry(const char *name, const char *entry, size_t data, clipcl_status want, const char *word) {
  char js[1024];
  snprintf(js, sizeof js, "{\"t\":%s}", entry);
  make(-1, js, data);
  char full[160];
  snprintf(full, sizeof full, "%s", name);
  expect(full, want, word);
  /* the tensor's name is in the message whenever the entry itself is bad */
  if (want == CLIPCL_ERR_FORMAT && strstr(clipcl_last_error(), "tensor"))
    th_assert("message names the tensor", strstr(clipcl_last_error(), "'t'") != NULL, "%s", clipcl_last_error());
}

int main(void) {
  tu_tmpdir(dir, sizeof dir);
  snprintf(path, sizeof path, "%s/bad.safetensors", dir);

  /* sizes */
  tu_write(path, "", 0);
  expect("empty file", CLIPCL_ERR_FORMAT, "too short");
  tu_write(path, "\x02\0\0\0\0", 5);
  expect("5-byte file", CLIPCL_ERR_FORMAT, "too short");
  make(1LL << 60, "{}", 90);
  expect("header length 2^60", CLIPCL_ERR_FORMAT, "limit");
  make(-1, "{}", 0);
  make(1000, "{}", 90);
  expect("header longer than the file", CLIPCL_ERR_FORMAT, "truncated");
  make(1, "{", 0);
  expect("header length 1", CLIPCL_ERR_FORMAT, "too small");
  make(0, "", 0);
  expect("header length 0", CLIPCL_ERR_FORMAT, "too small");
  {
    /* 150 MiB header inside a 200 MiB sparse file: refused before any
     * allocation or read of the header */
    make(150LL << 20, "{}", 0);
    int fd = open(path, O_WRONLY);
    int ok = fd >= 0 && ftruncate(fd, 200LL << 20) == 0;
    if (fd >= 0) close(fd);
    if (ok) expect("header length 150 MiB in a 200 MiB file", CLIPCL_ERR_FORMAT, "limit");
    else th_assert("sparse file", 0, "cannot make a 200 MiB sparse file");
  }

  /* JSON */
  make(-1, "{\"a\":", 0);
  expect("JSON cut short", CLIPCL_ERR_FORMAT, "not valid JSON");
  make(-1, "[1,2,3]", 0);
  expect("JSON array", CLIPCL_ERR_FORMAT, "not an object");
  make(-1, "\"str\"", 0);
  expect("JSON string", CLIPCL_ERR_FORMAT, "JSON");
  make(-1, "{} x", 0);
  expect("trailing garbage", CLIPCL_ERR_FORMAT, "not valid JSON");
  make(-1, "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
           "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
  expect("duplicate tensor name", CLIPCL_ERR_FORMAT, "duplicate");
  make(-1, "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
  expect("NUL in a name", CLIPCL_ERR_FORMAT, "not valid JSON");
  make(-1, "{\"t\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}", 4);
  expect("integer beyond 64 bits", CLIPCL_ERR_FORMAT, "not valid JSON");

  /* entries: missing fields and wrong JSON types */
  bad_entry("entry not an object", "5", 0, CLIPCL_ERR_FORMAT, "not a JSON object");
  bad_entry("no dtype", "{\"shape\":[1],\"data_offsets\":[0,4]}", 4, CLIPCL_ERR_FORMAT, "no dtype");
  bad_entry("no shape", "{\"dtype\":\"F32\",\"data_offsets\":[0,4]}", 4, CLIPCL_ERR_FORMAT, "no shape");
  bad_entry("no data_offsets", "{\"dtype\":\"F32\",\"shape\":[1]}", 4, CLIPCL_ERR_FORMAT, "no data_offsets");
  bad_entry("dtype a number", "{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}", 4, CLIPCL_ERR_FORMAT,
            "dtype is not a string");
  bad_entry("unknown dtype", "{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}", 4, CLIPCL_ERR_FORMAT,
            "unknown dtype 'F17'");
  bad_entry("lower-case dtype", "{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4, CLIPCL_ERR_FORMAT,
            "unknown dtype");
  bad_entry("shape a number", "{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}", 4, CLIPCL_ERR_FORMAT,
            "shape is not an array");
  bad_entry("shape entry real", "{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}", 8, CLIPCL_ERR_FORMAT,
            "shape[0] is not an integer");
  bad_entry("shape entry string", "{\"dtype\":\"F32\",\"shape\":[1,\"2\"],\"data_offsets\":[0,8]}", 8,
            CLIPCL_ERR_FORMAT, "shape[1] is not an integer");
  bad_entry("shape entry null", "{\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,4]}", 4,
            CLIPCL_ERR_FORMAT, "not an integer");
  bad_entry("negative dimension", "{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}", 4,
            CLIPCL_ERR_FORMAT, "negative");
  bad_entry("data_offsets an object", "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{}}", 4,
            CLIPCL_ERR_FORMAT, "data_offsets");
  bad_entry("data_offsets of one", "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}", 4,
            CLIPCL_ERR_FORMAT, "two integers");
  bad_entry("data_offsets of three", "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}", 8,
            CLIPCL_ERR_FORMAT, "two integers");
  bad_entry("data_offsets real", "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]}", 4,
            CLIPCL_ERR_FORMAT, "data_offsets[1] is not an integer");
  bad_entry("data_offsets negative", "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}", 4,
            CLIPCL_ERR_FORMAT, "negative");

  /* offsets and sizes */
  bad_entry("begin after end", "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}", 8, CLIPCL_ERR_FORMAT,
            "begin 8 > end 4");
  bad_entry("end past the data", "{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}", 8, CLIPCL_ERR_FORMAT,
            "holds only 8");
  bad_entry("offsets far out of range",
            "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[9223372036854775800,9223372036854775804]}", 8,
            CLIPCL_ERR_FORMAT, "holds only");
  bad_entry("shape/size mismatch", "{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}", 16,
            CLIPCL_ERR_FORMAT, "16 expected");
  bad_entry("dtype size mismatch", "{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,16]}", 16,
            CLIPCL_ERR_FORMAT, "8 expected");
  bad_entry("shape product overflow",
            "{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,2],\"data_offsets\":[0,0]}", 0, CLIPCL_ERR_FORMAT,
            "overflows");
  bad_entry("shape overflow hidden by a zero",
            "{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,16,0],\"data_offsets\":[0,0]}", 0, CLIPCL_ERR_FORMAT,
            "overflows");
  bad_entry("byte size overflow", "{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}", 0,
            CLIPCL_ERR_FORMAT, "byte size overflows");
  bad_entry("product wraps to the right size",
            "{\"dtype\":\"F32\",\"shape\":[4611686018427387905],\"data_offsets\":[0,4]}", 4, CLIPCL_ERR_FORMAT,
            "overflows");
  bad_entry("nine dimensions", "{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}", 4,
            CLIPCL_ERR_UNSUPPORTED, "dimensions");
  make(-1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 24);
  expect("overlapping tensors", CLIPCL_ERR_FORMAT, "overlap");
  make(-1, "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
           "\"a\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]}}", 32);
  expect("tensor inside another, listed first", CLIPCL_ERR_FORMAT, "overlap");
  make(-1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
  expect("two tensors on the same bytes", CLIPCL_ERR_FORMAT, "overlap");

  /* metadata */
  make(-1, "{\"__metadata__\":[1]}", 0);
  expect("__metadata__ an array", CLIPCL_ERR_FORMAT, "__metadata__ is not");
  make(-1, "{\"__metadata__\":{\"a\":1}}", 0);
  expect("metadata value a number", CLIPCL_ERR_FORMAT, "not a string");
  make(-1, "{\"__metadata__\":{\"a\":{\"b\":\"c\"}}}", 0);
  expect("metadata value an object", CLIPCL_ERR_FORMAT, "not a string");

  /* names with control characters stay on one line in messages */
  make(-1, "{\"evil\\nname\\r\\u001b[31m\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}", 0);
  expect("control characters in a name", CLIPCL_ERR_FORMAT, "evil?name");

  /* not files */
  expect("sanity: last file still bad", CLIPCL_ERR_FORMAT, NULL);
  char missing[700];
  snprintf(missing, sizeof missing, "%s/missing.safetensors", dir);
  cc_st_file *f = NULL;
  tu_check_fail("missing file", cc_st_open(missing, &f), CLIPCL_ERR_IO, missing, "cannot open");
  tu_check_fail("a directory", cc_st_open(dir, &f), CLIPCL_ERR_IO, dir, NULL);

  /* valid edge cases that must open */
  make(-1, "{\"__metadata__\":null,\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
           "\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
           "\"e\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[4,7],\"extra\":1}}  ",
       7);
  clipcl_status s = cc_st_open(path, &f);
  th_assert("scalar, empty, unknown extra field and trailing spaces open", s == CLIPCL_OK && cc_st_count(f) == 3,
            "%s", s == CLIPCL_OK ? "" : clipcl_last_error());

  /* a file that shrinks after it was opened reads as an I/O error */
  if (s == CLIPCL_OK) {
    int fd = open(path, O_WRONLY);
    int ok = fd >= 0 && ftruncate(fd, 8 + 10) == 0;
    if (fd >= 0) close(fd);
    float v;
    if (ok) tu_check_fail("file shrank after open", cc_st_read_f32(f, cc_st_find(f, "s"), &v), CLIPCL_ERR_IO, path,
                          "shrink");
    cc_st_close(f);
  }

  tu_rmdir(dir);
  return th_finish(NULL);
}

/* source_tar.c: WebDataset tar shards read with libarchive, one sample at a
 * time. cc_tar_open expands the spec into the shard list and finds the data
 * set size as open_clip does (sizes.json or __len__ beside the first shard);
 * cc_tar_next streams samples out of one shard. Not here: shard order,
 * shuffling and decoding (loader.c).
 *
 * Grouping follows webdataset's group_by_keys: a member name "dir/k.ext"
 * has key "dir/k" (up to the first dot of the base name) and suffix "ext"
 * (lower-cased); consecutive members with the same key form one sample, and
 * a repeated suffix starts a new one. Non-files, names whose base name starts
 * with a dot or has none, and top-level "__name__" entries are skipped. The image is the
 * first present of jpg, png, jpeg, webp (open_clip's rename order); the
 * caption is txt, else the json member's "caption" string (its "url" string
 * is kept too, for search index metadata). Unlike webdataset,
 * a sample missing its image or caption is reported as bad instead of being
 * dropped silently, so a broken shard writer shows up in the counts.
 *
 * A damaged or cut shard ends at the damage: the sample being assembled is
 * reported bad (it may be incomplete) and the samples before it stand.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "data/data.h"
#include "util/error.h"

/* Image suffixes in open_clip's preference order. */
static const char *const image_suffix[] = {"jpg", "png", "jpeg", "webp"};
enum { N_IMAGE_SUFFIX = 4, WEBP_RANK = 3 };

struct cc_tar_reader {
  char *shard;
  struct archive *a;
  int opened, done;
  /* the header read ahead, which may start the next sample */
  int have_pending;
  char *pending_name;
  int64_t pending_size;
  /* sample being assembled */
  int active;
  cc_tar_sample cur;
  int image_rank;         /* rank of cur.image in image_suffix, N = none */
  char *json;
  size_t json_len;
  int has_txt;
  char **suffixes;        /* suffixes seen in this sample */
  int nsuffixes, suffixes_cap;
  char *last_member;      /* last member read completely, for messages */
};

void cc_tar_sample_clear(cc_tar_sample *s) {
  free(s->key);
  free(s->image);
  free(s->caption);
  free(s->url);
  free(s->bad);
  memset(s, 0, sizeof *s);
}

clipcl_status cc_tar_reader_open(const char *shard, cc_tar_reader **out) {
  *out = NULL;
  cc_tar_reader *r = calloc(1, sizeof *r);
  if (!r || !(r->shard = strdup(shard))) {
    free(r);
    return cc_fail(CLIPCL_ERR_NOMEM, "%s: out of memory", shard);
  }
  r->image_rank = N_IMAGE_SUFFIX;
  *out = r;
  return CLIPCL_OK;
}

static void reset_sample(cc_tar_reader *r) {
  cc_tar_sample_clear(&r->cur);
  free(r->json);
  r->json = NULL;
  r->json_len = 0;
  r->has_txt = 0;
  r->image_rank = N_IMAGE_SUFFIX;
  for (int i = 0; i < r->nsuffixes; i++) free(r->suffixes[i]);
  r->nsuffixes = 0;
  r->active = 0;
}

void cc_tar_reader_free(cc_tar_reader *r) {
  if (!r) return;
  reset_sample(r);
  free(r->suffixes);
  free(r->pending_name);
  free(r->last_member);
  if (r->a) archive_read_free(r->a);
  free(r->shard);
  free(r);
}

static int set_bad(cc_tar_sample *s, clipcl_status st, const char *fmt, ...) CC_PRINTF(3, 4);
static int set_bad(cc_tar_sample *s, clipcl_status st, const char *fmt, ...) {
  if (s->bad) return 0; /* the first problem is the one reported */
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  s->bad = strdup(buf);
  s->bad_status = st;
  return s->bad ? 0 : -1;
}

/* webdataset's base_plus_ext: key = the name up to the first dot of its base
 * name (a base name starting with a dot or without one gives no key). */
static int split_name(const char *name, size_t *key_len, const char **suffix) {
  const char *base = strrchr(name, '/');
  base = base ? base + 1 : name;
  if (*base == 0 || *base == '.') return 0;
  const char *dot = strchr(base, '.');
  if (!dot) return 0;
  *key_len = (size_t)(dot - name);
  *suffix = dot + 1;
  return 1;
}

/* webdataset skips top-level "__name__" entries (its meta prefix/suffix). */
static int is_meta(const char *name) {
  size_t n = strlen(name);
  return !strchr(name, '/') && n >= 4 && strncmp(name, "__", 2) == 0 && strcmp(name + n - 2, "__") == 0;
}

/* Reads the current member's data whole (size bytes). 0 ok, 1 damaged
 * (message in *err), -1 out of memory. */
static int read_member(cc_tar_reader *r, int64_t size, uint8_t **out, size_t *len, char *err, size_t errcap) {
  *out = NULL;
  *len = 0;
  /* the buffer grows with the data actually there: a header that declares
   * 256 MiB in front of a few bytes costs a few bytes */
  size_t cap = size < (1 << 20) ? (size_t)size + 1 : (size_t)1 << 20;
  uint8_t *buf = malloc(cap);
  if (!buf) return -1;
  size_t got = 0;
  while (got < (size_t)size) {
    if (got == cap) {
      size_t ncap = cap * 2 < (size_t)size ? cap * 2 : (size_t)size;
      uint8_t *nb = realloc(buf, ncap);
      if (!nb) {
        free(buf);
        return -1;
      }
      buf = nb;
      cap = ncap;
    }
    la_ssize_t k = archive_read_data(r->a, buf + got, cap - got);
    if (k < 0) {
      snprintf(err, errcap, "%s", archive_error_string(r->a) ? archive_error_string(r->a) : "read error");
      free(buf);
      return 1;
    }
    if (k == 0) {
      snprintf(err, errcap, "member ends after %zu of %lld bytes", got, (long long)size);
      free(buf);
      return 1;
    }
    got += (size_t)k;
  }
  *out = buf;
  *len = got;
  return 0;
}

/* Finishes the assembled sample: picks the caption and checks it is usable. */
static int finish_sample(cc_tar_reader *r) {
  cc_tar_sample *s = &r->cur;
  if (!s->bad && r->image_rank == N_IMAGE_SUFFIX)
    return set_bad(s, CLIPCL_ERR_FORMAT, "no image member (.jpg, .jpeg or .png)");
  if (!s->bad && r->image_rank == WEBP_RANK)
    return set_bad(s, CLIPCL_ERR_UNSUPPORTED, "WebP images are not supported (only PNG and JPEG)");
  if (!s->bad && !r->has_txt && !r->json) return set_bad(s, CLIPCL_ERR_FORMAT, "no caption member (.txt or .json)");
  if (s->bad || !r->json) return 0;
  json_error_t je;
  json_t *root = json_loadb(r->json, r->json_len, 0, &je);
  if (!root) {
    /* only a problem when the caption has to come from it */
    if (r->has_txt) return 0;
    return set_bad(s, CLIPCL_ERR_FORMAT, "json member: %s (line %d)", je.text, je.line);
  }
  json_t *cap = json_is_object(root) ? json_object_get(root, "caption") : NULL;
  json_t *url = json_is_object(root) ? json_object_get(root, "url") : NULL;
  int ret = 0;
  if (url && json_is_string(url) && !(s->url = strdup(json_string_value(url)))) ret = -1;
  if (!ret && !r->has_txt) {
    if (!cap || !json_is_string(cap)) {
      ret = set_bad(s, CLIPCL_ERR_FORMAT, "json member has no string \"caption\" and there is no .txt");
    } else {
      size_t n = json_string_length(cap);
      if (!(s->caption = malloc(n + 1))) {
        ret = -1;
      } else {
        memcpy(s->caption, json_string_value(cap), n);
        s->caption[n] = 0;
        s->caption_len = n;
      }
    }
  }
  json_decref(root);
  return ret;
}

/* Lower-cases an ASCII suffix into buf (cut to the buffer). */
static void lower_suffix(const char *src, char *buf, size_t cap) {
  size_t i = 0;
  for (; src[i] && i + 1 < cap; i++) {
    char c = src[i];
    buf[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
  }
  buf[i] = 0;
}

/* Adds the pending member to the current sample. 0 ok, 1 the shard is
 * damaged (cur marked bad), -1 out of memory. */
static int take_member(cc_tar_reader *r) {
  const char *name = r->pending_name;
  size_t key_len = 0;
  const char *suffix_raw = "";
  split_name(name, &key_len, &suffix_raw);
  char suffix[64];
  int long_suffix = strlen(suffix_raw) >= sizeof suffix;
  lower_suffix(suffix_raw, suffix, sizeof suffix);
  if (!r->active) {
    r->active = 1;
    r->cur.key = strndup(name, key_len);
    if (!r->cur.key) return -1;
  }
  if (r->nsuffixes == r->suffixes_cap) {
    int cap = r->suffixes_cap ? r->suffixes_cap * 2 : 8;
    char **v = realloc(r->suffixes, (size_t)cap * sizeof *v);
    if (!v) return -1;
    r->suffixes = v;
    r->suffixes_cap = cap;
  }
  if (!(r->suffixes[r->nsuffixes] = strdup(suffix))) return -1;
  r->nsuffixes++;

  int rank = N_IMAGE_SUFFIX, is_txt = 0, is_json = 0;
  if (!long_suffix) {
    for (int i = 0; i < N_IMAGE_SUFFIX; i++)
      if (strcmp(suffix, image_suffix[i]) == 0) rank = i;
    is_txt = strcmp(suffix, "txt") == 0;
    is_json = strcmp(suffix, "json") == 0;
  }
  int64_t size = r->pending_size;
  int want = (rank < r->image_rank && rank != WEBP_RANK) || (is_txt && !r->has_txt) || (is_json && !r->json);
  if (rank == WEBP_RANK && r->image_rank == N_IMAGE_SUFFIX) r->image_rank = WEBP_RANK; /* noted, not read */
  if (want && !r->cur.bad) {
    size_t limit = rank < N_IMAGE_SUFFIX ? CC_DATA_MAX_MEMBER : CC_DATA_MAX_CAPTION;
    if (size < 0 || (uint64_t)size > limit) {
      if (set_bad(&r->cur, CLIPCL_ERR_FORMAT, "member '%s' is %lld bytes, over the limit of %zu", name,
                  (long long)size, limit))
        return -1;
    } else {
      uint8_t *data;
      size_t len;
      char err[512];
      int k = read_member(r, size, &data, &len, err, sizeof err);
      if (k < 0) return -1;
      if (k > 0) {
        if (set_bad(&r->cur, CLIPCL_ERR_FORMAT, "shard damaged or cut while reading member '%s': %s", name, err))
          return -1;
        return 1;
      }
      if (rank < N_IMAGE_SUFFIX) {
        free(r->cur.image);
        r->cur.image = data;
        r->cur.image_len = len;
        snprintf(r->cur.image_ext, sizeof r->cur.image_ext, "%s", image_suffix[rank]);
        r->image_rank = rank;
      } else if (is_txt) {
        free(r->cur.caption);
        r->cur.caption = realloc(data, len + 1); /* room for the NUL */
        if (!r->cur.caption) {
          free(data);
          return -1;
        }
        r->cur.caption[len] = 0;
        r->cur.caption_len = len;
        r->has_txt = 1;
      } else {
        r->json = (char *)data;
        r->json_len = len;
      }
    }
  }
  free(r->last_member);
  r->last_member = r->pending_name;
  r->pending_name = NULL;
  r->have_pending = 0;
  return 0;
}

/* The pending member belongs to a new sample when its key differs or its
 * suffix was already seen in this one. */
static int starts_new_sample(cc_tar_reader *r) {
  if (!r->active) return 0;
  size_t key_len = 0;
  const char *suffix_raw = "";
  split_name(r->pending_name, &key_len, &suffix_raw);
  if (strlen(r->cur.key) != key_len || strncmp(r->cur.key, r->pending_name, key_len) != 0) return 1;
  char suffix[64];
  lower_suffix(suffix_raw, suffix, sizeof suffix);
  for (int i = 0; i < r->nsuffixes; i++)
    if (strcmp(r->suffixes[i], suffix) == 0) return 1;
  return 0;
}

/* Hands the assembled sample to the caller and starts afresh. */
static int emit(cc_tar_reader *r, cc_tar_sample *out) {
  if (finish_sample(r) < 0) return -1;
  *out = r->cur;
  memset(&r->cur, 0, sizeof r->cur);
  reset_sample(r);
  return 1;
}

/* The shard failed before or between samples: one bad sample naming it. */
static int emit_shard_error(cc_tar_reader *r, cc_tar_sample *out, const char *what) {
  r->done = 1;
  if (r->active) {
    if (set_bad(&r->cur, CLIPCL_ERR_FORMAT, "shard damaged or cut after member '%s': %s",
                r->last_member ? r->last_member : "(none)", what))
      return -1;
    return emit(r, out);
  }
  memset(out, 0, sizeof *out);
  if (!(out->key = strdup(""))) return -1;
  out->bad_status = r->opened ? CLIPCL_ERR_FORMAT : CLIPCL_ERR_IO;
  char buf[1024];
  if (r->last_member)
    snprintf(buf, sizeof buf, "shard damaged or cut after member '%s': %s", r->last_member, what);
  else
    snprintf(buf, sizeof buf, "%s", what);
  if (!(out->bad = strdup(buf))) return -1;
  return 1;
}

/* libarchive accepts a tar that stops at a block boundary without its
 * end-of-archive blocks (some writers omit them), which is exactly what a
 * shard cut between two members looks like. Shard writers (Python tarfile,
 * GNU tar, libarchive) always write them, so an uncompressed shard whose
 * last block is not all zeros is taken as cut. In a compressed shard a cut
 * shows up as a decompression error instead. */
static int has_end_marker(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  unsigned char b[512];
  int ok = fseeko(f, -(off_t)sizeof b, SEEK_END) == 0 && fread(b, 1, sizeof b, f) == sizeof b;
  fclose(f);
  for (size_t i = 0; ok && i < sizeof b; i++)
    if (b[i]) ok = 0;
  return ok;
}

int cc_tar_next(cc_tar_reader *r, cc_tar_sample *out) {
  memset(out, 0, sizeof *out);
  if (r->done) return 0;
  if (!r->a) {
    r->a = archive_read_new();
    if (!r->a) return -1;
    /* the compressions Python's tarfile reads (webdataset's "r|*"), all in
     * libarchive itself; not filter_all, which would also run external
     * programs (lrzip, lzop, grzip) on a shard that asks for them */
    archive_read_support_filter_gzip(r->a);
    archive_read_support_filter_bzip2(r->a);
    archive_read_support_filter_xz(r->a);
    archive_read_support_filter_zstd(r->a);
    archive_read_support_format_tar(r->a);
    if (archive_read_open_filename(r->a, r->shard, 1 << 16) != ARCHIVE_OK) {
      char what[700];
      snprintf(what, sizeof what, "cannot open shard: %s",
               archive_error_string(r->a) ? archive_error_string(r->a) : strerror(errno));
      return emit_shard_error(r, out, what);
    }
    r->opened = 1;
  }
  for (;;) {
    if (r->have_pending) {
      if (starts_new_sample(r)) return emit(r, out);
      int k = take_member(r);
      if (k < 0) return -1;
      if (k > 0) {
        r->done = 1;
        return emit(r, out);
      }
      continue;
    }
    struct archive_entry *e;
    int rc = archive_read_next_header(r->a, &e);
    if (rc == ARCHIVE_EOF) {
      r->done = 1;
      if (archive_filter_code(r->a, 0) == ARCHIVE_FILTER_NONE && !has_end_marker(r->shard))
        return emit_shard_error(r, out, "no end-of-archive blocks: the shard was cut");
      if (r->active) return emit(r, out);
      return 0;
    }
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
      char what[700];
      snprintf(what, sizeof what, "%s", archive_error_string(r->a) ? archive_error_string(r->a) : "read error");
      return emit_shard_error(r, out, what);
    }
    if (archive_entry_filetype(e) != AE_IFREG) continue;
    const char *name = archive_entry_pathname(e);
    if (!name) name = archive_entry_pathname_utf8(e);
    if (!name) continue;
    while (name[0] == '.' && name[1] == '/') name += 2;
    size_t key_len;
    const char *suffix;
    if (is_meta(name) || !split_name(name, &key_len, &suffix)) continue;
    free(r->pending_name);
    if (!(r->pending_name = strdup(name))) return -1;
    r->pending_size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
    r->have_pending = 1;
  }
}

/* ---- data set ------------------------------------------------------------ */

static const char *base_name(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

/* open_clip's get_dataset_size: sizes.json ({shard base name: count}) or a
 * __len__ file holding the total, in the first shard's directory. */
static int64_t find_size(char **shards, int n) {
  const char *first = shards[0];
  const char *slash = strrchr(first, '/');
  char *dir = slash ? strndup(first, (size_t)(slash - first) + (slash == first)) : strdup(".");
  if (!dir) return -1;
  char *sizes = cc_path_join(dir, "sizes.json"), *lenf = cc_path_join(dir, "__len__");
  free(dir);
  int64_t total = -1;
  struct stat st;
  if (sizes && stat(sizes, &st) == 0) {
    json_error_t je;
    json_t *root = json_load_file(sizes, 0, &je);
    if (root && json_is_object(root)) {
      total = 0;
      for (int i = 0; i < n && total >= 0; i++) {
        json_t *v = json_object_get(root, base_name(shards[i]));
        long long x = -1;
        if (v && json_is_integer(v)) x = json_integer_value(v);
        else if (v && json_is_string(v)) x = strtoll(json_string_value(v), NULL, 10);
        if (x < 0 || total > INT64_MAX - x) total = -1;
        else total += x;
      }
    }
    json_decref(root);
  } else if (lenf && stat(lenf, &st) == 0) {
    FILE *f = fopen(lenf, "rb");
    char buf[64] = {0};
    if (f) {
      size_t k = fread(buf, 1, sizeof buf - 1, f);
      buf[k] = 0;
      fclose(f);
      char *end;
      long long x = strtoll(buf, &end, 10);
      while (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t') end++;
      if (end != buf && *end == 0 && x >= 0) total = x;
    }
  }
  free(sizes);
  free(lenf);
  return total;
}

clipcl_status cc_tar_open(clipcl_dataset *ds, const char *spec) {
  ds->has_captions = 1;
  ds->has_labels = 0;
  CC_TRY(cc_brace_expand(spec, &ds->shards, &ds->nshards));
  if (ds->nshards == 0) return cc_fail(CLIPCL_ERR_ARG, "%s: no shards", spec);
  int present = 0;
  struct stat st;
  for (int i = 0; i < ds->nshards; i++)
    if (stat(ds->shards[i], &st) == 0 && !S_ISDIR(st.st_mode)) present++;
  if (present == 0)
    return cc_fail(CLIPCL_ERR_IO, "%s: none of its %d shard(s) exists (first: %s)", spec, ds->nshards, ds->shards[0]);
  ds->size = find_size(ds->shards, ds->nshards);
  return CLIPCL_OK;
}

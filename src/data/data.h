/* data.h: internal interface of src/data/: the data set object shared by the
 * three sources (CSV/TSV manifests, WebDataset tar shards, image folders),
 * brace expansion of shard specs, the streaming tar reader, and small string
 * helpers. The public entry points (clipcl_dataset_*, clipcl_loader_*) are in
 * include/clipcl.h. Not here: image decoding (src/image/), tokenising
 * (src/text/), the threads and the epoch order (loader.c).
 *
 * Map-style sources (CSV, folders) keep every row in memory: the strings of a
 * row live in one growing arena and rows hold offsets into it, so a manifest
 * of millions of rows costs two allocations, not millions.
 */
#ifndef CC_DATA_H
#define CC_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "clipcl.h"

/* Captions and json members above this size are refused: no real caption is
 * a megabyte, and a forged size must not make us allocate gigabytes. */
#define CC_DATA_MAX_CAPTION ((size_t)1 << 20)
/* Image members of a tar shard above this size are refused before reading. */
#define CC_DATA_MAX_MEMBER ((size_t)256 << 20)
/* Brace expansion and folder scans stop with an error beyond this count. */
#define CC_DATA_MAX_NAMES 1000000
/* Largest integer label a manifest row may carry: ten million classes is far
 * beyond any real data set, and the label count sizes classifiers. */
#define CC_DATA_MAX_LABEL 9999999
/* Depth of sub-directories followed inside one class folder. */
#define CC_DATA_MAX_DEPTH 32

/* Why a row of a manifest cannot be used, found while parsing (the loader
 * reports it when the row comes up, like any other bad sample). */
typedef enum {
  CC_ROW_OK = 0,
  CC_ROW_SHORT,     /* fewer fields than the columns we need */
  CC_ROW_LONG,      /* more fields than the header */
  CC_ROW_FIELD_BIG, /* a field over CC_DATA_MAX_CAPTION bytes */
  CC_ROW_NO_PATH,   /* empty image path */
  CC_ROW_LABEL      /* label is not an integer in 0..CC_DATA_MAX_LABEL */
} cc_row_flaw;

typedef struct {
  uint64_t path;     /* arena offset of the NUL-terminated image path */
  uint64_t caption;  /* arena offset of the caption (NUL-terminated too) */
  uint32_t caption_len; /* bytes, which may include NULs from the file */
  int32_t label;     /* -1 when the source has no labels */
  uint64_t line;     /* CSV: physical line where the record starts */
  uint8_t flaw;      /* cc_row_flaw */
  uint8_t nfields;   /* for the messages of CC_ROW_SHORT/LONG, saturated */
} cc_row;

struct clipcl_dataset {
  clipcl_data_kind kind;
  char *spec;        /* as given */
  int has_captions, has_labels;
  int64_t size;      /* samples, -1 unknown */

  /* CSV and folders */
  char *base_dir;    /* CSV: manifest directory for relative paths ("" none) */
  char *arena;
  size_t arena_len, arena_cap;
  cc_row *rows;
  size_t nrows, rows_cap;
  int num_labels;    /* CSV labels: max + 1 */

  /* folders */
  char **classes;
  int nclasses;

  /* tar */
  char **shards;
  int nshards;
};

/* ---- sources ------------------------------------------------------------ */
clipcl_status cc_csv_open(clipcl_dataset *ds, const char *path, const clipcl_dataset_options *o);
clipcl_status cc_folder_open(clipcl_dataset *ds, const char *dir);
clipcl_status cc_tar_open(clipcl_dataset *ds, const char *spec);

/* Every record of a CSV/TSV file (header first, record 0) with all its
 * fields, parsed as cc_csv_open parses manifests (quoting, BOM, line ends,
 * blank lines skipped). nfields is -1 for a record with a field over
 * CC_DATA_MAX_CAPTION bytes or a NUL byte in a field. Stops at the first
 * status fn returns other than CLIPCL_OK and returns it. */
typedef clipcl_status (*cc_csv_record_fn)(void *ctx, uint64_t record, uint64_t line, int nfields,
                                          char *const *fields);
clipcl_status cc_csv_each(const char *path, char sep, cc_csv_record_fn fn, void *ctx);

/* Appends n bytes and a NUL to the arena; *off receives their offset. */
clipcl_status cc_arena_put(clipcl_dataset *ds, const char *s, size_t n, uint64_t *off);
/* Appends a row (copied). */
clipcl_status cc_rows_push(clipcl_dataset *ds, const cc_row *r);

/* Resolves a row's image path against the manifest directory into a fresh
 * string (absolute paths kept as they are); NULL when out of memory. */
char *cc_row_path(const clipcl_dataset *ds, const cc_row *r);
/* One-line description of a row's flaw (into buf). */
const char *cc_row_flaw_text(const clipcl_dataset *ds, const cc_row *r, char *buf, size_t cap);
/* "manifest.csv:17 (row 16)" or the folder image path (into buf). */
const char *cc_row_source(const clipcl_dataset *ds, size_t row, char *buf, size_t cap);

/* ---- brace expansion (brace.c) ------------------------------------------
 * Python braceexpand's rules, as webdataset/open_clip apply them to each
 * "::"-separated part: {a,b} alternatives (nested), {0..9} and {000..127}
 * integer ranges (zero padding kept: width of the longer end when either end
 * has a leading zero), {a..e} letter ranges, an optional ..step, \ escapes a
 * brace or comma; a brace with neither comma nor range stays literal.
 * Refuses more than CC_DATA_MAX_NAMES names, more than 64 MiB of them,
 * braces nested over 64 deep or over 1024 groups in one part.
 * *names is ONE malloc'd block holding the *n pointers and the names they
 * point to: release it with a single free(). */
clipcl_status cc_brace_expand(const char *spec, char ***names, int *n);
/* Lowers the name cap for the process (the fuzz target does, so that each
 * input stays fast); n <= 0 restores CC_DATA_MAX_NAMES. */
void cc_brace_set_max_names(int n);
/* Frees an array of n malloc'd names (folder scans). */
void cc_names_free(char **names, int n);

/* ---- streaming tar reader (source_tar.c) ---------------------------------
 * Reads one shard member by member, grouping consecutive members that share
 * a key (the member name up to the first dot of its base name) into samples,
 * as webdataset's group_by_keys does. Only the members a sample needs (image,
 * txt, json) are read into memory, one sample at a time. */
typedef struct {
  char *key;
  uint8_t *image;         /* file bytes of the image member, or NULL */
  size_t image_len;
  char image_ext[8];      /* "jpg", "png", ... */
  char *caption;          /* from txt, else json "caption"; NUL-terminated */
  size_t caption_len;
  char *url;              /* the json member's "url" string, or NULL */
  char *bad;              /* reason the sample cannot be used, or NULL */
  clipcl_status bad_status;
} cc_tar_sample;

typedef struct cc_tar_reader cc_tar_reader;

/* Never fails for a bad file: an unreadable shard shows up as one bad sample
 * from cc_tar_next. Fails only when out of memory. */
clipcl_status cc_tar_reader_open(const char *shard, cc_tar_reader **out);
/* 1: *s holds a sample (good or bad), 0: the shard is done. Negative:
 * out of memory. After a damaged member the shard ends with that sample
 * marked bad; the samples before it were complete. */
int cc_tar_next(cc_tar_reader *r, cc_tar_sample *s);
void cc_tar_reader_free(cc_tar_reader *r);
void cc_tar_sample_clear(cc_tar_sample *s);

/* ---- helpers -------------------------------------------------------------- */
/* Strict UTF-8 as Python decodes it: no overlongs, surrogates or values
 * above U+10FFFF. Returns 1 when valid. */
int cc_utf8_valid(const char *s, size_t n);
/* 1 when s has nothing but white space (ASCII and Unicode spaces). */
int cc_blank(const char *s, size_t n);
/* Ends with suffix, ASCII case-insensitive. */
int cc_ends_with_ci(const char *s, const char *suffix);
/* dir + "/" + name in a fresh string (NULL: out of memory). */
char *cc_path_join(const char *dir, const char *name);
/* Seed stream for (seed, purpose, epoch, index): splitmix64 finalisers
 * chained, so nearby inputs give unrelated outputs. */
uint64_t cc_data_seed(uint64_t seed, uint64_t purpose, uint64_t epoch, uint64_t index);

#endif

/* clipcl.h: the public C API of libclipcl.
 *
 * Conventions: every function returns a clipcl_status (0 success, negative
 * errors) and leaves a one-line message for clipcl_last_error(); objects are
 * opaque handles, each _open/_create/_load paired with a _free; the caller
 * owns output buffers. The library never prints and never calls exit().
 */
#ifndef CLIPCL_H
#define CLIPCL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  CLIPCL_OK = 0,
  CLIPCL_ERR_ARG = -1,         /* bad argument or usage */
  CLIPCL_ERR_NOMEM = -2,       /* host or device allocation failed */
  CLIPCL_ERR_IO = -3,          /* file could not be read or written */
  CLIPCL_ERR_FORMAT = -4,      /* file content is malformed */
  CLIPCL_ERR_OPENCL = -5,      /* an OpenCL call failed */
  CLIPCL_ERR_BUILD = -6,       /* a kernel failed to compile */
  CLIPCL_ERR_UNSUPPORTED = -7, /* valid but not supported here */
  CLIPCL_ERR_NUMERIC = -8      /* NaN/Inf or another numeric failure */
} clipcl_status;

/* Message describing the last error on this thread ("" if none). */
const char *clipcl_last_error(void);
const char *clipcl_status_name(clipcl_status s);
const char *clipcl_version(void);

/* ---- devices ------------------------------------------------------------ */
typedef struct clipcl_device clipcl_device;

typedef struct {
  int index;                /* global index over all platforms */
  int platform_index, device_index;
  char name[256], vendor[256], platform[256];
  char version[128];        /* device OpenCL version string */
  char driver[128];         /* driver version string */
  int compute_units;
  uint64_t global_mem, max_alloc, local_mem;
  size_t max_work_group;
  int fp16, fp64;           /* extensions present */
  int is_cpu, is_gpu;
} clipcl_device_info;

/* Number of OpenCL devices over all platforms (0 if no platform). */
clipcl_status clipcl_device_count(int *count);
clipcl_status clipcl_device_query(int index, clipcl_device_info *info);

/* Opens a device: spec is a global index ("1"), "platform:device" ("0:1"),
 * or a case-insensitive substring of the device name. NULL or "" uses the
 * environment variable CLIPCL_DEVICE, else the first GPU, else device 0. */
clipcl_status clipcl_device_open(const char *spec, clipcl_device **out);
void clipcl_device_free(clipcl_device *dev);
clipcl_status clipcl_device_get_info(const clipcl_device *dev, clipcl_device_info *info);

/* Compiles every kernel program for the device (warms the binary cache). */
clipcl_status clipcl_device_build_all(clipcl_device *dev);

/* Writes per-kernel time totals (only when CLIPCL_PROFILE=1 was set at open). */
void clipcl_device_profile_report(clipcl_device *dev, FILE *out);

/* ---- model configuration (src/model/config.c) ----------------------------
 * open_clip's JSON form: {"embed_dim", "quick_gelu", "vision_cfg": {image_size,
 * layers, width, patch_size, head_width, mlp_ratio}, "text_cfg":
 * {context_length, vocab_size, width, heads, layers}}. ViT towers only. */
typedef struct {
  int image_size, layers, width, patch_size, head_width;
  float mlp_ratio;
} clipcl_vision_cfg;
typedef struct {
  int context_length, vocab_size, width, heads, layers;
  float mlp_ratio;
} clipcl_text_cfg;
typedef struct {
  char name[64]; /* built-in name or file stem, informational */
  int embed_dim;
  int quick_gelu;
  clipcl_vision_cfg vision;
  clipcl_text_cfg text;
} clipcl_config;

/* A built-in name (see clipcl_config_names) or the path of a JSON file. */
clipcl_status clipcl_config_get(const char *name_or_path, clipcl_config *out);
/* Parses open_clip JSON; `source` names it in errors. */
clipcl_status clipcl_config_parse(const char *json, const char *source, clipcl_config *out);
/* open_clip JSON (malloc'd, caller frees), NULL if out of memory. */
char *clipcl_config_to_json(const clipcl_config *c);
/* NULL-terminated list of built-in config names. */
const char *const *clipcl_config_names(void);
/* Parameter count of the model the config describes. */
uint64_t clipcl_config_num_params(const clipcl_config *c);
/* Checks the values are usable (positive sizes, width divisible by heads,
 * image divisible by patch ...). */
clipcl_status clipcl_config_validate(const clipcl_config *c, const char *source);

/* ---- tokenizer (src/text/) ------------------------------------------------
 * CLIP's byte-level BPE, ids identical to open_clip 2.20's
 * get_tokenizer('ViT-B-32'): text cleaning as ftfy.fix_text (without its
 * heuristic mojibake repair) + html.unescape twice + white-space collapse +
 * lower-casing, open_clip's split regex, BPE. SOT 49406, EOT 49407, padding 0
 * with the built-in vocabulary. A tokenizer may be used by several threads
 * at once. */
typedef struct clipcl_tokenizer clipcl_tokenizer;

/* The built-in vocabulary (bpe_simple_vocab_16e6, 49,408 tokens). */
clipcl_status clipcl_tokenizer_create(clipcl_tokenizer **out);
/* Another vocabulary in the same format, gzip-compressed or plain text: a
 * header line, then merge lines "a b" (at most 48,894 are read). */
clipcl_status clipcl_tokenizer_load(const char *path, clipcl_tokenizer **out);
void clipcl_tokenizer_free(clipcl_tokenizer *t);

/* Writes ids[context_length]: SOT, the text's tokens, EOT, zero padding. A
 * longer sequence is cut to context_length with its last id set to EOT.
 * *n_tokens (may be NULL) receives the length before the cut, SOT and EOT
 * included. Invalid UTF-8 is refused with CLIPCL_ERR_FORMAT. */
clipcl_status clipcl_tokenize(clipcl_tokenizer *t, const char *text, int context_length, int32_t *ids,
                              int *n_tokens);

/* "clip-bpe-<vocab size>-<crc32 of the merge lines used>", for model metadata */
const char *clipcl_tokenizer_identity(const clipcl_tokenizer *t);
int clipcl_tokenizer_vocab_size(const clipcl_tokenizer *t);
int32_t clipcl_tokenizer_sot(const clipcl_tokenizer *t);
int32_t clipcl_tokenizer_eot(const clipcl_tokenizer *t);

/* Decodes n ids to UTF-8 text as open_clip's decode() does ("</w>" becomes a
 * space, broken UTF-8 becomes U+FFFD). With CLIPCL_DETOK_TEXT_ONLY a leading
 * SOT, everything from the first EOT on and the final space are dropped.
 * Writes the text and a NUL into out[cap]; *len (may be NULL) gets the text
 * length. out = NULL with cap = 0 only measures; a short buffer is
 * CLIPCL_ERR_ARG. Ids outside the vocabulary are CLIPCL_ERR_ARG. */
#define CLIPCL_DETOK_TEXT_ONLY 1
clipcl_status clipcl_detokenize(const clipcl_tokenizer *t, const int32_t *ids, int n, int flags, char *out,
                                size_t cap, size_t *len);
/* ---- end tokenizer ------------------------------------------------------- */

/* ==== images (src/image/) ================================================ */
/* Decoding to 8-bit RGB as PIL's Image.open(f).convert("RGB") does, and CLIP
 * preprocessing as open_clip/torchvision do on that RGB image. Formats: PNG
 * (every colour type and bit depth, interlaced; alpha and tRNS dropped, not
 * composited; 16-bit samples scaled by round(v*255/65535), where PIL would
 * truncate or clip) and JPEG (baseline, progressive, greyscale, RGB, CMYK and
 * YCCK, 4-channel files read as Adobe-inverted CMYK as PIL does), detected by
 * their magic bytes. Corrupt, truncated or oversized (> 2^28 pixels) input
 * fails with CLIPCL_ERR_FORMAT and a message naming the file. */
typedef struct {
  int w, h;      /* pixels */
  uint8_t *rgb;  /* h rows of w RGB triplets, no padding; owned by the image */
} clipcl_image;

/* Reads and decodes a file; on failure *img is left empty ({0, 0, NULL}). */
clipcl_status clipcl_image_load(const char *path, clipcl_image *img);
/* Decodes a whole file held in memory (a tar member, say); name is used in
 * messages only (NULL: "<memory>"). */
clipcl_status clipcl_image_decode(const void *data, size_t len, const char *name, clipcl_image *img);
/* Frees the pixels and empties *img; safe on an empty or freed image. */
void clipcl_image_free(clipcl_image *img);
/* Writes 8-bit RGB PNG, via a temporary file renamed over path when whole. */
clipcl_status clipcl_image_save_png(const char *path, const clipcl_image *img);

/* Eval preprocessing into chw (3*size*size floats): Resize(size, BICUBIC) of
 * the shorter side, CenterCrop(size), /255, Normalize with the OpenAI CLIP
 * mean and std; bit-identical to open_clip's transform on an RGB image. */
clipcl_status clipcl_image_preprocess(const clipcl_image *img, int size, float *chw);
/* Crops the box (inside the image), resizes it to size x size (BICUBIC) and
 * normalises: torchvision's resized_crop, as RandomResizedCrop applies it. */
clipcl_status clipcl_image_preprocess_box(const clipcl_image *img, int x, int y, int w, int h, int size,
                                          float *chw);
/* Training preprocessing: open_clip's RandomResizedCrop(size, scale=(0.9, 1),
 * ratio=(3/4, 4/3), BICUBIC) with the box drawn from *rng (any 64-bit value;
 * advanced in place), then normalised. Same rng value, same output. */
clipcl_status clipcl_image_random_resized_crop(const clipcl_image *img, int size, uint64_t *rng,
                                               float *chw);

/* One image for clipcl_image_batch: a file path, or (path NULL) an in-memory
 * file of len bytes at data, named name in messages. */
typedef struct {
  const char *path;
  const void *data;
  size_t len;
  const char *name;
} clipcl_image_source;

/* Decodes and preprocesses n images on `threads` host threads (<= 0: one
 * per online CPU) into out (n*3*size*size floats, item i at offset
 * i*3*size*size). seeds NULL: eval preprocessing; otherwise item i gets
 * RandomResizedCrop driven by a copy of seeds[i], so the result does not
 * depend on the thread count. A bad item gets its status in item_status[i]
 * (may be NULL), zeros in its slot, and is counted in *n_failed (may be
 * NULL); the call still returns CLIPCL_OK, and clipcl_last_error() then holds
 * the message of the first bad item. Fails only for bad arguments; helper
 * threads that cannot start just leave more work to the others. */
clipcl_status clipcl_image_batch(const clipcl_image_source *src, int n, int size, const uint64_t *seeds,
                                 int threads, float *out, clipcl_status *item_status, int *n_failed);
/* ==== end of images ====================================================== */

/* ==== data sets and the loader (src/data/) =============================
 * A data set is opened from a spec: a CSV/TSV manifest (open_clip's
 * CsvDataset: image path and caption columns chosen by header name, RFC 4180
 * quoting, UTF-8 BOM, CRLF; image paths relative to the manifest's
 * directory), WebDataset tar shards ("shards/{000000..000127}.tar", several
 * specs joined by "::"; samples grouped by key, image from jpg/jpeg/png,
 * caption from txt or a json member's "caption"), or an image folder (one
 * sub-directory per class, class index = position in the sorted names, as
 * torchvision's ImageFolder). A loader turns it into batches on worker
 * threads, deterministically: the bytes of every batch depend only on the
 * data, the options and (seed, epoch), never on the thread count or timing.
 * Bad samples (missing file, corrupt image, empty or non-UTF-8 caption,
 * damaged tar member) are skipped, counted and reported through a callback.
 * The data set must outlive its loaders. */
typedef enum {
  CLIPCL_DATA_AUTO = 0,   /* by spec: "::", "{" or .tar/.tgz/.tar.gz -> tar;
                             .csv/.tsv -> CSV; a directory -> folder */
  CLIPCL_DATA_CSV = 1,
  CLIPCL_DATA_TAR = 2,
  CLIPCL_DATA_FOLDER = 3
} clipcl_data_kind;

typedef struct {
  clipcl_data_kind kind;   /* AUTO unless the name does not tell */
  const char *img_key;     /* CSV image path column; NULL: "filepath" */
  const char *caption_key; /* CSV caption column; NULL: "title" */
  const char *label_key;   /* CSV: NULL for captions; a column name (e.g.
                              "label") to read integer labels instead */
  const char *separator;   /* CSV: one byte; NULL or "": tab for .tsv,
                              comma otherwise */
} clipcl_dataset_options;

typedef struct clipcl_dataset clipcl_dataset;

/* Defaults (all NULL / AUTO); a zeroed struct means the same. */
void clipcl_dataset_options_init(clipcl_dataset_options *o);
/* opt may be NULL. A malformed manifest header, a missing key column, an
 * unterminated quoted field, a folder without classes or with an empty
 * class, or tar specs none of whose shards exist fail here. Rows with other
 * problems are kept and reported by the loader when they come up. */
clipcl_status clipcl_dataset_open(const char *spec, const clipcl_dataset_options *opt,
                                  clipcl_dataset **out);
void clipcl_dataset_free(clipcl_dataset *ds);
clipcl_data_kind clipcl_dataset_kind(const clipcl_dataset *ds);
/* Samples including bad rows; tar: from sizes.json or __len__ next to the
 * first shard (as open_clip), else -1 (unknown). */
int64_t clipcl_dataset_size(const clipcl_dataset *ds);
int clipcl_dataset_num_shards(const clipcl_dataset *ds); /* 0 unless tar */
int clipcl_dataset_has_captions(const clipcl_dataset *ds);
int clipcl_dataset_has_labels(const clipcl_dataset *ds);
/* Folders: number of classes; label CSVs: largest label + 1; else 0. */
int clipcl_dataset_num_classes(const clipcl_dataset *ds);
/* Folders: the class (directory) name; NULL otherwise or out of range. */
const char *clipcl_dataset_class_name(const clipcl_dataset *ds, int i);
/* CSV and folders, by row (see clipcl_batch.rows): the caption as stored
 * (NULL without captions) and the image path as the loader opens it (into
 * buf). NULL for tar data sets or a row out of range. */
const char *clipcl_dataset_caption(const clipcl_dataset *ds, int64_t row);
const char *clipcl_dataset_image_path(const clipcl_dataset *ds, int64_t row, char *buf, size_t cap);

/* A sample the loader skipped: source is "manifest.csv:17 (row 16)" (file
 * line where the record starts, then the data row counted from 1), "dir/
 * class/file.png" or "shard.tar: key 000123"; reason is one line. */
typedef struct {
  const char *source;
  const char *reason;
  clipcl_status status;
  int64_t epoch, index;    /* where in the epoch order it was met */
} clipcl_bad_sample;
/* Called on the thread that calls clipcl_loader_next, in sample order. */
typedef void (*clipcl_bad_sample_fn)(void *user, const clipcl_bad_sample *bad);

typedef struct {
  int batch_size;             /* B, required */
  int image_size;             /* S, required */
  int context_length;         /* default 77 */
  clipcl_tokenizer *tokenizer;/* NULL: captions are checked, not tokenised;
                                 must outlive the loader */
  int workers;                /* decode threads; <= 0: one per online CPU */
  uint64_t seed;
  int training;               /* 1 (default): seeded order per epoch, partial
                                 last batch dropped; 0: file order, kept */
  int augment;                /* 1 (default): RandomResizedCrop(scale 0.9..1);
                                 0: resize + centre crop */
  double max_bad_fraction;    /* default 0.01 */
  int min_seen_for_bad;       /* check the fraction once this many samples
                                 (or the whole data set) were seen; default 100 */
  int prefetch_batches;       /* samples decoded ahead, in batches; default 2
                                 (each batch held costs B*3*S*S floats) */
  int shuffle_buffer;         /* tar, training: samples held for shuffling
                                 (their file bytes); default 1000 */
  clipcl_bad_sample_fn on_bad;/* may be NULL */
  void *user;
} clipcl_loader_options;

/* Sets the defaults named above (training with augmentation). */
void clipcl_loader_options_init(clipcl_loader_options *o);

/* Where the loader stands: the next sample to consume is number `index` of
 * epoch `epoch`'s order (bad samples count), plus the running counters.
 * Seeking to a saved position reproduces the following batches exactly. */
typedef struct {
  int64_t epoch, index;
  int64_t samples_seen, bad_samples;
} clipcl_loader_pos;

/* The caller's buffers for one batch; the loader fills them. */
typedef struct {
  float *images;      /* in: B*3*S*S floats, required */
  int32_t *ids;       /* in: B*context_length, or NULL; written only for
                         data sets with captions and a tokenizer */
  int32_t *labels;    /* in: B, or NULL; written for labelled data sets */
  int64_t *rows;      /* in: B, or NULL; CSV/folder row, -1 for tar */
  int n;              /* out: samples written; 0 marks the end of an epoch */
  int64_t epoch;      /* out: the epoch they came from */
} clipcl_batch;

/* A loader runs its own threads but is driven from one thread: call next,
 * get_pos, seek, counters and free from one thread at a time. */
typedef struct clipcl_loader clipcl_loader;

clipcl_status clipcl_loader_create(clipcl_dataset *ds, const clipcl_loader_options *opt,
                                   clipcl_loader **out);
/* Fills the next batch: B samples (training), or up to B (evaluation, where
 * the last batch of an epoch may be short). After an epoch's last batch one
 * call returns n = 0 and moves to the next epoch. Fails when the bad
 * samples exceed max_bad_fraction, when a training epoch cannot fill one
 * batch, or on a fatal error; the failure repeats until a seek. */
clipcl_status clipcl_loader_next(clipcl_loader *l, clipcl_batch *b);
clipcl_status clipcl_loader_get_pos(const clipcl_loader *l, clipcl_loader_pos *pos);
/* Restores a position (also the counters). Tar streams re-read the epoch's
 * shards up to the position, without decoding images. */
clipcl_status clipcl_loader_seek(clipcl_loader *l, const clipcl_loader_pos *pos);
void clipcl_loader_counters(const clipcl_loader *l, int64_t *samples_seen, int64_t *bad_samples);
void clipcl_loader_free(clipcl_loader *l);
/* ==== end of data sets and the loader ==================================== */

#ifdef __cplusplus
}
#endif
#endif

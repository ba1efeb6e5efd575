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

/* Notices: one-line messages about slow one-time work the library starts on
 * its own, such as tuning GEMM for a device it has not seen before. The
 * library never prints; a program that wants them installs a handler (the
 * clipcl command prints them to stderr). Process-wide; NULL removes it. Set
 * it before opening devices. */
typedef void (*clipcl_notice_fn)(const char *message, void *user);
void clipcl_set_notice_handler(clipcl_notice_fn fn, void *user);

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
  int vector_width;         /* float vector width the kernels are built for:
                               16 (AVX-512), 8 (AVX2), 4; CLIPCL_VW overrides */
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

/* Called just before a kernel program is compiled from source, which happens
 * only when the on-disk binary cache has no copy (the first run on a device,
 * or after an upgrade): file is the kernel file ("gemm.cl"), cache_dir where
 * the binary will be kept (NULL when caching is off). A command uses it to
 * say once why the first run pauses. fn NULL removes it. */
typedef void (*clipcl_build_fn)(void *user, const char *file, const char *cache_dir);
void clipcl_device_set_build_callback(clipcl_device *dev, clipcl_build_fn fn, void *user);

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
  /* open_clip's "init_logit_scale" (0: the default ln(1/0.07)) and
   * "init_logit_bias": logit_bias = 1 gives the model a learnt scalar
   * logit_bias (SigLIP), initialised to init_logit_bias */
  float init_logit_scale;
  int logit_bias;
  float init_logit_bias;
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

/* ---- models (src/model/) --------------------------------------------------
 * A CLIP model on a device: parameters in one flat buffer, open_clip tensor
 * names in files. Embeddings come back L2-normalised, float32, row-major. */
typedef struct clipcl_model clipcl_model;

/* Zero parameters; call clipcl_model_init or load weights. */
clipcl_status clipcl_model_create(clipcl_device *dev, const clipcl_config *cfg, clipcl_model **out);
/* Seeded initialisation as open_clip (OpenAI's initialize_parameters). */
clipcl_status clipcl_model_init(clipcl_model *m, uint64_t seed);
/* Loads safetensors weights with OpenAI/open_clip or HF names (detected).
 * config (NULL: stored in the file, else inferred from shapes) overrides.
 * A file with the text tower only (HF CLIPTextModel[WithProjection], as
 * diffusion pipelines keep their text encoder) needs config; the model then
 * gives text hidden states (and text embeddings when the file has
 * text_projection) and refuses the rest with CLIPCL_ERR_UNSUPPORTED. */
clipcl_status clipcl_model_load(clipcl_device *dev, const char *path, const clipcl_config *config,
                                clipcl_model **out);
/* How the loaded model's config was found: "override", "metadata", "inferred". */
const char *clipcl_model_config_source(const clipcl_model *m);
/* Writes F32 safetensors atomically; hf_names selects HF transformers names. */
clipcl_status clipcl_model_save(clipcl_model *m, const char *path, int hf_names);
void clipcl_model_free(clipcl_model *m);
const clipcl_config *clipcl_model_config(const clipcl_model *m);
uint64_t clipcl_model_num_params(const clipcl_model *m);
/* Identity of the weights (config + parameter hash), e.g. for search indexes. */
clipcl_status clipcl_model_identity(clipcl_model *m, char *out, size_t cap);
/* pixels (n,3,S,S) preprocessed -> emb (n,embed_dim), normalised. */
clipcl_status clipcl_model_encode_images(clipcl_model *m, const float *pixels, int n, float *emb);
/* ids (n,context_length) -> emb (n,embed_dim), normalised. */
clipcl_status clipcl_model_encode_texts(clipcl_model *m, const int32_t *ids, int n, float *emb);

/* The text tower's per-token hidden states, as diffusion models take them for
 * conditioning: ids (n, context_length) -> out (n, context_length,
 * text width), float32, neither pooled, projected nor normalised. skip = the
 * number of final blocks left out before the final LayerNorm (ln_final):
 * CLIPCL_HIDDEN_LAST (0) gives HF CLIPTextModel's last_hidden_state (Stable
 * Diffusion 1.x), CLIPCL_HIDDEN_PENULTIMATE (1) final_layer_norm(
 * hidden_states[-2]) (Stable Diffusion 2.x; "CLIP skip 2"). Ids outside the
 * vocabulary are CLIPCL_ERR_ARG. */
#define CLIPCL_HIDDEN_LAST 0
#define CLIPCL_HIDDEN_PENULTIMATE 1
clipcl_status clipcl_model_text_hidden_states(clipcl_model *m, const int32_t *ids, int n, int skip, float *out);

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

/* ==== evaluation (src/eval/) ============================================= */
/* Zero-shot classification, retrieval metrics, the linear probe, feature
 * caches, all working on embeddings: float32,
 * row-major, one row of `dim` floats per item. The encoders live elsewhere.
 *
 * Scores are dot products computed as one float sum in the order e = 0 ..
 * dim-1 (no fused multiply-add), so a pair scores the same bits in every
 * function and s(a, b) == s(b, a). Pass L2-normalised embeddings
 * (clipcl_l2_normalize) to rank by cosine similarity, as CLIP does; only the
 * zero-shot classifier, the index and its queries are normalised here.
 * Ranking sorts by score, descending, and EQUAL SCORES RANK THE LOWER INDEX
 * FIRST (class, image, caption or index entry). Embeddings holding NaN or
 * infinities are refused with CLIPCL_ERR_NUMERIC. `threads` <= 0 means one
 * per online CPU; no result depends on the thread count. Files are written
 * to a temporary name and renamed when complete. Similarities run on the
 * host (blocked, threaded: about 35 GFLOP/s per core here), not the device. */

/* -- class-name and template lists (text_lists.c) -- */
typedef struct {
  int n;
  char **items; /* n NUL-terminated UTF-8 strings */
} clipcl_text_list;
enum { CLIPCL_LIST_CLASSNAMES = 0, CLIPCL_LIST_TEMPLATES = 1 };

/* Reads a UTF-8 list, one entry per line. A leading BOM and CRLF line ends are
 * accepted and spaces/tabs around an entry dropped; a blank line, invalid
 * UTF-8, a control character, a duplicate, a template without "{}", or a file
 * without entries fails with CLIPCL_ERR_FORMAT and "path:line: what". */
clipcl_status clipcl_text_list_load(const char *path, int kind, clipcl_text_list *out);
/* The same on a buffer; `source` names it in messages (NULL: "<memory>"). */
clipcl_status clipcl_text_list_parse(const char *data, size_t len, const char *source, int kind,
                                     clipcl_text_list *out);
/* "openai": OpenAI's 80 ImageNet templates; "simple": the 7-template subset
 * (open_clip's SIMPLE_IMAGENET_TEMPLATES); anything else is a template file
 * (write "./openai" for a file of that name). */
clipcl_status clipcl_templates_get(const char *name_or_path, clipcl_text_list *out);
void clipcl_text_list_free(clipcl_text_list *l);
/* *out (malloc'd) = tmpl with every "{}" replaced by classname. */
clipcl_status clipcl_template_format(const char *tmpl, const char *classname, char **out);

/* -- scores, zero-shot classification and its reports (zeroshot*.c) -- */
/* L2-normalises n rows in place; a zero or non-finite row is an error. */
clipcl_status clipcl_l2_normalize(float *x, size_t n, int dim);
/* For every query row, the k best keys by score: idx[q*k + r] and
 * score[q*k + r] for rank r (score may be NULL). Needs 1 <= k <= nk. */
clipcl_status clipcl_topk(const float *queries, size_t nq, const float *keys, size_t nk, int dim, int k,
                          int threads, int32_t *idx, float *score);
/* class_emb (classes x dim) from text_emb (classes x templates x dim, the
 * text embeddings of every class formatted with every template): normalise
 * each, average over templates, normalise again (open_clip's zero-shot
 * classifier), in double precision. A zero embedding is an error. */
clipcl_status clipcl_zeroshot_classifier(const float *text_emb, int classes, int templates, int dim,
                                         float *class_emb);

#define CLIPCL_CONFUSION_MAX 4096
typedef struct {
  int64_t n;     /* images */
  int classes;
  int k5;        /* the k of "top5": min(5, classes) */
  double top1, top5;
  double mean_per_class_recall; /* mean of per_class over classes with support > 0 */
  int64_t *support;             /* [classes] images whose true class is c */
  double *per_class;            /* [classes] top-1 recall of class c; NaN when support is 0 */
  int64_t *confusion;           /* [classes*classes] row = true class, column = top-1
                                   prediction; NULL above CLIPCL_CONFUSION_MAX classes */
} clipcl_zeroshot_metrics;

/* Metrics from ranked predictions: topk[i*k + r] is image i's class at rank
 * r (from clipcl_topk with k >= min(5, classes)), labels[i] its true class in
 * [0, classes). */
clipcl_status clipcl_zeroshot_metrics_compute(const int32_t *topk, int k, const int32_t *labels, size_t n,
                                              int classes, clipcl_zeroshot_metrics *out);
void clipcl_zeroshot_metrics_free(clipcl_zeroshot_metrics *m);
/* JSON: {"n", "classes", "top1", "top5", "top5_k", "mean_per_class_recall",
 * "per_class": {name: top-1 recall, or null without images}, "support":
 * {name: images}, "classnames": [names], "confusion_matrix": [[counts]]
 * (row = true class, column = predicted class, both in classnames order),
 * "tie_rule"}. classnames may be NULL (names "0", "1", ...); duplicate
 * names are refused. *out is malloc'd. */
clipcl_status clipcl_zeroshot_json(const clipcl_zeroshot_metrics *m, const char *const *classnames, char **out);
clipcl_status clipcl_zeroshot_write_json(const char *path, const clipcl_zeroshot_metrics *m,
                                         const char *const *classnames);
/* CSV "path,true_label,predicted_label,score" (RFC 4180 quoting), one row per
 * image; labels written as class names (indices when classnames is NULL).
 * pred[i*stride] and score[i*stride] are image i's top-1 class and score, so
 * clipcl_topk's arrays can be passed with stride k. */
clipcl_status clipcl_zeroshot_write_predictions(const char *path, const char *const *paths,
                                                const int32_t *labels, const int32_t *pred,
                                                const float *score, size_t stride, size_t n, int classes,
                                                const char *const *classnames);
/* Confusion matrix as CSV: a header "true\predicted,<names>", then one row
 * per true class: name, counts. */
clipcl_status clipcl_confusion_write_csv(const char *path, const clipcl_zeroshot_metrics *m,
                                         const char *const *classnames);
/* Confusion matrix as a PNG heat map: rows true class, columns predicted,
 * colour = sqrt(count / row total) on a white-to-dark-blue scale (so 1%
 * confusions stay visible), rows without images light grey; cells of
 * max(1, min(32, 640 / classes)) pixels with grid lines when cells are 6
 * pixels or more. */
clipcl_status clipcl_confusion_write_png(const char *path, const clipcl_zeroshot_metrics *m);

/* -- retrieval (retrieval.c), CLIP_benchmark's definitions -- */
/* Image retrieval: each caption queries the images and hits at k when its
 * image ranks in the top k. Text retrieval: each image queries the captions
 * and hits at k when ANY of its captions ranks in the top k. Recall@k is the
 * mean hit rate over queries; the rank of a query is the 1-based position of
 * its first correct item (an item ranks after every higher score and every
 * equal score of a lower index). */
typedef struct {
  int64_t n_images, n_texts;
  double image_recall[3], text_recall[3]; /* at k = 1, 5, 10 */
  double image_mean_rank, text_mean_rank;
  double image_median_rank, text_median_rank; /* mean of the two middle ranks when even */
} clipcl_retrieval_metrics;

/* text_image[t] is the image of caption t; every image needs at least one
 * caption. text_rank (n_texts) and image_rank (n_images) receive the
 * per-query ranks when not NULL. */
clipcl_status clipcl_retrieval_eval(const float *image_emb, size_t n_images, const float *text_emb,
                                    size_t n_texts, int dim, const int32_t *text_image, int threads,
                                    clipcl_retrieval_metrics *out, int64_t *text_rank, int64_t *image_rank);
/* JSON keys image_retrieval_recall@{1,5,10}, text_retrieval_recall@{1,5,10},
 * image_retrieval_mean_rank, text_retrieval_mean_rank, *_median_rank,
 * n_images, n_texts, tie_rule. *out is malloc'd. */
clipcl_status clipcl_retrieval_json(const clipcl_retrieval_metrics *m, char **out);
clipcl_status clipcl_retrieval_write_json(const char *path, const clipcl_retrieval_metrics *m);

/* -- linear probe (probe.c) -- */
/* Multinomial logistic regression on features X (n x dim), labels in
 * [0, classes), minimising
 *   f(W, b) = (1/n) sum_i CE(softmax(W x_i + b), y_i) + (lambda/2) ||W||^2
 * (bias not regularised) with L-BFGS (liblbfgs). scikit-learn's
 * LogisticRegression(C) minimises n * f, so it matches at C = 1/(lambda n). */
typedef struct {
  double lambda_min, lambda_max; /* sweep range, default 1e-6 .. 1e6 */
  int steps;            /* log-spaced grid points, default 96 */
  int coarse_stride;    /* sweep every coarse_stride-th grid point, then
                           refine around the best by halving the stride
                           (default 8; 1 sweeps the whole grid) */
  int max_iter;         /* L-BFGS iterations per fit, default 1000 */
  double epsilon;       /* stop when ||g|| <= epsilon * max(1, ||w||), default 1e-6 */
  double val_fraction;  /* share of each class held out, default 0.2 */
  uint64_t seed;        /* of the train/val split, default 0 */
  int threads;          /* default 0 (one per CPU) */
} clipcl_probe_opts;
void clipcl_probe_defaults(clipcl_probe_opts *o);

typedef struct {
  int dim, classes;
  float *W;          /* [classes*dim] */
  float *b;          /* [classes] */
  double lambda;
  int iterations;
  double objective;  /* f at the solution */
} clipcl_probe_model;

/* One fit at one lambda; init (may be NULL: zeros) warm-starts it. */
clipcl_status clipcl_probe_fit(const float *X, const int32_t *y, size_t n, int dim, int classes, double lambda,
                               const clipcl_probe_opts *o, const clipcl_probe_model *init,
                               clipcl_probe_model *out);
/* pred[i] = argmax_c (W x_i + b)_c (ties: lower class). */
clipcl_status clipcl_probe_predict(const clipcl_probe_model *m, const float *X, size_t n, int threads,
                                   int32_t *pred);
void clipcl_probe_model_free(clipcl_probe_model *m);

/* Seeded split: within each class, a Fisher-Yates shuffle (splitmix64 from
 * seed) and the first round(count * val_fraction) go to validation (none
 * when that would leave the class without training samples). */
clipcl_status clipcl_probe_split(const int32_t *y, size_t n, int classes, double val_fraction, uint64_t seed,
                                 uint8_t *is_val);

typedef struct {
  double lambda, val_top1;
  int iterations;
} clipcl_probe_trial;
typedef struct {
  double lambda;            /* chosen: best validation top-1, ties to the larger */
  double val_top1, test_top1;
  int64_t n_train, n_val, n_test;
  int n_trials;
  clipcl_probe_trial *trials; /* in the order tried */
  clipcl_probe_model model;   /* refit on train + val at lambda */
} clipcl_probe_result;
/* Splits the training set into train/val, sweeps lambda (fits on train,
 * scores val), refits on train + val at the chosen lambda (same lambda: the
 * mean loss keeps its per-sample meaning as n grows) and scores the test set. */
clipcl_status clipcl_probe_run(const float *X_train, const int32_t *y_train, size_t n_train,
                               const float *X_test, const int32_t *y_test, size_t n_test, int dim, int classes,
                               const clipcl_probe_opts *o, clipcl_probe_result *out);
void clipcl_probe_result_free(clipcl_probe_result *r);
/* JSON: {"test_top1", "lambda", "sklearn_C" (= 1/(lambda * (n_train +
 * n_val)), the refit's), "val_top1", "n_train", "n_val", "n_test", "dim",
 * "classes", "objective", "objective_definition", "trials": [{"lambda",
 * "val_top1", "iterations"}]}. n_train counts the training split only. */
clipcl_status clipcl_probe_json(const clipcl_probe_result *r, char **out);
clipcl_status clipcl_probe_write_json(const char *path, const clipcl_probe_result *r);

/* -- feature cache (features.c) -- */
/* <prefix>.npy (n x dim float32), <prefix>.labels.npy (n float32 holding
 * integers, only when labels are given) and <prefix>.json ({"identity",
 * "n", "dim", "labels"}), written last so it only describes whole files.
 * identity names what the features depend on (model and data); a cache with
 * another identity is a miss, not an error. */
clipcl_status clipcl_features_save(const char *prefix, const char *identity, const float *X,
                                   const int32_t *labels, size_t n, int dim);
/* *hit = 0 (and nothing allocated) when the cache is absent or has another
 * identity; else *X (and *labels when requested and stored; else NULL) are
 * malloc'd. Corrupt or inconsistent files are errors. */
clipcl_status clipcl_features_load(const char *prefix, const char *identity, float **X, int32_t **labels,
                                   size_t *n, int *dim, int *hit);

/* ==== end of evaluation ================================================== */

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
  /* Data-parallel slices (training): with shard_count R > 1 this loader
   * reads slice shard_index of R. CSV/folder data: positions of the epoch
   * order are dealt in blocks of shard_block (default batch_size), block k
   * to slice k mod R, so the slices' batches k make up batch k of a loader
   * with batch R x shard_block (while no sample is bad); positions stay
   * those of the shared order. Tar data: shard i of the epoch's seeded
   * shard order goes to slice i mod R (open_clip's split by node). */
  int shard_index, shard_count, shard_block;
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

/* ==== evaluation runs (src/eval/run.c) ===================
 * The glue between a model, a data set and the evaluation math above: encode
 * every image of a data set, run zero-shot classification or retrieval from
 * data set to metrics, and cache features. (Placed after the data set section because it uses its types.)
 * Images get evaluation preprocessing (resize + centre crop) in file order.
 * Nothing here prints; bad samples go to the on_bad callback, skipped and
 * counted. Note that the encoders resize the model's inference workspaces. */
typedef struct {
  int batch;               /* images per encoder call; default 64 */
  int workers;             /* decode threads; <= 0 (default): one per CPU */
  int threads;             /* host threads for ranking; <= 0 (default): one per CPU */
  double max_bad_fraction; /* of the samples; default 0.01 */
  int keep_embeddings;     /* 1: results keep the image (and text) embeddings */
  clipcl_bad_sample_fn on_bad; /* may be NULL */
  void *user;
  /* called after each batch (may be NULL): stage "images" or "texts",
   * items done, total (-1 when unknown) */
  void (*progress)(void *user, const char *stage, int64_t done, int64_t total);
} clipcl_eval_options;
void clipcl_eval_options_init(clipcl_eval_options *o);

/* The embeddings of a data set's images, in file order, bad samples left out. */
typedef struct {
  size_t n;
  int dim;
  float *emb;       /* n x dim, L2-normalised */
  int32_t *labels;  /* n, NULL when the data set has no labels */
  int64_t *rows;    /* n: the data set row (-1 for tar samples) */
  char **paths;     /* n: image path as opened (NULL entries for tar samples) */
  int64_t bad;      /* samples skipped */
} clipcl_image_features;

/* Every image of ds (CSV, folder or tar) through the loader in evaluation
 * mode. Fails when more than max_bad_fraction of the samples are bad, or when
 * none is readable. */
clipcl_status clipcl_encode_dataset(clipcl_model *m, clipcl_dataset *ds, const clipcl_eval_options *o,
                                    clipcl_image_features *out);
void clipcl_image_features_free(clipcl_image_features *f);

/* Image files by path into emb (n x dim, normalised). A file that cannot be
 * read or decoded gets ok[i] = 0 (ok may be NULL), a zero row, a call to
 * on_bad, and is counted in *n_bad (may be NULL); only bad arguments, device
 * errors and memory fail the call. */
clipcl_status clipcl_encode_image_files(clipcl_model *m, const char *const *paths, size_t n,
                                        const clipcl_eval_options *o, float *emb, uint8_t *ok, size_t *n_bad);
/* The same for image sources (files or in-memory files such as tar members
 * or uploads, see clipcl_image_batch). */
clipcl_status clipcl_encode_image_sources(clipcl_model *m, const clipcl_image_source *sources, size_t n,
                                          const clipcl_eval_options *o, float *emb, uint8_t *ok, size_t *n_bad);
/* Texts into emb (n x dim, normalised): tokenised with the model's context
 * length; a text that is not UTF-8 or gives an id beyond the model's
 * vocabulary fails the call, naming text i. */
clipcl_status clipcl_encode_texts(clipcl_model *m, clipcl_tokenizer *tk, const char *const *texts, size_t n,
                                  const clipcl_eval_options *o, float *emb);

/* The template used when none is given: CLIP's baseline prompt. Neutral for
 * data that is not ImageNet; "openai" (80) and "simple" (7) are the ImageNet
 * ensembles. */
#define CLIPCL_DEFAULT_TEMPLATE "a photo of a {}."

typedef struct {
  clipcl_zeroshot_metrics metrics;
  size_t n;           /* images classified */
  int classes, k;     /* k = min(5, classes) predictions per image */
  int dim, templates;
  char **classnames;  /* [classes] the class texts put into the templates */
  int32_t *labels;    /* [n] true class */
  int32_t *topk;      /* [n*k] predicted classes, best first */
  float *topk_score;  /* [n*k] their cosine similarities */
  char **paths;       /* [n] image paths (NULL entries for tar samples) */
  float *class_emb;   /* [classes*dim] the classifier (always kept) */
  float *image_emb;   /* [n*dim] with keep_embeddings, else NULL */
  int64_t bad;        /* images skipped */
} clipcl_zeroshot_result;

/* Zero-shot classification of a labelled data set (an image folder, or a
 * CSV opened with label_key). classnames NULL: a folder's sub-folder names
 * with '_' read as a space (a CSV then fails: it has no names). A folder
 * needs exactly one name per class folder, a CSV at least (largest label +
 * 1). templates NULL: CLIPCL_DEFAULT_TEMPLATE. Builds the classifier (every
 * class x template encoded, clipcl_zeroshot_classifier), encodes the images,
 * ranks with clipcl_topk, computes the metrics. */
clipcl_status clipcl_zeroshot_run(clipcl_model *m, clipcl_tokenizer *tk, clipcl_dataset *ds,
                                  const clipcl_text_list *classnames, const clipcl_text_list *templates,
                                  const clipcl_eval_options *o, clipcl_zeroshot_result *out);
void clipcl_zeroshot_result_free(clipcl_zeroshot_result *r);

typedef struct {
  clipcl_retrieval_metrics metrics;
  size_t n_images, n_texts;
  int dim;
  char **image_paths;  /* [n_images] in order of first appearance */
  int64_t *text_rows;  /* [n_texts] manifest row of each caption */
  int32_t *text_image; /* [n_texts] image of each caption */
  float *image_emb;    /* [n_images*dim] with keep_embeddings, else NULL */
  float *text_emb;     /* [n_texts*dim] likewise */
  int64_t bad_rows;    /* captions dropped: bad rows, bad captions, unreadable images */
  int64_t bad_images;  /* distinct unreadable images */
} clipcl_retrieval_result;

/* Retrieval on a CSV image-caption manifest: rows naming the same image path
 * are one image with several captions (images numbered by first appearance,
 * captions in row order). An unreadable image drops its captions; a bad row
 * or caption drops that caption. Fails when more than max_bad_fraction of
 * the rows are dropped. */
clipcl_status clipcl_retrieval_run(clipcl_model *m, clipcl_tokenizer *tk, clipcl_dataset *ds,
                                   const clipcl_eval_options *o, clipcl_retrieval_result *out);
void clipcl_retrieval_result_free(clipcl_retrieval_result *r);

/* What a data set's features depend on besides the model: FNV-1a 64 over the
 * kind and, per sample, the resolved image path, the label and the file's
 * size and modification time (tar: each shard's path, size and time), as 16
 * hex digits + NUL into out[17]. Stats every file. */
clipcl_status clipcl_dataset_fingerprint(clipcl_dataset *ds, char out[17]);
/* clipcl_encode_dataset through a feature cache: cache_dir NULL encodes
 * without one; else the files are cache_dir/<data set name>-<hash>.{npy,
 * labels.npy,json} keyed by model_id + fingerprint + the image size; a hit
 * skips encoding (*hit = 1; paths and rows are then NULL), a miss encodes
 * and saves. cache_dir is created (one level) when missing. */
clipcl_status clipcl_encode_dataset_cached(clipcl_model *m, const char *model_id, clipcl_dataset *ds,
                                           const char *cache_dir, const clipcl_eval_options *o,
                                           clipcl_image_features *out, int *hit);

/* ==== end of evaluation runs ============================================= */

/* ==== image search (src/search/) ========================================
 * The search index, exact and approximate (FAISS) search, building an index
 * from image folders, manifests and WebDataset shards, the results page and
 * the HTTP service. (After the evaluation runs: it uses clipcl_model,
 * clipcl_eval_options and the data set options.) */

/* -- the index (index.c) --
 * A directory laid out as clip-retrieval lays out embeddings:
 *   index.json                 {"format": "clipcl-index", "version": 2,
 *                              "model", "dim", "count", "columns",
 *                              "text_embeddings", "root", "root_absolute",
 *                              "parts": [{"id", "count"}], "ann", "generation"}
 *   img_emb/img_emb_{i}.npy    float16 (count_i x dim), L2-normalised rows
 *   text_emb/text_emb_{i}.npy  the same for the captions (optional)
 *   metadata/metadata_{i}.csv  one row per embedding row, in order, with a
 *                              header: image_path, then caption, url, ...
 *   image_{g}.index, text_{g}.index   FAISS indexes (optional)
 * {i} is zero-padded to 4 digits so the files sort in row order, as
 * clip-retrieval's tools read them; the FAISS id of a row is its position
 * over the parts in that order. image_path is relative to the collection
 * root (or absolute when outside it); tar members are "shard.tar/key.jpg".
 * "root" is the collection root relative to the index folder (tried first,
 * so a collection moved together with its index keeps working), then
 * "root_absolute"; clipcl_index_set_root overrides both.
 *
 * Rows are added at the end and never rewritten: saving writes the rows
 * added since the last save as new parts, updates the FAISS indexes, and
 * renames index.json over the old one last, so a crash leaves the previous
 * index whole. Removing rows rewrites every part under new numbers.
 * Embeddings are normalised and rounded to float16 as they are added, so
 * the index searches the same before and after a save. */
typedef struct clipcl_index clipcl_index;
typedef struct {
  int64_t index;    /* row in the index */
  float score;      /* cosine similarity */
  const char *path; /* owned by the index */
} clipcl_search_hit;

/* Rows for clipcl_index_append: n keys (image paths, unique in the index)
 * with ncols extra metadata columns (e.g. "caption", "url"; values row-major,
 * NULL = empty) and their embeddings. text_emb (caption embeddings) must be
 * given exactly when the index keeps text embeddings (the first append of a
 * new index decides). */
typedef struct {
  size_t n;
  const char *const *paths;
  int ncols;
  const char *const *names;  /* ncols column names, not "image_path" */
  const char *const *values; /* n * ncols */
  const float *emb;          /* n * dim */
  const float *text_emb;     /* n * dim, or NULL */
} clipcl_index_rows;

clipcl_status clipcl_index_create(const char *model_id, int dim, clipcl_index **out);
/* What clipcl_index_open reads besides the metadata: */
enum {
  CLIPCL_INDEX_EMBEDDINGS = 1, /* every embedding as float32 in memory (exact
                                  search; otherwise rows are read from the
                                  memory-mapped part files when needed) */
  CLIPCL_INDEX_ANN = 2         /* the FAISS indexes (needs FAISS) */
};
clipcl_status clipcl_index_open(const char *dir, unsigned flags, clipcl_index **out);
/* clipcl_index_open with CLIPCL_INDEX_EMBEDDINGS. */
clipcl_status clipcl_index_load(const char *dir, clipcl_index **out);
/* 1 when dir holds an index.json, else 0. */
int clipcl_index_exists(const char *dir);
/* Creates dir and its sub-folders when missing. */
clipcl_status clipcl_index_save(clipcl_index *ix, const char *dir);
void clipcl_index_free(clipcl_index *ix);
/* CLIPCL_ERR_ARG naming both identities when model_id differs. */
clipcl_status clipcl_index_check_model(const clipcl_index *ix, const char *model_id);
int clipcl_index_contains(const clipcl_index *ix, const char *path);
/* Row of a path, or -1. */
int64_t clipcl_index_find(const clipcl_index *ix, const char *path);
/* Appends the rows whose paths are not yet present (the first of repeated
 * paths in one call), normalising and rounding the embeddings as it stores
 * them. Checks everything first: on error nothing is added. Refuses a
 * model_id other than the index's. *added (may be NULL) counts new rows. */
clipcl_status clipcl_index_append(clipcl_index *ix, const char *model_id, const clipcl_index_rows *rows,
                                  size_t *added);
/* clipcl_index_append of paths and image embeddings only. */
clipcl_status clipcl_index_add(clipcl_index *ix, const char *model_id, const char *const *paths,
                               const float *emb, size_t n, size_t *added);
/* Drops the rows with drop[row] != 0, keeping the order of the others;
 * needs the embeddings in memory (CLIPCL_INDEX_EMBEDDINGS). The FAISS
 * indexes are dropped (their ids shift) and the next save rewrites every
 * part. *removed (may be NULL) counts them. */
clipcl_status clipcl_index_remove(clipcl_index *ix, const uint8_t *drop, size_t *removed);
/* Reads every embedding into memory (what CLIPCL_INDEX_EMBEDDINGS does). */
clipcl_status clipcl_index_load_embeddings(clipcl_index *ix);
/* Rows per part file when saving (default 100,000). */
void clipcl_index_set_part_rows(clipcl_index *ix, size_t rows);
/* The collection root (an existing directory; made absolute). */
clipcl_status clipcl_index_set_root(clipcl_index *ix, const char *root);
const char *clipcl_index_root(const clipcl_index *ix); /* absolute, or NULL when unknown */
size_t clipcl_index_count(const clipcl_index *ix);
int clipcl_index_dim(const clipcl_index *ix);
const char *clipcl_index_model(const clipcl_index *ix);
int clipcl_index_has_text(const clipcl_index *ix); /* keeps caption embeddings */
const char *clipcl_index_path(const clipcl_index *ix, size_t i); /* NULL when out of range */
/* Metadata columns: names[0] is "image_path"; returns the count. */
int clipcl_index_columns(const clipcl_index *ix, const char *const **names);
/* Row i's value in column c, or NULL when empty or out of range. */
const char *clipcl_index_value(const clipcl_index *ix, size_t i, int c);
/* count x dim float32, or NULL unless every row is in memory. */
const float *clipcl_index_embeddings(const clipcl_index *ix);
const float *clipcl_index_text_embeddings(const clipcl_index *ix);
/* Row i's image (text = 0) or caption (text = 1) embedding into out[dim]. */
clipcl_status clipcl_index_row_embedding(const clipcl_index *ix, size_t i, int text, float *out);
/* The min(k, count) rows most similar to the (normalised here) query, best
 * first, scored exactly on the host over the image embeddings (in memory);
 * refuses a query from another model. hits has room for k. */
clipcl_status clipcl_index_search(const clipcl_index *ix, const char *model_id, const float *query, int k,
                                  int threads, clipcl_search_hit *hits, int *n_hits);

/* -- approximate search (ann.c, faiss_shim.cpp) --
 * FAISS indexes over the image and the caption embeddings, inner product
 * (= cosine on these unit rows), chosen by size: "Flat" (exact) below
 * 10,000 rows, "IVF{c},Flat" while the vectors fit the memory budget (c =
 * 2^round(log2(4 sqrt n)), at most n/39: 4,096 for 1M rows), then
 * "IVF{c},PQ{m}x8" (c 16,384 from 1M rows, 65,536 from 10M; m = dim/8 bytes
 * per row). autofaiss would take HNSW32 in the middle range; on a million
 * rows with near-duplicates its recall was far lower (bench/RESULTS.md).
 * Any FAISS factory string can be given instead. */
/* 1 when this build has FAISS. */
int clipcl_faiss_available(void);
/* The automatic choice for n rows of dim into out[cap]; memory_budget 0:
 * half the physical memory, at most 16 GiB. */
clipcl_status clipcl_ann_choose(size_t n, int dim, size_t memory_budget, char *out, size_t cap);
typedef struct {
  size_t train_rows; /* IVF/PQ training sample; 0: min(n, max(65536, 64 * clusters)) */
  uint64_t seed;     /* of that sample */
  int threads;       /* OpenMP threads; <= 0: FAISS's default (all) */
  /* called as rows are trained on and added (may be NULL): stage
   * "ann-train" or "ann-add", rows done, total */
  void (*progress)(void *user, const char *stage, int64_t done, int64_t total);
  void *user;
} clipcl_ann_options;
/* Builds the FAISS index (factory "Flat" or "exact" removes it) over the
 * image (text = 0) or caption embeddings of every row; saved with the index. */
clipcl_status clipcl_index_build_ann(clipcl_index *ix, int text, const char *factory, const clipcl_ann_options *o);
/* The factory string of the FAISS index over image/caption rows, or NULL. */
const char *clipcl_index_ann_factory(const clipcl_index *ix, int text);

typedef struct {
  int text;      /* 0: search the image embeddings; 1: the caption embeddings */
  int exact;     /* 1: score every row on the host even when a FAISS index exists */
  int nprobe;    /* IVF clusters visited; 0: the index's default (16) */
  int ef_search; /* HNSW candidate list; 0: the index's default (max(64, 2k)) */
  int threads;   /* host threads of the exact search; <= 0: all */
} clipcl_query_options;
/* nq queries (normalised here), each its min(k, count) best rows into
 * hits[q*k ..], best first, and their number into n_hits[q] (fewer when an
 * approximate index finds fewer): through the FAISS index when there is one
 * (opened with CLIPCL_INDEX_ANN or just built) and exact is 0, else exactly
 * on the host (which needs the embeddings in memory). o may be NULL.
 * *used (may be NULL) gets 1 when FAISS answered, 0 when exact. */
clipcl_status clipcl_index_query(const clipcl_index *ix, const float *queries, int nq, int k,
                                 const clipcl_query_options *o, clipcl_search_hit *hits, int *n_hits, int *used);

/* -- several queries, host or device (search_device.c) -- */
/* clipcl_index_search for nq queries at once (hits: nq*k, query q's at
 * hits[q*k]; *n_hits = min(k, count) for every query). where: 0 scores on
 * the host (canonical scores, as clipcl_index_search), 1 on the model's
 * device (blocks of index rows uploaded, one GEMM per block against all
 * queries; scores may differ from the host's in the last bits), -1 picks:
 * the device from 2^20 query-row pairs on (faster there even on PoCL; see
 * search_device.c), unless the environment variable CLIPCL_SEARCH=host|device
 * says otherwise. m may be NULL for the host. *used (may be NULL) gets 0 or 1. */
clipcl_status clipcl_index_search_many(const clipcl_index *ix, clipcl_model *m, const char *model_id,
                                       const float *queries, int nq, int k, int where, int threads,
                                       clipcl_search_hit *hits, int *n_hits, int *used);

/* -- building an index from a collection (update.c) --
 * Sources: an image folder (searched recursively: .png, .jpg, .jpeg), a
 * text file listing image paths (relative to its folder), a CSV/TSV manifest
 * (image path and caption columns as open_clip's, every other column kept
 * as metadata; paths relative to the manifest's folder) or WebDataset
 * shards ("shards/{000000..000127}.tar"; caption from .txt or .json, whose
 * "url" is kept). Rows already in the index (by stored path; a shard by
 * any of its rows) are not embedded again. */
typedef struct {
  const char *root;            /* collection root; NULL: the source's folder */
  const char *img_key;         /* CSV image column; NULL: "filepath" */
  const char *caption_key;     /* CSV caption column; NULL: "title" when present */
  const char *separator;       /* CSV separator; NULL: tab for .tsv, else comma */
  int text_embeddings;         /* a new index keeps caption embeddings: -1 (default)
                                  when the source has captions, 0 never, 1 always */
  int prune;                   /* drop rows whose file (or shard) is gone */
  size_t part_rows;            /* rows per part and per save; 0: 100,000 */
  const char *index_type;      /* NULL/"auto", "exact" or a FAISS factory string */
  int rebuild_ann;             /* build the FAISS index again even when it is current */
  size_t memory_budget;        /* for "auto" (see clipcl_ann_choose) */
  clipcl_eval_options eval;    /* batch, workers, on_bad (each unreadable item),
                                  progress (stage "images", over all new items) */
} clipcl_index_update_options;
void clipcl_index_update_options_init(clipcl_index_update_options *o);
typedef struct {
  size_t scanned;   /* items the source lists */
  size_t present;   /* of them already in the index */
  size_t added;     /* rows embedded and added */
  size_t bad;       /* unreadable or unusable items, skipped */
  size_t pruned;    /* rows dropped by prune */
  size_t count;     /* rows in the index afterwards */
  int ann_built;    /* 1 when the FAISS indexes were (re)built */
  char ann[64];     /* their factory string, "" for exact search */
} clipcl_index_update_stats;
/* Adds the new items of source to ix (opened from dir, or created) and saves
 * it to dir after every part_rows rows; builds or extends the FAISS indexes
 * as index_type says. tk is needed for caption embeddings. On error the
 * index on disk holds every part saved before it. */
clipcl_status clipcl_index_update(clipcl_index *ix, const char *dir, const char *source, clipcl_model *m,
                                  clipcl_tokenizer *tk, const clipcl_index_update_options *o,
                                  clipcl_index_update_stats *stats);

/* -- the results page (html.c) -- */
/* An HTML5 page (also well-formed XML) of ranked thumbnails with scores and
 * paths. Image URLs: an absolute path becomes a file:// URL; a relative one
 * is joined to image_base (may be NULL) and, when still relative, used as a
 * URL relative to the page's directory. Bytes outside [A-Za-z0-9-._~/] are
 * percent-encoded; displayed text is HTML-escaped, with invalid UTF-8 and
 * control characters shown as U+FFFD. */
clipcl_status clipcl_search_write_html(const char *path, const char *title, const clipcl_search_hit *hits,
                                       int n, const char *image_base);
/* -- the HTTP service (serve.c, page.html) --
 * clip-retrieval's back-end API over libmicrohttpd, for several indexes
 * built with one model:
 *   GET  /indices-list    ["name", ...]
 *   POST /knn-service     body parsed as JSON whatever the Content-Type:
 *                         indice_name, modality ("image" searches the image
 *                         embeddings, "text" the captions'), num_images,
 *                         num_result_ids, deduplicate, and the query: the
 *                         first non-empty of text, image (base64),
 *                         image_url (file:// inside a served collection
 *                         only: the server fetches nothing), embedding_input,
 *                         and clipcl's own query_id (a row whose stored image
 *                         embedding is the query); use_mclip,
 *                         use_safety_model, use_violence_detector,
 *                         aesthetic_score and aesthetic_weight are accepted
 *                         and ignored. Answer: [{"id", "similarity",
 *                         metadata columns (image_path, caption, url, ...),
 *                         "image" (base64 of the file, when local)}] for the
 *                         first num_images, then [{"id", "similarity"}] up to
 *                         num_result_ids; deduplicate drops results within
 *                         cosine 0.94 of a better one (transitively).
 *   POST /metadata        {ids, indice_name} -> [{"id", "metadata": {...}}]
 *   GET  /config.json     {"defaultBackend", "defaultIndex", "urlColumn"}
 *   GET  /                the search page
 *   GET  /image?index=NAME&id=N   the image file of row N (inside its
 *                         collection only)
 *   GET  /healthz, /metrics (Prometheus text: requests, queries, latency
 *                         histogram, errors, text cache, resident memory)
 * Every answer carries Access-Control-Allow-Origin: *; every refused
 * request gets a 4xx status and {"error": "..."}. Requests are handled by a
 * pool of threads; the model encodes one query at a time (texts through an
 * LRU cache); FAISS and exact searches run in parallel. */
typedef struct clipcl_server clipcl_server;
typedef struct {
  const char *host;       /* address to bind; default "127.0.0.1" */
  int port;               /* 0: a free port (see clipcl_server_port) */
  int threads;            /* request threads; default 8 */
  size_t max_body;        /* bytes of a request body; default 16 MiB */
  int max_results;        /* largest num_images / num_result_ids / ids; default 10000 */
  int timeout_s;          /* idle connection time-out; default 30 */
  size_t text_cache;      /* text embeddings kept; default 4096 */
  size_t max_inline;      /* largest image file returned as base64; default 8 MiB */
  int nprobe, ef_search;  /* FAISS search parameters (0: clipcl_index_query's) */
  /* one line per request and per problem (may be NULL) */
  void (*log)(void *user, const char *line);
  void *user;
} clipcl_server_options;
void clipcl_server_options_init(clipcl_server_options *o);
/* Starts serving n indexes under names (unique; [A-Za-z0-9._-]) with the
 * model m (which every index must have been built with) and its tokenizer.
 * The indexes, model and tokenizer must outlive the server. */
clipcl_status clipcl_server_start(clipcl_model *m, clipcl_tokenizer *tk, clipcl_index *const *ix,
                                  const char *const *names, int n, const clipcl_server_options *o,
                                  clipcl_server **out);
int clipcl_server_port(const clipcl_server *s);
/* Stops accepting, finishes the requests in flight and frees the server. */
void clipcl_server_stop(clipcl_server *s);
/* ==== end of image search =============================================== */

/* ==== training (src/train/, src/dist/) ===================================
 * CLIP (or SigLIP) training with open_clip's options and conventions, as
 * `clipcl train` runs it: the threaded data loop, AdamW with warm-up and
 * cosine decay, gradient accumulation, checkpoints and exact resume,
 * validation loss, zero-shot evaluation during training, metrics.jsonl and
 * report.html. The same call trains data-parallel over R processes when the
 * program is started by `mpirun -np R` (or `srun --mpi=pmix`) and libclipcl
 * was built with MPI: batch_size is then per rank, the loss is the one of the
 * global batch R x batch_size x accum_freq, and only rank 0 writes files and
 * sees events other than bad samples. Without MPI, or outside a launcher,
 * it is one process. Nothing here prints; progress arrives through on_event. */
typedef enum {
  CLIPCL_TRAIN_EV_NOTE = 0,       /* text: a line worth showing (start, resume, notes) */
  CLIPCL_TRAIN_EV_STEP = 1,       /* every optimiser step; `logged` marks the --log-every ones */
  CLIPCL_TRAIN_EV_VAL = 2,        /* validation loss (val_loss over val_n pairs) */
  CLIPCL_TRAIN_EV_ZEROSHOT = 3,   /* zero-shot top1/top5/chance over zs_n images, text = data */
  CLIPCL_TRAIN_EV_CHECKPOINT = 4, /* text = the model file written */
  CLIPCL_TRAIN_EV_BAD_SAMPLE = 5, /* on the rank that met it: text = "skipped <where>: <why>" */
  CLIPCL_TRAIN_EV_DONE = 6        /* the final model was written: text = its path */
} clipcl_train_event_kind;

typedef struct {
  clipcl_train_event_kind kind;
  int rank, world_size;
  long step, total_steps;   /* optimiser steps taken so far, of total */
  double epoch;             /* fractional epoch (whole epochs when the size is unknown) */
  int logged;               /* STEP: a --log-every step (also the first and the last) */
  double loss, lr, logit_scale, logit_bias; /* exp(scale); logit_bias 0 without SigLIP */
  double grad_norm;         /* before clipping; -1 when clipping is off */
  double samples_per_s;     /* global samples/s since the last logged step; -1 in warm-up */
  double eta_s;             /* seconds to go, from steps after the warm-up; -1 until known */
  int64_t samples_seen, bad_samples; /* over all ranks */
  double val_loss;
  int64_t val_n;
  double top1, top5, chance;
  int64_t zs_n;
  const char *text;         /* NOTE, ZEROSHOT, CHECKPOINT, BAD_SAMPLE, DONE; else NULL */
} clipcl_train_event;

/* Called on the training thread. A non-zero return from a STEP event stops
 * the run after that step (all ranks agree), with a checkpoint written, as
 * an interrupt would. */
typedef int (*clipcl_train_event_fn)(void *user, const clipcl_train_event *ev);

typedef struct {
  /* model */
  const char *model_config; /* built-in name or JSON path; required */
  const char *init;         /* NULL: fresh initialisation from seed; else weights to start from */
  /* data */
  const char *train_data;   /* CSV/TSV manifest, WebDataset shards; required */
  const char *val_data;     /* may be NULL */
  const char *csv_img_key, *csv_caption_key, *csv_separator; /* NULL: filepath, title, by extension */
  int workers;              /* decode threads per rank; <= 0: this rank's share of the CPUs */
  double max_bad_fraction;  /* default 0.01 */
  /* optimisation (open_clip's defaults) */
  int batch_size;           /* per rank and micro-batch; required */
  int accum_freq;           /* micro-batches per step; default 1 */
  long epochs, steps;       /* exactly one > 0 */
  long warmup;              /* default 10000 */
  double lr, wd, beta1, beta2, eps; /* 5e-4, 0.2, 0.9, 0.98, 1e-6 */
  double grad_clip_norm;    /* 0: off */
  int lock_image;
  uint64_t seed;
  int siglip;               /* sigmoid loss with a learnt logit_bias (open_clip --siglip) */
  int grad_checkpointing;   /* keep block inputs only, recompute blocks in backward */
  int zero;                 /* 0, or 1: shard the AdamW moments over the ranks (ZeRO-1) */
  /* devices: NULL uses CLIPCL_DEVICE, else on each host the (local rank)-th
   * GPU, else device 0; a comma list "A,B,..." gives local rank i item i mod
   * count. dev (optional) is an opened device used as is (one rank only
   * or one per process, the caller's choice); on CPU devices opened here each
   * rank gets its share of the host's cores. */
  const char *device;
  clipcl_device *dev;
  /* outputs */
  const char *out_dir;      /* required; rank 0 writes here */
  const char *resume;       /* NULL, "latest" (newest complete checkpoint in out_dir), or a model path */
  long save_every;          /* steps between checkpoints; <= 0: each epoch (1000 when the size is unknown) */
  int keep;                 /* checkpoints kept, default 3 */
  long log_every;           /* default 10 */
  int report;               /* write report.html (default 1) */
  /* zero-shot evaluation during training (may be NULL) */
  const char *zeroshot_data, *zeroshot_classnames, *zeroshot_templates;
  double zeroshot_frequency; /* epochs between evaluations; default 1; 0: only at the end */
  clipcl_train_event_fn on_event;
  void *user;
  FILE *profile;            /* per-kernel device times go here at the end when
                               CLIPCL_PROFILE=1 (may be NULL) */
} clipcl_train_options;

typedef struct {
  long steps_done;          /* in this call */
  long final_step;
  int interrupted;          /* stopped by on_event before the last step */
  double seconds;
  int64_t samples_seen, bad_samples; /* over all ranks */
  double last_loss;
  int world_size;
  int failed_rank;          /* on failure: the rank where it happened (-1: none) */
  int aborting;             /* 1: it failed inside a step's exchanges, where the other
                               ranks cannot learn it; the job is aborted at exit */
} clipcl_train_result;

/* Sets the defaults named above. */
void clipcl_train_options_init(clipcl_train_options *o);
/* Trains as the options say. Errors: bad options (CLIPCL_ERR_ARG), data
 * (CLIPCL_ERR_FORMAT/IO, e.g. too many bad samples), a NaN or infinite loss
 * (CLIPCL_ERR_NUMERIC, the last good checkpoint kept), device errors. With
 * several ranks every rank returns the same status, and the message names
 * the rank where the failure happened. out may be NULL. */
clipcl_status clipcl_train(const clipcl_train_options *o, clipcl_train_result *out);

/* This process's place in a data-parallel job: starts MPI (when built in
 * and launched by mpirun/srun) on first use. One rank otherwise. */
typedef struct {
  int rank, size, local_rank, local_size;
  int mpi;                  /* 1 when MPI is in use */
} clipcl_dist_info;
clipcl_status clipcl_dist_get(clipcl_dist_info *info);
/* ==== end of training ==================================================== */

#ifdef __cplusplus
}
#endif
#endif

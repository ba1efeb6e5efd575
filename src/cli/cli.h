/* cli.h: subcommand entry points (one file each) and shared CLI helpers. */
#ifndef CC_CLI_H
#define CC_CLI_H
#include "clipcl.h"

int cmd_devices(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_zeroshot(int argc, char **argv);
int cmd_retrieval(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Prints "clipcl <cmd>: <last error>" to stderr and returns 1. */
int cli_error(const char *cmd);
/* Opens the device named by --device (or CLIPCL_DEVICE); prints on failure. */
clipcl_device *cli_open_device(const char *cmd, const char *spec);
/* argv[*i] is an option needing a value: returns argv[++*i], or prints
 * "clipcl <cmd>: <option> needs a value" and returns NULL. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);
/* Parses a whole number option value in [lo, hi]; prints and returns -1 on error. */
int cli_int(const char *cmd, const char *opt, const char *v, long lo, long hi, long *out);
/* Loads --model (with --model-config, may be NULL) onto the device; prints
 * the config source when it was inferred. NULL (printed) on failure. */
clipcl_model *cli_load_model(const char *cmd, clipcl_device *dev, const char *path, const char *config);
/* Reads a UTF-8 text file into lines (no newline; CRLF and a BOM stripped).
 * Returns the count, or -1 (printed). lines[] and the strings are malloc'd. */
int cli_read_lines(const char *cmd, const char *path, char ***lines);
void cli_free_lines(char **lines, int n);
/* Collects image paths: a directory (recursively, sorted, .png/.jpg/.jpeg),
 * one image file (by that extension), or a text file with one path per line
 * (relative to the file's folder).
 * Returns the count or -1 (printed). */
int cli_image_paths(const char *cmd, const char *spec, char ***paths);

/* ---- progress lines (progress.c) ---- */
/* One line on stderr redrawn in place: stage, count, rate and ETA; the first
 * update of a stage starts the clock, so its batch (kernel compilation) is
 * left out of rates and ETAs. Disabled: every call does nothing. */
typedef struct {
  int enabled, shown, width, started;
  char stage[24];
  double t0;
  int64_t done0, last;
} cli_progress;
double cli_now(void); /* monotonic seconds */
void cli_progress_init(cli_progress *p, int enabled);
void cli_progress_init_tty(cli_progress *p); /* enabled when stderr is a terminal */
void cli_progress_update(cli_progress *p, const char *stage, int64_t done, int64_t total);
/* Ends a shown line (before other output, and at the end). */
void cli_progress_break(cli_progress *p);
/* The line cli_progress_update draws at time now (seconds), into out[cap];
 * returns its length. Exposed for tests. */
int cli_progress_format(cli_progress *p, const char *stage, int64_t done, int64_t total, double now, char *out,
                        size_t cap);
/* Sets the device's build callback to print once per process that the kernels
 * are being compiled and where they are cached (called by cli_open_device). */
void cli_announce_builds(clipcl_device *dev);

/* ---- shared by the evaluation commands (eval_common.c) ---- */
typedef struct {
  const char *model, *config, *device;
  const char *img_key, *caption_key, *label_key, *separator; /* CSV columns */
  long batch, workers;
  double max_bad; /* --max-bad-fraction, default 0.01 */
} cli_eval_opts;
void cli_eval_opts_init(cli_eval_opts *o);
/* argv[*i] is one of the options above: consumes it (and its value) and
 * returns 1; 0 when it is not; -1 on a bad value (printed). */
int cli_eval_opt(const char *cmd, int argc, char **argv, int *i, cli_eval_opts *o);

/* A device, a model, a tokenizer and evaluation options whose callbacks
 * print skipped samples ("clipcl <cmd>: skipped <where>: <why>") and, on a
 * terminal, progress. */
typedef struct {
  const char *cmd;
  clipcl_device *dev;
  clipcl_model *model;
  clipcl_tokenizer *tok;
  clipcl_eval_options eval;
  cli_progress progress;
  long skipped;
} cli_session;
/* 0, or -1 after printing the error. */
int cli_session_open(cli_session *s, const char *cmd, const cli_eval_opts *o, int need_tokenizer);
void cli_session_close(cli_session *s);
void cli_progress_end(cli_session *s);
/* A directory opens as an image folder, anything else as a CSV/TSV with
 * integer labels (--csv-label-key, default "label"). NULL (printed) on error. */
clipcl_dataset *cli_open_labelled(const char *cmd, const char *spec, const cli_eval_opts *o);
/* Writes the library's JSON text (freed here) with the keys of extra (may
 * be NULL; its reference is taken) added, atomically. 0 or 1 (printed). */
struct json_t;
int cli_write_report(const char *cmd, const char *path, char *json, struct json_t *extra);
/* clipcl_model_identity, printed on failure: 0 or 1. */
int cli_model_id(const char *cmd, clipcl_model *m, char *out, size_t cap);
#endif

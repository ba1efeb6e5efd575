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
/* Collects image paths: a directory (recursively, sorted, .png/.jpg/.jpeg)
 * or a text file with one path per line (relative to the file's folder).
 * Returns the count or -1 (printed). */
int cli_image_paths(const char *cmd, const char *spec, char ***paths);
#endif

/* cli.h: subcommand entry points (one file each) and shared CLI helpers. */
#ifndef CC_CLI_H
#define CC_CLI_H
#include "clipcl.h"

int cmd_devices(int argc, char **argv);
int cmd_tune(int argc, char **argv);

/* Prints "clipcl <cmd>: <last error>" to stderr and returns 1. */
int cli_error(const char *cmd);
/* Opens the device named by --device (or CLIPCL_DEVICE); prints on failure. */
clipcl_device *cli_open_device(const char *cmd, const char *spec);
#endif

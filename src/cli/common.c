/* common.c: helpers shared by subcommands. */
#include <stdio.h>

#include "cli/cli.h"

int cli_error(const char *cmd) {
  fprintf(stderr, "clipcl %s: %s\n", cmd, clipcl_last_error());
  return 1;
}

clipcl_device *cli_open_device(const char *cmd, const char *spec) {
  clipcl_device *d = NULL;
  if (clipcl_device_open(spec, &d) != CLIPCL_OK) {
    cli_error(cmd);
    return NULL;
  }
  return d;
}

/* main.c: the clipcl command: dispatches subcommands, prints errors. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
  const char *name;
  int (*fn)(int, char **);
  const char *help;
} commands[] = {
    {"devices", cmd_devices, "list OpenCL devices (--build compiles every kernel)"},
    {"tune", cmd_tune, "search GEMM parameters for this device and save them"},
    {"init", cmd_init, "write freshly initialised weights for a model config"},
    {"info", cmd_info, "print a weights file's or config's architecture and size"},
    {"embed", cmd_embed, "image/text embeddings of a model as .npy files"},
    {"convert", cmd_convert, "rewrite weights with OpenAI/open_clip or HF transformers names"},
    {"train", cmd_train, "train a CLIP model on image-caption pairs"},
    {"zeroshot", cmd_zeroshot, "zero-shot classification of a labelled image folder or CSV"},
    {"retrieval", cmd_retrieval, "image-text retrieval recall@k on a CSV of image-caption pairs"},
    {"probe", cmd_probe, "linear probe: logistic regression on frozen image features"},
    {"index", cmd_index, "build or extend an image search index (folders, manifests, shards)"},
    {"search", cmd_search, "search an index with a text or an image"},
    {"serve", cmd_serve, "serve indexes over HTTP (clip-retrieval's API and a search page)"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: clipcl <command> [options]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
  fprintf(f, "\n`clipcl <command> --help` describes a command.\n");
}

/* The library's notices (one-time tuning of a new device) go to stderr, on
 * their own line even while a progress line is being redrawn. */
static void print_notice(const char *msg, void *user) {
  (void)user;
  fprintf(stderr, "clipcl: %s\n", msg);
}

int main(int argc, char **argv) {
  clipcl_set_notice_handler(print_notice, NULL);
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("clipcl %s\n", clipcl_version());
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "clipcl: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}

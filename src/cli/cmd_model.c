/* cmd_model.c: `clipcl info`, `clipcl init` and `clipcl convert`: model
 * configs and weights files. None of them needs the device except init. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/layout.h"
#include "model/weights.h"

static void print_config(const clipcl_config *c) {
  const clipcl_vision_cfg *v = &c->vision;
  const clipcl_text_cfg *t = &c->text;
  printf("config      %s\n", c->name);
  printf("embed_dim   %d\n", c->embed_dim);
  printf("activation  %s\n", c->quick_gelu ? "QuickGELU" : "GELU (erf)");
  printf("vision      image %d, patch %d (%d positions), %d layers, width %d, %d heads, MLP %d\n", v->image_size,
         v->patch_size, (v->image_size / v->patch_size) * (v->image_size / v->patch_size) + 1, v->layers, v->width,
         v->width / v->head_width, (int)(v->width * v->mlp_ratio));
  printf("text        context %d, vocab %d, %d layers, width %d, %d heads, MLP %d\n", t->context_length,
         t->vocab_size, t->layers, t->width, t->heads, (int)(t->width * t->mlp_ratio));
  printf("parameters  %llu\n", (unsigned long long)clipcl_config_num_params(c));
}

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

int cmd_info(int argc, char **argv) {
  const char *what = NULL, *config = NULL;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--model-config")) {
      if (!(config = cli_value("info", argc, argv, &i))) return 2;
    } else if (!strcmp(argv[i], "--model")) {
      if (!(what = cli_value("info", argc, argv, &i))) return 2;
    } else if (!strcmp(argv[i], "--json")) {
      json = 1;
    } else if (!strcmp(argv[i], "--help")) {
      printf("usage: clipcl info MODEL.safetensors|CONFIG [--model-config NAME|FILE] [--json]\n"
             "Prints a weights file's or a config's architecture and parameter count.\n"
             "Built-in configs:");
      for (const char *const *n = clipcl_config_names(); *n; n++) printf(" %s", *n);
      printf("\n");
      return 0;
    } else if (argv[i][0] != '-' && !what) {
      what = argv[i];
    } else {
      fprintf(stderr, "clipcl info: unknown option '%s'\n", argv[i]);
      return 2;
    }
  }
  if (!what && !config) {
    fprintf(stderr, "usage: clipcl info MODEL.safetensors|CONFIG [--model-config NAME|FILE]\n");
    return 2;
  }
  clipcl_config cfg, over;
  if (config && clipcl_config_get(config, &over) != CLIPCL_OK) return cli_error("info");
  if (!what || !ends_with(what, ".safetensors")) {
    if (clipcl_config_get(what ? what : config, &cfg) != CLIPCL_OK) return cli_error("info");
    if (json) {
      char *j = clipcl_config_to_json(&cfg);
      printf("%s\n", j ? j : "{}");
      free(j);
    } else {
      print_config(&cfg);
    }
    return 0;
  }
  float *host;
  cc_weights_info wi;
  if (cc_weights_read(what, config ? &over : NULL, &cfg, &host, &wi) != CLIPCL_OK) return cli_error("info");
  int src = wi.config_source;
  free(host);
  if (json) {
    char *j = clipcl_config_to_json(&cfg);
    printf("%s\n", j ? j : "{}");
    free(j);
    return 0;
  }
  printf("file        %s\n", what);
  print_config(&cfg);
  printf("config from %s\n", src == CC_CONFIG_OVERRIDE ? "--model-config"
                             : src == CC_CONFIG_METADATA ? "the file's metadata"
                                                         : "tensor shapes (heads = width/64, GELU assumed)");
  printf("names       %s\n", wi.hf_names ? "HF transformers" : "OpenAI/open_clip");
  printf("tokenizer   %s\n", wi.tokenizer[0] ? wi.tokenizer : "(not recorded)");
  return 0;
}

int cmd_init(int argc, char **argv) {
  const char *config = NULL, *out = NULL, *device = NULL;
  long seed = 0;
  int hf = 0;
  for (int i = 1; i < argc; i++) {
    const char *v;
    if (!strcmp(argv[i], "--model-config")) {
      if (!(config = cli_value("init", argc, argv, &i))) return 2;
    } else if (!strcmp(argv[i], "--out")) {
      if (!(out = cli_value("init", argc, argv, &i))) return 2;
    } else if (!strcmp(argv[i], "--device")) {
      if (!(device = cli_value("init", argc, argv, &i))) return 2;
    } else if (!strcmp(argv[i], "--seed")) {
      if (!(v = cli_value("init", argc, argv, &i)) || cli_int("init", "--seed", v, 0, 0x7fffffffffffffffL, &seed))
        return 2;
    } else if (!strcmp(argv[i], "--hf-names")) {
      hf = 1;
    } else if (!strcmp(argv[i], "--help")) {
      printf("usage: clipcl init --model-config NAME|FILE [--seed S] --out M.safetensors [--hf-names]\n"
             "Writes freshly initialised weights (open_clip's initialisation, seeded).\n");
      return 0;
    } else {
      fprintf(stderr, "clipcl init: unknown option '%s'\n", argv[i]);
      return 2;
    }
  }
  if (!config || !out) {
    fprintf(stderr, "usage: clipcl init --model-config NAME|FILE [--seed S] --out M.safetensors\n");
    return 2;
  }
  clipcl_config cfg;
  if (clipcl_config_get(config, &cfg) != CLIPCL_OK) return cli_error("init");
  /* Initialisation happens on the host; no device is needed. */
  (void)device;
  cc_layout L;
  if (cc_layout_build(&cfg, &L) != CLIPCL_OK) return cli_error("init");
  float *host = malloc(L.total * sizeof *host);
  if (!host) {
    fprintf(stderr, "clipcl init: out of memory for %zu parameters\n", L.total);
    cc_layout_free(&L);
    return 1;
  }
  cc_layout_init_params(&L, (uint64_t)seed, host);
  clipcl_tokenizer *tk = NULL;
  const char *tid = "";
  if (clipcl_tokenizer_create(&tk) == CLIPCL_OK) tid = clipcl_tokenizer_identity(tk);
  clipcl_status s = cc_weights_write(out, &L, host, hf, tid);
  clipcl_tokenizer_free(tk);
  free(host);
  if (s) {
    cc_layout_free(&L);
    return cli_error("init");
  }
  printf("wrote %s: %s, %llu parameters, seed %ld\n", out, cfg.name,
         (unsigned long long)clipcl_config_num_params(&cfg), seed);
  cc_layout_free(&L);
  return 0;
}

int cmd_convert(int argc, char **argv) {
  const char *in = NULL, *out = NULL, *config = NULL, *to = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--model-config")) {
      if (!(config = cli_value("convert", argc, argv, &i))) return 2;
    } else if (!strcmp(argv[i], "--to")) {
      if (!(to = cli_value("convert", argc, argv, &i))) return 2;
    } else if (!strcmp(argv[i], "--help")) {
      printf("usage: clipcl convert IN.safetensors OUT.safetensors [--to openai|hf] [--model-config NAME|FILE]\n"
             "Rewrites weights with OpenAI/open_clip names (default for HF input) or HF transformers\n"
             "names (default for OpenAI input), as F32 with the config in the metadata.\n");
      return 0;
    } else if (argv[i][0] != '-' && !in) {
      in = argv[i];
    } else if (argv[i][0] != '-' && !out) {
      out = argv[i];
    } else {
      fprintf(stderr, "clipcl convert: unknown option '%s'\n", argv[i]);
      return 2;
    }
  }
  if (!in || !out || (to && strcmp(to, "openai") && strcmp(to, "hf"))) {
    fprintf(stderr, "usage: clipcl convert IN.safetensors OUT.safetensors [--to openai|hf]\n");
    return 2;
  }
  clipcl_config over, cfg;
  if (config && clipcl_config_get(config, &over) != CLIPCL_OK) return cli_error("convert");
  float *host;
  cc_weights_info wi;
  if (cc_weights_read(in, config ? &over : NULL, &cfg, &host, &wi) != CLIPCL_OK) return cli_error("convert");
  int src = wi.config_source;
  int hf = to ? !strcmp(to, "hf") : !wi.hf_names; /* default: the other naming */
  cc_layout L;
  clipcl_status s = cc_layout_build(&cfg, &L);
  if (!s) s = cc_weights_write(out, &L, host, hf, wi.tokenizer);
  free(host);
  if (s) return cli_error("convert");
  printf("wrote %s with %s names (%s, config from %s)\n", out, hf ? "HF transformers" : "OpenAI/open_clip",
         cfg.name, src == CC_CONFIG_OVERRIDE ? "--model-config" : src == CC_CONFIG_METADATA ? "metadata" : "shapes");
  if (src == CC_CONFIG_INFERRED)
    fprintf(stderr, "clipcl convert: %s had no config: inferred heads = width/64 and GELU are recorded in %s; pass "
                    "--model-config to record another\n", in, out);
  cc_layout_free(&L);
  return 0;
}

/* weights.h: safetensors weights of a CLIP model (see weights.c). */
#ifndef CC_WEIGHTS_H
#define CC_WEIGHTS_H
#include <stddef.h>

#include "clipcl.h"
#include "model/layout.h"

enum { CC_CONFIG_OVERRIDE = 0, CC_CONFIG_METADATA = 1, CC_CONFIG_INFERRED = 2 };

typedef struct {
  int config_source;  /* CC_CONFIG_* */
  int hf_names;       /* the file used HF transformers names */
  char tokenizer[96]; /* the file's tokenizer identity, "" if none */
  int no_vision;      /* a text-only file: the image tower is a zero placeholder */
  int no_text_proj;   /* ... and it had no text_projection either */
} cc_weights_info;

/* Reads every parameter of the file into a malloc'd host array laid out by
 * cc_layout_build(*cfg_out). override (may be NULL) replaces the config stored
 * in or inferred from the file. */
clipcl_status cc_weights_read(const char *path, const clipcl_config *override, clipcl_config *cfg_out,
                              float **host_out, cc_weights_info *info);
/* Writes host[L->total] atomically as F32 safetensors with OpenAI/open_clip
 * names (or HF names when hf_names), the config and tokenizer in metadata. */
clipcl_status cc_weights_write(const char *path, const cc_layout *L, const float *host, int hf_names,
                               const char *tokenizer);
/* The same with extra metadata pairs (e.g. a checkpoint's step). */
clipcl_status cc_weights_write_meta(const char *path, const cc_layout *L, const float *host, int hf_names,
                                    const char *tokenizer, const char *const *extra_kv, int n_extra);
#endif

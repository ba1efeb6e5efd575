/* test_names.c: OpenAI/open_clip <-> HF CLIP weight-name mapping
 * (src/io/names.c) against two fixtures made by tests/tools/make_io_fixtures.py:
 * every tensor of an open_clip 2.20 ViT-B-32 state_dict (names and shapes as
 * open_clip reports them) and the HF transformers CLIPModel names for the
 * same config (spelled out in the script from HF's module layout).
 * Checks: each OpenAI name maps to HF names present in the HF list, with
 * shapes consistent with the transform (identity, transpose, q/k/v thirds),
 * and back to itself; every HF name is reached exactly once except the
 * position_ids buffers, which are ignored; naming detection; unknown and
 * malformed names are refused with one-line messages. */
#include "io/names.h"
#include "io_testutil.h"
#include "util/error.h"

typedef struct {
  char name[CC_NAME_MAX];
  int ndim;
  long shape[8];
  int used;
} entry;

static entry *load(const char *path, size_t *n) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    exit(1);
  }
  entry *e = calloc(1024, sizeof *e);
  char line[512];
  *n = 0;
  while (fgets(line, sizeof line, f) && *n < 1024) {
    if (line[0] == '#' || line[0] == '\n') continue;
    char *tab = strchr(line, '\t');
    if (!tab) continue;
    *tab = 0;
    size_t len = strlen(line);
    if (len >= CC_NAME_MAX) {
      fprintf(stderr, "%s: name too long\n", path);
      exit(1);
    }
    memcpy(e[*n].name, line, len + 1);
    char *p = tab + 1;
    while (*p && *p != '\n' && e[*n].ndim < 8) {
      e[*n].shape[e[*n].ndim++] = strtol(p, &p, 10);
      if (*p == ',') p++;
    }
    (*n)++;
  }
  fclose(f);
  return e;
}

static entry *find(entry *e, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(e[i].name, name)) return &e[i];
  return NULL;
}

/* HF tensor shape implied by the OpenAI shape and the transform. */
static int shape_fits(const entry *oa, const entry *hf, const cc_name_map *m) {
  switch (m->op) {
    case CC_XF_IDENTITY:
      if (oa->ndim != hf->ndim) return 0;
      for (int d = 0; d < oa->ndim; d++)
        if (oa->shape[d] != hf->shape[d]) return 0;
      return 1;
    case CC_XF_TRANSPOSE:
      return oa->ndim == 2 && hf->ndim == 2 && oa->shape[0] == hf->shape[1] && oa->shape[1] == hf->shape[0];
    case CC_XF_QKV_PART:
      if (oa->ndim != hf->ndim || oa->shape[0] != 3 * hf->shape[0]) return 0;
      for (int d = 1; d < oa->ndim; d++)
        if (oa->shape[d] != hf->shape[d]) return 0;
      return m->part >= 0 && m->part < 3;
    default:
      return 0;
  }
}

int main(void) {
  size_t noa, nhf;
  entry *oa = load("data/names_vitb32_openai.txt", &noa), *hf = load("data/names_vitb32_hf.txt", &nhf);
  th_assert("open_clip ViT-B-32 has 302 tensors", noa == 302, "%zu", noa);
  th_assert("HF list: 302 + 2*24 split q/k/v + 2 position_ids", nhf == 302 + 48 * 2 + 2, "%zu", nhf);

  size_t fwd_bad = 0, back_bad = 0, shape_bad = 0, three = 0;
  char first[1024] = "";
  for (size_t i = 0; i < noa; i++) {
    cc_name_map m[3];
    int cnt = 0;
    if (cc_name_openai_to_hf(oa[i].name, m, &cnt) != CLIPCL_OK || cnt < 1) {
      if (fwd_bad++ == 0) snprintf(first, sizeof first, "%s", clipcl_last_error());
      continue;
    }
    three += cnt == 3;
    for (int k = 0; k < cnt; k++) {
      entry *h = find(hf, nhf, m[k].name);
      if (!h) {
        if (fwd_bad++ == 0) snprintf(first, sizeof first, "%s -> %s: not an HF name", oa[i].name, m[k].name);
        continue;
      }
      h->used++;
      if (!shape_fits(&oa[i], h, &m[k]) || (cnt == 3) != (m[k].op == CC_XF_QKV_PART) ||
          (cnt == 3 && m[k].part != k)) {
        if (shape_bad++ == 0) snprintf(first, sizeof first, "%s -> %s: shape or transform", oa[i].name, m[k].name);
      }
      cc_name_map r;
      if (cc_name_hf_to_openai(m[k].name, &r) != CLIPCL_OK || strcmp(r.name, oa[i].name) || r.op != m[k].op ||
          r.part != m[k].part) {
        if (back_bad++ == 0) snprintf(first, sizeof first, "%s -> %s -> %s", oa[i].name, m[k].name, r.name);
      }
    }
  }
  th_assert("every OpenAI name maps to listed HF names", fwd_bad == 0, "%zu bad; %s", fwd_bad, first);
  th_assert("shapes agree with the transforms", shape_bad == 0, "%zu bad; %s", shape_bad, first);
  th_assert("HF -> OpenAI returns the original name and transform", back_bad == 0, "%zu bad; %s", back_bad, first);
  th_assert("24 blocks x 2 split attention projections", three == 48, "%zu", three);

  size_t unused = 0, twice = 0, ign = 0;
  for (size_t i = 0; i < nhf; i++) {
    cc_name_map r;
    int is_pid = strstr(hf[i].name, ".position_ids") != NULL;
    if (is_pid) {
      ign += cc_name_hf_to_openai(hf[i].name, &r) == CLIPCL_OK && r.op == CC_XF_IGNORE;
      unused += hf[i].used != 0;
      continue;
    }
    if (hf[i].used == 0 && unused++ == 0) snprintf(first, sizeof first, "%s never reached", hf[i].name);
    if (hf[i].used > 1 && twice++ == 0) snprintf(first, sizeof first, "%s reached twice", hf[i].name);
  }
  th_assert("every HF name reached exactly once", unused == 0 && twice == 0, "%zu unused, %zu twice; %s", unused,
            twice, first);
  th_assert("position_ids ignored", ign == 2, "%zu", ign);

  /* specific transforms, stated independently of the tables */
  cc_name_map r;
  TH_OK(cc_name_hf_to_openai("visual_projection.weight", &r));
  th_assert("visual_projection is the transposed visual.proj", !strcmp(r.name, "visual.proj") &&
                                                                   r.op == CC_XF_TRANSPOSE, "%s", r.name);
  TH_OK(cc_name_hf_to_openai("text_model.encoder.layers.11.self_attn.v_proj.bias", &r));
  th_assert("v_proj.bias is part 2 of in_proj_bias",
            !strcmp(r.name, "transformer.resblocks.11.attn.in_proj_bias") && r.op == CC_XF_QKV_PART && r.part == 2,
            "%s part %d", r.name, r.part);
  TH_OK(cc_name_hf_to_openai("vision_model.pre_layrnorm.bias", &r));
  th_assert("pre_layrnorm (HF spelling) is ln_pre", !strcmp(r.name, "visual.ln_pre.bias"), "%s", r.name);
  TH_OK(cc_name_hf_to_openai("vision_model.encoder.layers.123.mlp.fc2.weight", &r));
  th_assert("deep layer index kept", !strcmp(r.name, "visual.transformer.resblocks.123.mlp.c_proj.weight"), "%s",
            r.name);

  /* detection */
  const char *names[1024];
  for (size_t i = 0; i < noa; i++) names[i] = oa[i].name;
  th_assert("detect OpenAI", cc_names_detect(names, noa) == CC_NAMING_OPENAI, "%s",
            cc_naming_name(cc_names_detect(names, noa)));
  for (size_t i = 0; i < nhf; i++) names[i] = hf[i].name;
  th_assert("detect HF", cc_names_detect(names, nhf) == CC_NAMING_HF, "%s",
            cc_naming_name(cc_names_detect(names, nhf)));
  names[nhf] = "visual.proj";
  th_assert("detect a mix", cc_names_detect(names, nhf + 1) == CC_NAMING_MIXED, NULL);
  const char *neutral[] = {"logit_scale", "module.visual.proj", "something.else"};
  th_assert("detect nothing known", cc_names_detect(neutral, 3) == CC_NAMING_UNKNOWN, NULL);
  const char *with_extra[] = {"logit_scale", "visual.proj", "unknown.tensor"};
  th_assert("unknown names do not vote", cc_names_detect(with_extra, 3) == CC_NAMING_OPENAI, NULL);
  cc_fail(CLIPCL_ERR_IO, "sentinel message");
  cc_name_kind("nonsense");
  th_assert("detection leaves the last error alone", !strcmp(clipcl_last_error(), "sentinel message"), "%s",
            clipcl_last_error());

  /* refusals */
  char longname[300];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  memcpy(longname, "vision_model.encoder.layers.1.", 30);
  const char *bad_hf[] = {"",
                          "vision_model.encoder.layers.01.mlp.fc1.weight",
                          "vision_model.encoder.layers..mlp.fc1.weight",
                          "vision_model.encoder.layers.1234567.mlp.fc1.weight",
                          "vision_model.encoder.layers.-1.mlp.fc1.weight",
                          "text_model.encoder.layers.3.mlp.fc3.weight",
                          "text_model.encoder.layers.3.self_attn.qkv_proj.weight",
                          "visual.proj",
                          "vision_model.pre_layernorm.weight",
                          "module.text_projection.weight",
                          "text_projection.weight.extra",
                          "bad\nname\x1b[0m",
                          longname};
  for (size_t i = 0; i < sizeof bad_hf / sizeof *bad_hf; i++) {
    char name[64];
    snprintf(name, sizeof name, "unknown HF name %zu", i);
    tu_check_fail(name, cc_name_hf_to_openai(bad_hf[i], &r), CLIPCL_ERR_FORMAT, NULL, "unknown HF");
  }
  const char *bad_oa[] = {"", "visual.transformer.resblocks.x.ln_1.weight", "transformer.resblocks.2.attn.in_proj",
                          "visual_projection.weight", "module.visual.proj", "visual.transformer.resblocks.02.ln_1.bias",
                          "visual.ln_pre"};
  for (size_t i = 0; i < sizeof bad_oa / sizeof *bad_oa; i++) {
    char name[64];
    cc_name_map m[3];
    int cnt = 9;
    snprintf(name, sizeof name, "unknown OpenAI name %zu", i);
    tu_check_fail(name, cc_name_openai_to_hf(bad_oa[i], m, &cnt), CLIPCL_ERR_FORMAT, NULL, "unknown OpenAI");
    th_assert(name, cnt == 0, "count %d", cnt);
  }
  free(oa);
  free(hf);
  return th_finish(NULL);
}

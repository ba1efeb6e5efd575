/* fuzz_config.c: open_clip model config JSON (clipcl_config_parse: keys
 * that ask for unsupported towers, types, ranges, validation), from memory
 * and from a file (clipcl_config_get, with its size limit). A config that
 * parses must count its parameters, print, and parse back to itself. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fz_strdup(data, size);
  clipcl_config c;
  clipcl_status st = clipcl_config_parse(text, "fuzz.json", &c);
  fz_check(st, "clipcl_config_parse");
  if (st == CLIPCL_OK) {
    fz_check(clipcl_config_validate(&c, "parsed"), "clipcl_config_validate");
    if (clipcl_config_num_params(&c) == 0) abort();
    char *js = clipcl_config_to_json(&c);
    if (!js) abort();
    clipcl_config d;
    fz_check(clipcl_config_parse(js, "roundtrip.json", &d), "clipcl_config_parse (round trip)");
    memcpy(d.name, c.name, sizeof d.name);
    if (memcmp(&c, &d, sizeof c) != 0) abort();
    free(js);
  }
  free(text);
  const char *path = fz_write(0, "cfg.json", data, size);
  st = clipcl_config_get(path, &c);
  fz_check(st, "clipcl_config_get");
  return 0;
}

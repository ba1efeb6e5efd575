/* text_tables.h: the generated character tables behind the tokenizer's text
 * cleaning (html_entities.c, unicode_tables.c, both written by
 * tests/tools/gen_text_tables.py from the reference Python) and small lookup
 * helpers. Holds no cleaning logic; that is clean.c. */
#ifndef CC_TEXT_TABLES_H
#define CC_TEXT_TABLES_H
#include <stddef.h>
#include <stdint.h>

/* one code point mapped to n (0..3) code points; arrays sorted by cp */
typedef struct {
  uint32_t cp;
  uint8_t n;
  uint32_t to[3];
} cc_cp_map;

/* inclusive code point range; arrays sorted and disjoint */
typedef struct {
  uint32_t lo, hi;
} cc_cp_range;

/* named character reference without the '&' (";" included when the name
 * has one); arrays sorted by strcmp on name */
typedef struct {
  const char *name;
  uint8_t n;
  uint32_t to[3];
} cc_entity;

extern const cc_entity cc_html5_entities[];
extern const size_t cc_html5_entities_n;
extern const cc_entity cc_ftfy_upper_entities[];
extern const size_t cc_ftfy_upper_entities_n;

extern const cc_cp_map cc_lower_map[];
extern const size_t cc_lower_map_n;
extern const cc_cp_range cc_case_ignorable[];
extern const size_t cc_case_ignorable_n;
extern const cc_cp_range cc_cased[]; /* cased and not case-ignorable */
extern const size_t cc_cased_n;
extern const cc_cp_map cc_width_map[];
extern const size_t cc_width_map_n;
extern const cc_cp_map cc_ligature_map[];
extern const size_t cc_ligature_map_n;
extern const uint32_t cc_c1_map[32]; /* U+0080..U+009F as Windows-1252 */

/* PCRE2 character-class fragments (\x{..} items) for the split regex */
extern const char cc_regex_extra_letters[];
extern const char cc_regex_extra_numbers[];
extern const char cc_regex_dropped[];

const cc_cp_map *cc_cp_map_find(const cc_cp_map *m, size_t n, uint32_t cp);
int cc_cp_in_ranges(const cc_cp_range *r, size_t n, uint32_t cp);
/* name is `len` bytes, not NUL-terminated */
const cc_entity *cc_entity_find(const cc_entity *e, size_t n, const char *name, size_t len);
#endif

/* ref_fixture.h: reader for the .fx parity fixtures written by
 * tests/tools/make_train_fixtures.py (format described there): named float32
 * arrays with shapes. The whole file is read and bounds-checked up front. */
#ifndef REF_FIXTURE_H
#define REF_FIXTURE_H
#include <stddef.h>

typedef struct fx_file fx_file;
/* NULL (with a message on stderr) when the file is missing or malformed. */
fx_file *fx_open(const char *path);
/* The array called name, its element count in *n (may be NULL); NULL when
 * absent. Data stay valid until fx_close. */
const float *fx_get(const fx_file *f, const char *name, size_t *n);
void fx_close(fx_file *f);
#endif

/* kernels.h: the table of OpenCL sources embedded at build time from
 * kernels/<name>.cl (see cmake/embed_kernels.cmake). */
#ifndef CC_KERNELS_H
#define CC_KERNELS_H
#include <stddef.h>
typedef struct {
  const char *name; /* file name, e.g. "gemm.cl" */
  const char *text;
  size_t len;
} cc_kernel_source;
extern const cc_kernel_source cc_kernel_sources[]; /* NULL-terminated */
#endif

/* runtime.h: the internal OpenCL runtime every op is written against.
 *
 * Holds: the opened device (context + one in-order queue), program build from
 * embedded kernels with an on-disk binary cache, a kernel lookup table, launch
 * helpers, views into buffers, a bump-allocated buffer arena, scratch buffers,
 * and optional per-kernel profiling. Not here: the ops themselves (src/ops/)
 * and GEMM backend choice (src/ops/gemm.c).
 *
 * Views: a tensor is (cl_mem, element offset), never a sub-buffer, so kernels
 * take `__global float *x, ulong x_off` pairs (CLBlast's convention). Elements
 * are 4 bytes (float or int).
 */
#ifndef CC_RUNTIME_H
#define CC_RUNTIME_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <stddef.h>

#include "clipcl.h"
#include "util/error.h"

typedef struct clipcl_device cc_rt;

typedef struct {
  cl_mem buf;
  cl_ulong off; /* in 4-byte elements */
} cc_view;

static inline cc_view cc_at(cc_view v, size_t elems) {
  v.off += elems;
  return v;
}
static inline size_t cc_round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

/* ---- errors ------------------------------------------------------------- */
const char *cc_cl_error_name(cl_int err);
/* "OpenCL error CL_X (-n) in <call> while <what...>" */
clipcl_status cc_cl_fail(cl_int err, const char *call, const char *what_fmt, ...) CC_PRINTF(3, 4);
#define CC_CL(call_expr, ...)                                                  \
  do {                                                                         \
    cl_int cc_cl_e_ = (call_expr);                                             \
    if (cc_cl_e_ != CL_SUCCESS) return cc_cl_fail(cc_cl_e_, #call_expr, __VA_ARGS__); \
  } while (0)

/* ---- kernels ------------------------------------------------------------ */
typedef struct cc_kernel cc_kernel;

/* Finds or builds kernel `name` from kernels/<file> compiled with `defines`
 * (e.g. "-DTM=12 -DTN=32"; NULL for none). Cached for the device's lifetime. */
clipcl_status cc_kernel_get(cc_rt *rt, const char *file, const char *name,
                            const char *defines, cc_kernel **out);
/* Builds (or loads from cache) the program of one kernel file. */
clipcl_status cc_program_build(cc_rt *rt, const char *file, const char *defines);

typedef struct {
  size_t size;
  const void *ptr;
} cc_arg;
#define CC_MEM(m) ((cc_arg){sizeof(cl_mem), &(cl_mem){(m)}})
#define CC_INT(x) ((cc_arg){sizeof(cl_int), &(cl_int){(cl_int)(x)}})
#define CC_UINT(x) ((cc_arg){sizeof(cl_uint), &(cl_uint){(cl_uint)(x)}})
#define CC_ULONG(x) ((cc_arg){sizeof(cl_ulong), &(cl_ulong){(cl_ulong)(x)}})
#define CC_FLOAT(x) ((cc_arg){sizeof(cl_float), &(cl_float){(cl_float)(x)}})
#define CC_LOCAL(bytes) ((cc_arg){(bytes), NULL})
/* A view is two kernel arguments: the buffer and the element offset. */
#define CC_VIEW(v) CC_MEM((v).buf), CC_ULONG((v).off)

/* Sets the arguments and enqueues. lws may be NULL (driver's choice). */
clipcl_status cc_enqueue(cc_rt *rt, cc_kernel *k, cl_uint dims, const size_t *gws,
                         const size_t *lws, int nargs, const cc_arg *args);
#define CC_LAUNCH(rt, k, dims, gws, lws, ...)                                       \
  cc_enqueue((rt), (k), (dims), (gws), (lws),                                      \
             (int)(sizeof((cc_arg[]){__VA_ARGS__}) / sizeof(cc_arg)), (cc_arg[]){__VA_ARGS__})

/* ---- device state ------------------------------------------------------- */
cl_context cc_context(cc_rt *rt);
cl_command_queue cc_queue(cc_rt *rt);
const clipcl_device_info *cc_info(const cc_rt *rt);
/* CLIPCL_VW as a vector width (4, 8, 16), 0 when unset, -1 when invalid. */
int cc_forced_vector_width(void);
/* Records a profiling event (takes ownership) under `name`; no-op when off. */
void cc_profile_event(cc_rt *rt, const char *name, cl_event ev);
int cc_profiling(const cc_rt *rt);
/* The per-kernel totals so far, longest first (at most max), then reset;
 * 0 entries when profiling is off (CLIPCL_PROFILE unset at open). */
typedef struct {
  char name[64];
  double ns;
  long count;
} cc_profile_entry;
int cc_profile_take(cc_rt *rt, cc_profile_entry *out, int max);

/* Per-device state owned by one op family (e.g. resolved GEMM parameters),
 * released with the device through `destroy`. */
enum { CC_STATE_GEMM = 0, CC_STATE_MAX = 8 };
void *cc_state(cc_rt *rt, int slot);
void cc_set_state(cc_rt *rt, int slot, void *p, void (*destroy)(void *));

/* ---- memory ------------------------------------------------------------- */
clipcl_status cc_buffer(cc_rt *rt, size_t bytes, cl_mem *out, const char *what);
void cc_release(cl_mem m);
clipcl_status cc_write(cc_rt *rt, cc_view dst, const void *src, size_t elems);
clipcl_status cc_read(cc_rt *rt, cc_view src, void *dst, size_t elems); /* blocking */
clipcl_status cc_fill(cc_rt *rt, cc_view dst, size_t elems, float value);
clipcl_status cc_copy(cc_rt *rt, cc_view dst, cc_view src, size_t elems);
clipcl_status cc_finish(cc_rt *rt);

/* Scratch buffers owned by the runtime, grown on demand; `slot` < 8 keeps
 * concurrent users apart. Contents are undefined; valid until the next call
 * with the same slot (safe across kernels: the queue is in order). */
clipcl_status cc_scratch(cc_rt *rt, int slot, size_t bytes, cl_mem *out);

/* Arena: one category of tensors (parameters, gradients, activations). Views
 * are bump-allocated, aligned to 16 elements; a new block is opened when the
 * current one is full, each block within the device's max allocation.
 * A counting arena (rt NULL, from cc_arena_init_count) allocates nothing: it
 * lays the blocks out exactly as a real one would, so the memory a batch
 * needs can be known before anything is allocated (src/model/memory.c). */
typedef struct {
  cc_rt *rt;
  char name[32];
  int nblocks;
  cl_mem blocks[64];
  size_t used[64], cap[64]; /* elements */
  size_t block_elems;       /* preferred block size */
  uint64_t max_alloc;       /* bytes per buffer the device allows */
} cc_arena;
clipcl_status cc_arena_init(cc_arena *a, cc_rt *rt, const char *name, size_t expected_elems);
clipcl_status cc_arena_init_count(cc_arena *a, const char *name, size_t expected_elems, uint64_t max_alloc);
/* Bytes of all its blocks, and of the largest one. */
uint64_t cc_arena_bytes(const cc_arena *a, uint64_t *largest);
clipcl_status cc_arena_alloc(cc_arena *a, size_t elems, cc_view *out);
void cc_arena_free(cc_arena *a);

#endif

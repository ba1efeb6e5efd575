/* runtime.c: device enumeration and opening, program build with an on-disk
 * binary cache, kernel table, launches, profiling, buffers, arena, scratch. */
#include "cl/runtime.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cl/kernels.h"
#include "util/mem.h"

#define CC_MAX_PROGRAMS 64
#define CC_MAX_KERNELS 256
#define CC_MAX_PROF 128

struct cc_kernel {
  cl_kernel k;
  uint64_t key;
  char name[64];
};

typedef struct {
  uint64_t key;
  cl_program prog;
} cc_program;

typedef struct {
  char name[64];
  double ns;
  long count;
} cc_prof_entry;

struct clipcl_device {
  clipcl_device_info info;
  cl_platform_id platform;
  cl_device_id device;
  cl_context ctx;
  cl_command_queue queue;
  int nprog, nkern;
  cc_program progs[CC_MAX_PROGRAMS];
  cc_kernel kerns[CC_MAX_KERNELS];
  cl_mem scratch[8];
  size_t scratch_bytes[8];
  void *state[CC_STATE_MAX];
  void (*state_free[CC_STATE_MAX])(void *);
  /* profiling */
  int profile;
  int npend;
  cl_event pend_ev[1024];
  int pend_id[1024];
  int nprof;
  cc_prof_entry prof[CC_MAX_PROF];
  /* told before a program is compiled from source (a binary-cache miss) */
  clipcl_build_fn on_build;
  void *on_build_user;
};

cl_context cc_context(cc_rt *rt) { return rt->ctx; }
cl_command_queue cc_queue(cc_rt *rt) { return rt->queue; }
const clipcl_device_info *cc_info(const cc_rt *rt) { return &rt->info; }
int cc_profiling(const cc_rt *rt) { return rt->profile; }

void *cc_state(cc_rt *rt, int slot) { return slot >= 0 && slot < CC_STATE_MAX ? rt->state[slot] : NULL; }

void cc_set_state(cc_rt *rt, int slot, void *p, void (*destroy)(void *)) {
  if (slot < 0 || slot >= CC_STATE_MAX) return;
  if (rt->state[slot] && rt->state_free[slot]) rt->state_free[slot](rt->state[slot]);
  rt->state[slot] = p;
  rt->state_free[slot] = destroy;
}

/* ---- enumeration -------------------------------------------------------- */

typedef struct {
  cl_platform_id p;
  cl_device_id d;
  int pi, di;
} cc_devref;

static clipcl_status list_devices(cc_devref *out, int max, int *count) {
  cl_uint np = 0;
  *count = 0;
  cl_int e = clGetPlatformIDs(0, NULL, &np);
  if (e == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || np == 0) return CLIPCL_OK;
  CC_CL(e, "listing OpenCL platforms");
  cl_platform_id plats[16];
  if (np > 16) np = 16;
  CC_CL(clGetPlatformIDs(np, plats, NULL), "listing OpenCL platforms");
  for (cl_uint p = 0; p < np; p++) {
    cl_uint nd = 0;
    e = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd);
    if (e == CL_DEVICE_NOT_FOUND || nd == 0) continue;
    CC_CL(e, "listing devices of platform %u", p);
    cl_device_id devs[32];
    if (nd > 32) nd = 32;
    CC_CL(clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, devs, NULL),
          "listing devices of platform %u", p);
    for (cl_uint d = 0; d < nd && *count < max; d++) {
      out[*count] = (cc_devref){plats[p], devs[d], (int)p, (int)d};
      (*count)++;
    }
  }
  return CLIPCL_OK;
}

static clipcl_status fill_info(const cc_devref *r, int index, clipcl_device_info *in) {
  memset(in, 0, sizeof *in);
  in->index = index;
  in->platform_index = r->pi;
  in->device_index = r->di;
  cl_device_type type;
  cl_uint cu;
  cl_ulong gm, ma, lm;
  size_t wg;
  char ext[8192];
  CC_CL(clGetDeviceInfo(r->d, CL_DEVICE_NAME, sizeof in->name, in->name, NULL), "querying device name");
  CC_CL(clGetDeviceInfo(r->d, CL_DEVICE_VENDOR, sizeof in->vendor, in->vendor, NULL), "querying device vendor");
  CC_CL(clGetDeviceInfo(r->d, CL_DEVICE_VERSION, sizeof in->version, in->version, NULL), "querying device version");
  CC_CL(clGetDeviceInfo(r->d, CL_DRIVER_VERSION, sizeof in->driver, in->driver, NULL), "querying driver version");
  CC_CL(clGetPlatformInfo(r->p, CL_PLATFORM_NAME, sizeof in->platform, in->platform, NULL), "querying platform name");
  CC_CL(clGetDeviceInfo(r->d, CL_DEVICE_TYPE, sizeof type, &type, NULL), "querying device type");
  CC_CL(clGetDeviceInfo(r->d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL), "querying compute units");
  CC_CL(clGetDeviceInfo(r->d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gm, &gm, NULL), "querying global memory");
  CC_CL(clGetDeviceInfo(r->d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof ma, &ma, NULL), "querying max allocation");
  CC_CL(clGetDeviceInfo(r->d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof lm, &lm, NULL), "querying local memory");
  CC_CL(clGetDeviceInfo(r->d, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL), "querying work-group size");
  ext[0] = 0;
  CC_CL(clGetDeviceInfo(r->d, CL_DEVICE_EXTENSIONS, sizeof ext, ext, NULL), "querying extensions");
  in->compute_units = (int)cu;
  in->global_mem = gm;
  in->max_alloc = ma;
  in->local_mem = lm;
  in->max_work_group = wg;
  in->fp16 = strstr(ext, "cl_khr_fp16") != NULL;
  in->fp64 = strstr(ext, "cl_khr_fp64") != NULL;
  in->is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
  in->is_gpu = (type & CL_DEVICE_TYPE_GPU) != 0;
  /* The kernels' vector width (kernels/prelude.cl): CLIPCL_VW, else the
   * device's preferred float width (PoCL: 16 with AVX-512, 8 with AVX2). */
  cl_uint pw = 0;
  if (clGetDeviceInfo(r->d, CL_DEVICE_PREFERRED_VECTOR_WIDTH_FLOAT, sizeof pw, &pw, NULL) != CL_SUCCESS) pw = 4;
  in->vector_width = pw >= 16 ? 16 : pw >= 8 ? 8 : 4;
  int forced = cc_forced_vector_width();
  if (forced > 0) in->vector_width = forced;
  return CLIPCL_OK;
}

int cc_forced_vector_width(void) {
  const char *e = getenv("CLIPCL_VW");
  if (!e || !*e) return 0;
  if (!strcmp(e, "4") || !strcmp(e, "8") || !strcmp(e, "16")) return atoi(e);
  return -1;
}

clipcl_status clipcl_device_count(int *count) {
  cc_devref refs[64];
  return list_devices(refs, 64, count);
}

clipcl_status clipcl_device_query(int index, clipcl_device_info *info) {
  cc_devref refs[64];
  int n;
  CC_TRY(list_devices(refs, 64, &n));
  if (index < 0 || index >= n)
    return cc_fail(CLIPCL_ERR_ARG, "no OpenCL device %d (found %d)", index, n);
  return fill_info(&refs[index], index, info);
}

static int ci_contains(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (const char *h = hay; *h; h++) {
    size_t i = 0;
    while (i < n && h[i] && tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i])) i++;
    if (i == n) return 1;
  }
  return n == 0;
}

static clipcl_status pick_device(const char *spec, cc_devref *refs, int n, int *pick) {
  const char *src = "argument";
  if (!spec || !*spec) {
    spec = getenv("CLIPCL_DEVICE");
    src = "CLIPCL_DEVICE";
  }
  if (n == 0)
    return cc_fail(CLIPCL_ERR_UNSUPPORTED,
                   "no OpenCL device found (is an ICD such as pocl-opencl-icd installed?)");
  if (!spec || !*spec) {
    for (int i = 0; i < n; i++) {
      cl_device_type t;
      if (clGetDeviceInfo(refs[i].d, CL_DEVICE_TYPE, sizeof t, &t, NULL) == CL_SUCCESS &&
          (t & CL_DEVICE_TYPE_GPU)) {
        *pick = i;
        return CLIPCL_OK;
      }
    }
    *pick = 0;
    return CLIPCL_OK;
  }
  char *end;
  long a = strtol(spec, &end, 10);
  if (end != spec && *end == 0) {
    if (a < 0 || a >= n)
      return cc_fail(CLIPCL_ERR_ARG, "device %ld (from %s) out of range: %d device(s)", a, src, n);
    *pick = (int)a;
    return CLIPCL_OK;
  }
  if (end != spec && *end == ':') {
    long b = strtol(end + 1, &end, 10);
    if (*end == 0) {
      for (int i = 0; i < n; i++)
        if (refs[i].pi == a && refs[i].di == b) {
          *pick = i;
          return CLIPCL_OK;
        }
      return cc_fail(CLIPCL_ERR_ARG, "no device %ld:%ld (from %s)", a, b, src);
    }
  }
  for (int i = 0; i < n; i++) {
    char name[256] = "";
    clGetDeviceInfo(refs[i].d, CL_DEVICE_NAME, sizeof name, name, NULL);
    if (ci_contains(name, spec)) {
      *pick = i;
      return CLIPCL_OK;
    }
  }
  return cc_fail(CLIPCL_ERR_ARG, "no device matches \"%s\" (from %s); see `clipcl devices`", spec, src);
}

clipcl_status clipcl_device_open(const char *spec, clipcl_device **out) {
  *out = NULL;
  cc_devref refs[64];
  int n = 0, pick = 0;
  CC_TRY(list_devices(refs, 64, &n));
  CC_TRY(pick_device(spec, refs, n, &pick));
  if (cc_forced_vector_width() < 0)
    return cc_fail(CLIPCL_ERR_ARG, "CLIPCL_VW=%s: expected 4, 8 or 16 (the kernels' float vector width)",
                   getenv("CLIPCL_VW"));
  cc_rt *rt = calloc(1, sizeof *rt);
  if (!rt) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory opening device");
  clipcl_status s = fill_info(&refs[pick], pick, &rt->info);
  if (s) {
    free(rt);
    return s;
  }
  rt->platform = refs[pick].p;
  rt->device = refs[pick].d;
  const char *pe = getenv("CLIPCL_PROFILE");
  rt->profile = pe && *pe && strcmp(pe, "0") != 0;
  cl_int e;
  cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)rt->platform, 0};
  rt->ctx = clCreateContext(props, 1, &rt->device, NULL, NULL, &e);
  if (e != CL_SUCCESS) {
    free(rt);
    return cc_cl_fail(e, "clCreateContext", "opening device %s", refs[pick].d ? "" : "?");
  }
  rt->queue = clCreateCommandQueue(rt->ctx, rt->device,
                                   rt->profile ? CL_QUEUE_PROFILING_ENABLE : 0, &e);
  if (e != CL_SUCCESS) {
    clReleaseContext(rt->ctx);
    free(rt);
    return cc_cl_fail(e, "clCreateCommandQueue", "opening device %d", pick);
  }
  *out = rt;
  return CLIPCL_OK;
}

clipcl_status clipcl_device_get_info(const clipcl_device *dev, clipcl_device_info *info) {
  *info = dev->info;
  return CLIPCL_OK;
}

static void profile_collect(cc_rt *rt);

void clipcl_device_free(clipcl_device *rt) {
  if (!rt) return;
  if (rt->queue) clFinish(rt->queue);
  profile_collect(rt);
  for (int i = 0; i < 8; i++) cc_release(rt->scratch[i]);
  for (int i = 0; i < CC_STATE_MAX; i++)
    if (rt->state[i] && rt->state_free[i]) rt->state_free[i](rt->state[i]);
  for (int i = 0; i < rt->nkern; i++) clReleaseKernel(rt->kerns[i].k);
  for (int i = 0; i < rt->nprog; i++) clReleaseProgram(rt->progs[i].prog);
  if (rt->queue) clReleaseCommandQueue(rt->queue);
  if (rt->ctx) clReleaseContext(rt->ctx);
  free(rt);
}

/* ---- program build and binary cache ------------------------------------- */

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}
static uint64_t fnv_str(uint64_t h, const char *s) { return fnv1a(h, s ? s : "", s ? strlen(s) + 1 : 1); }
#define FNV_INIT 14695981039346656037ull

/* Reads kernels/<file>: from CLIPCL_KERNEL_DIR when set (development), else
 * from the table embedded at build time. Returns malloc'd text. */
static clipcl_status kernel_text(const char *file, char **text, size_t *len) {
  const char *dir = getenv("CLIPCL_KERNEL_DIR");
  if (dir && *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "rb");
    if (!f) return cc_fail(CLIPCL_ERR_IO, "%s: cannot open kernel source (CLIPCL_KERNEL_DIR)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) {
      fclose(f);
      free(b);
      return cc_fail(CLIPCL_ERR_IO, "%s: cannot read kernel source", path);
    }
    fclose(f);
    b[n] = 0;
    *text = b;
    *len = (size_t)n;
    return CLIPCL_OK;
  }
  for (const cc_kernel_source *k = cc_kernel_sources; k->name; k++) {
    if (strcmp(k->name, file) == 0) {
      char *b = malloc(k->len + 1);
      if (!b) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
      memcpy(b, k->text, k->len);
      b[k->len] = 0;
      *text = b;
      *len = k->len;
      return CLIPCL_OK;
    }
  }
  return cc_fail(CLIPCL_ERR_ARG, "kernels/%s: no such embedded kernel file", file);
}

#define PRELUDE "prelude.cl"

/* The source a program is built from: kernels/prelude.cl (the vector type),
 * then the file itself, its line numbers restored for build logs. */
static clipcl_status kernel_source(const char *file, char **text, size_t *len) {
  if (!strcmp(file, PRELUDE)) return kernel_text(file, text, len);
  char *pre, *body;
  size_t np, nb;
  CC_TRY(kernel_text(PRELUDE, &pre, &np));
  clipcl_status s = kernel_text(file, &body, &nb);
  if (s) {
    free(pre);
    return s;
  }
  char line[300];
  int nl = snprintf(line, sizeof line, "\n#line 1 \"%s\"\n", file);
  char *b = malloc(np + (size_t)nl + nb + 1);
  if (b) {
    memcpy(b, pre, np);
    memcpy(b + np, line, (size_t)nl);
    memcpy(b + np + nl, body, nb + 1);
    *len = np + (size_t)nl + nb;
  }
  free(pre);
  free(body);
  if (!b) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
  *text = b;
  return CLIPCL_OK;
}

static int cache_dir(char *out, size_t n) {
  const char *d = getenv("CLIPCL_CACHE_DIR");
  if (d && strcmp(d, "off") == 0) return 0;
  if (d && *d) {
    snprintf(out, n, "%s", d);
  } else if ((d = getenv("XDG_CACHE_HOME")) && *d) {
    snprintf(out, n, "%s/clipcl", d);
  } else if ((d = getenv("HOME")) && *d) {
    char base[4000];
    snprintf(base, sizeof base, "%s/.cache", d);
    mkdir(base, 0755);
    snprintf(out, n, "%s/clipcl", base);
  } else {
    return 0;
  }
  mkdir(out, 0755);
  return 1;
}

static unsigned char *read_cache(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = n > 0 ? malloc((size_t)n) : NULL;
  if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    b = NULL;
  }
  fclose(f);
  *len = (size_t)(n > 0 ? n : 0);
  return b;
}

static void write_cache(cl_program prog, const char *path) {
  size_t sz = 0;
  if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof sz, &sz, NULL) != CL_SUCCESS || !sz) return;
  unsigned char *b = malloc(sz);
  if (!b) return;
  unsigned char *ptrs[1] = {b};
  if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof ptrs, ptrs, NULL) == CL_SUCCESS) {
    char tmp[4400];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
      free(b);
      return;
    }
    FILE *f = fopen(tmp, "wb");
    if (f) {
      int ok = fwrite(b, 1, sz, f) == sz;
      ok &= fclose(f) == 0;
      if (ok) rename(tmp, path);
      else remove(tmp);
    }
  }
  free(b);
}

static clipcl_status build_log_fail(cc_rt *rt, cl_program prog, const char *file, cl_int e) {
  size_t n = 0;
  clGetProgramBuildInfo(prog, rt->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n);
  char *log = malloc(n + 1);
  if (log) {
    log[0] = 0;
    clGetProgramBuildInfo(prog, rt->device, CL_PROGRAM_BUILD_LOG, n, log, NULL);
    log[n] = 0;
    /* trim trailing whitespace */
    while (n > 0 && (log[n - 1] == 0 || isspace((unsigned char)log[n - 1]))) log[--n] = 0;
  }
  clipcl_status s = cc_fail(CLIPCL_ERR_BUILD, "kernels/%s: build failed on %s (%s):\n%s", file,
                            rt->info.name, cc_cl_error_name(e), log && *log ? log : "(empty build log)");
  free(log);
  return s;
}

static clipcl_status program_get(cc_rt *rt, const char *file, const char *defines, cl_program *out) {
  char opts[1024];
  /* CLIPCL_KERNEL_WERROR=1: compiler warnings fail the build (the test that
   * keeps the kernels warning-free sets it) */
  const char *we = getenv("CLIPCL_KERNEL_WERROR");
  snprintf(opts, sizeof opts, "-cl-std=CL1.2 -DVW=%d%s %s", rt->info.vector_width,
           we && *we && strcmp(we, "0") ? " -Werror" : "", defines ? defines : "");
  const char *kdir = getenv("CLIPCL_KERNEL_DIR");
  uint64_t key = fnv_str(fnv_str(fnv_str(FNV_INIT, file), opts), kdir);
  for (int i = 0; i < rt->nprog; i++)
    if (rt->progs[i].key == key) {
      *out = rt->progs[i].prog;
      return CLIPCL_OK;
    }
  if (rt->nprog == CC_MAX_PROGRAMS) return cc_fail(CLIPCL_ERR_NOMEM, "too many kernel programs");
  char *src = NULL;
  size_t len = 0;
  CC_TRY(kernel_source(file, &src, &len));
  /* The disk cache is keyed by everything that changes the binary. */
  uint64_t h = fnv_str(FNV_INIT, rt->info.platform);
  h = fnv_str(h, rt->info.name);
  h = fnv_str(h, rt->info.version);
  h = fnv_str(h, rt->info.driver);
  h = fnv_str(h, opts);
  h = fnv1a(h, src, len);
  char dir[4096], path[4200];
  int use_cache = cache_dir(dir, sizeof dir);
  if (use_cache) snprintf(path, sizeof path, "%s/%016llx.bin", dir, (unsigned long long)h);
  cl_program prog = NULL;
  cl_int e;
  if (use_cache) {
    size_t blen;
    unsigned char *bin = read_cache(path, &blen);
    if (bin) {
      const unsigned char *bins[1] = {bin};
      cl_int bstat;
      prog = clCreateProgramWithBinary(rt->ctx, 1, &rt->device, &blen, bins, &bstat, &e);
      free(bin);
      if (e == CL_SUCCESS && bstat == CL_SUCCESS &&
          clBuildProgram(prog, 1, &rt->device, opts, NULL, NULL) == CL_SUCCESS) {
        use_cache = 0; /* loaded: no need to write back */
      } else {
        if (prog) clReleaseProgram(prog);
        prog = NULL;
        remove(path); /* stale or foreign: rebuild from source */
      }
    }
  }
  if (!prog) {
    if (rt->on_build) rt->on_build(rt->on_build_user, file, use_cache ? dir : NULL);
    const char *srcs[1] = {src};
    prog = clCreateProgramWithSource(rt->ctx, 1, srcs, &len, &e);
    if (e != CL_SUCCESS) {
      free(src);
      return cc_cl_fail(e, "clCreateProgramWithSource", "loading kernels/%s", file);
    }
    e = clBuildProgram(prog, 1, &rt->device, opts, NULL, NULL);
    if (e != CL_SUCCESS) {
      clipcl_status s = build_log_fail(rt, prog, file, e);
      clReleaseProgram(prog);
      free(src);
      return s;
    }
    if (use_cache) write_cache(prog, path);
  }
  free(src);
  rt->progs[rt->nprog++] = (cc_program){key, prog};
  *out = prog;
  return CLIPCL_OK;
}

clipcl_status cc_program_build(cc_rt *rt, const char *file, const char *defines) {
  cl_program p;
  return program_get(rt, file, defines, &p);
}

clipcl_status cc_kernel_get(cc_rt *rt, const char *file, const char *name, const char *defines,
                            cc_kernel **out) {
  uint64_t key = fnv_str(fnv_str(fnv_str(FNV_INIT, file), name), defines);
  for (int i = 0; i < rt->nkern; i++)
    if (rt->kerns[i].key == key) {
      *out = &rt->kerns[i];
      return CLIPCL_OK;
    }
  if (rt->nkern == CC_MAX_KERNELS) return cc_fail(CLIPCL_ERR_NOMEM, "too many kernels");
  cl_program prog;
  CC_TRY(program_get(rt, file, defines, &prog));
  cl_int e;
  cl_kernel k = clCreateKernel(prog, name, &e);
  if (e != CL_SUCCESS) return cc_cl_fail(e, "clCreateKernel", "creating kernel %s from kernels/%s", name, file);
  cc_kernel *kk = &rt->kerns[rt->nkern++];
  kk->k = k;
  kk->key = key;
  snprintf(kk->name, sizeof kk->name, "%s", name);
  *out = kk;
  return CLIPCL_OK;
}

void clipcl_device_set_build_callback(clipcl_device *rt, clipcl_build_fn fn, void *user) {
  if (!rt) return;
  rt->on_build = fn;
  rt->on_build_user = user;
}

clipcl_status clipcl_device_build_all(clipcl_device *rt) {
  for (const cc_kernel_source *k = cc_kernel_sources; k->name; k++)
    if (strcmp(k->name, PRELUDE)) CC_TRY(cc_program_build(rt, k->name, NULL));
  return CLIPCL_OK;
}

/* ---- launches and profiling --------------------------------------------- */

static int prof_slot(cc_rt *rt, const char *name) {
  for (int i = 0; i < rt->nprof; i++)
    if (strcmp(rt->prof[i].name, name) == 0) return i;
  if (rt->nprof == CC_MAX_PROF) return CC_MAX_PROF - 1;
  cc_prof_entry *p = &rt->prof[rt->nprof];
  snprintf(p->name, sizeof p->name, "%s", name);
  p->ns = 0; /* slots are reused after a report */
  p->count = 0;
  return rt->nprof++;
}

static void profile_collect(cc_rt *rt) {
  if (!rt->npend) return;
  clWaitForEvents((cl_uint)rt->npend, rt->pend_ev);
  for (int i = 0; i < rt->npend; i++) {
    cl_ulong t0 = 0, t1 = 0;
    clGetEventProfilingInfo(rt->pend_ev[i], CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL);
    clGetEventProfilingInfo(rt->pend_ev[i], CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
    cc_prof_entry *p = &rt->prof[rt->pend_id[i]];
    p->ns += (double)(t1 - t0);
    p->count++;
    clReleaseEvent(rt->pend_ev[i]);
  }
  rt->npend = 0;
}

void cc_profile_event(cc_rt *rt, const char *name, cl_event ev) {
  if (!ev) return;
  if (!rt->profile) {
    clReleaseEvent(ev);
    return;
  }
  if (rt->npend == 1024) profile_collect(rt);
  rt->pend_id[rt->npend] = prof_slot(rt, name);
  rt->pend_ev[rt->npend++] = ev;
}

static int prof_cmp(const void *a, const void *b) {
  double x = ((const cc_prof_entry *)a)->ns, y = ((const cc_prof_entry *)b)->ns;
  return (x < y) - (x > y);
}

int cc_profile_take(cc_rt *rt, cc_profile_entry *out, int max) {
  if (!rt || !rt->profile) return 0;
  clFinish(rt->queue);
  profile_collect(rt);
  qsort(rt->prof, (size_t)rt->nprof, sizeof rt->prof[0], prof_cmp);
  int n = rt->nprof < max ? rt->nprof : max;
  for (int i = 0; i < n; i++) {
    snprintf(out[i].name, sizeof out[i].name, "%s", rt->prof[i].name);
    out[i].ns = rt->prof[i].ns;
    out[i].count = rt->prof[i].count;
  }
  rt->nprof = 0;
  return n;
}

void clipcl_device_profile_report(clipcl_device *rt, FILE *out) {
  if (!rt || !rt->profile) return;
  clFinish(rt->queue);
  profile_collect(rt);
  qsort(rt->prof, (size_t)rt->nprof, sizeof rt->prof[0], prof_cmp);
  double total = 0;
  for (int i = 0; i < rt->nprof; i++) total += rt->prof[i].ns;
  fprintf(out, "# CLIPCL_PROFILE: device time per kernel on %s\n", rt->info.name);
  fprintf(out, "%-32s %10s %12s %10s %6s\n", "kernel", "calls", "total_ms", "mean_us", "share");
  for (int i = 0; i < rt->nprof; i++) {
    const cc_prof_entry *p = &rt->prof[i];
    fprintf(out, "%-32s %10ld %12.3f %10.2f %5.1f%%\n", p->name, p->count, p->ns / 1e6,
            p->ns / 1e3 / (double)(p->count ? p->count : 1), total > 0 ? 100.0 * p->ns / total : 0.0);
  }
  fprintf(out, "%-32s %10s %12.3f\n", "total", "", total / 1e6);
  /* Totals are reported once. */
  rt->nprof = 0;
}

clipcl_status cc_enqueue(cc_rt *rt, cc_kernel *k, cl_uint dims, const size_t *gws, const size_t *lws,
                         int nargs, const cc_arg *args) {
  for (int i = 0; i < nargs; i++)
    CC_CL(clSetKernelArg(k->k, (cl_uint)i, args[i].size, args[i].ptr), "setting argument %d of kernel %s", i,
          k->name);
  for (cl_uint d = 0; d < dims; d++)
    if (gws[d] == 0) return CLIPCL_OK; /* empty launch */
  cl_event ev = NULL;
  CC_CL(clEnqueueNDRangeKernel(rt->queue, k->k, dims, NULL, gws, lws, 0, NULL, rt->profile ? &ev : NULL),
        "running kernel %s (global %zu x %zu x %zu)", k->name, gws[0], dims > 1 ? gws[1] : 1,
        dims > 2 ? gws[2] : 1);
  cc_profile_event(rt, k->name, ev);
  return CLIPCL_OK;
}

/* ---- memory ------------------------------------------------------------- */

/* The one-line refusal of a buffer over the device's per-buffer limit. */
static clipcl_status too_big(const char *what, uint64_t bytes, uint64_t max_alloc, uint64_t global_mem) {
  char b[32], m[32], g[48] = "";
  if (global_mem) snprintf(g, sizeof g, " (device memory %s)", cc_fmt_bytes(b, sizeof b, global_mem));
  return cc_fail(CLIPCL_ERR_NOMEM, "allocating %s: %s in one buffer is over the device's limit of %s per buffer%s",
                 what, cc_fmt_bytes(b, sizeof b, bytes), cc_fmt_bytes(m, sizeof m, max_alloc), g);
}

clipcl_status cc_buffer(cc_rt *rt, size_t bytes, cl_mem *out, const char *what) {
  *out = NULL;
  if (bytes == 0) bytes = 16;
  if (bytes > rt->info.max_alloc) return too_big(what, bytes, rt->info.max_alloc, rt->info.global_mem);
  cl_int e;
  *out = clCreateBuffer(rt->ctx, CL_MEM_READ_WRITE, bytes, NULL, &e);
  if (e != CL_SUCCESS) {
    char b[32], g[32];
    return cc_cl_fail(e, "clCreateBuffer", "allocating %s for %s (device memory %s)", cc_fmt_bytes(b, sizeof b, bytes),
                      what, cc_fmt_bytes(g, sizeof g, rt->info.global_mem));
  }
  return CLIPCL_OK;
}

void cc_release(cl_mem m) {
  if (m) clReleaseMemObject(m);
}

clipcl_status cc_write(cc_rt *rt, cc_view dst, const void *src, size_t elems) {
  if (!elems) return CLIPCL_OK;
  CC_CL(clEnqueueWriteBuffer(rt->queue, dst.buf, CL_TRUE, dst.off * 4, elems * 4, src, 0, NULL, NULL),
        "uploading %zu elements", elems);
  return CLIPCL_OK;
}

clipcl_status cc_read(cc_rt *rt, cc_view src, void *dst, size_t elems) {
  if (!elems) return CLIPCL_OK;
  CC_CL(clEnqueueReadBuffer(rt->queue, src.buf, CL_TRUE, src.off * 4, elems * 4, dst, 0, NULL, NULL),
        "downloading %zu elements", elems);
  return CLIPCL_OK;
}

clipcl_status cc_fill(cc_rt *rt, cc_view dst, size_t elems, float value) {
  if (!elems) return CLIPCL_OK;
  cl_event ev = NULL;
  CC_CL(clEnqueueFillBuffer(rt->queue, dst.buf, &value, sizeof value, dst.off * 4, elems * 4, 0, NULL,
                            rt->profile ? &ev : NULL),
        "filling %zu elements", elems);
  cc_profile_event(rt, "fill", ev);
  return CLIPCL_OK;
}

clipcl_status cc_copy(cc_rt *rt, cc_view dst, cc_view src, size_t elems) {
  if (!elems) return CLIPCL_OK;
  cl_event ev = NULL;
  CC_CL(clEnqueueCopyBuffer(rt->queue, src.buf, dst.buf, src.off * 4, dst.off * 4, elems * 4, 0, NULL,
                            rt->profile ? &ev : NULL),
        "copying %zu elements", elems);
  cc_profile_event(rt, "copy", ev);
  return CLIPCL_OK;
}

clipcl_status cc_finish(cc_rt *rt) {
  CC_CL(clFinish(rt->queue), "waiting for the device queue");
  profile_collect(rt);
  return CLIPCL_OK;
}

clipcl_status cc_scratch(cc_rt *rt, int slot, size_t bytes, cl_mem *out) {
  if (slot < 0 || slot >= 8) return cc_fail(CLIPCL_ERR_ARG, "scratch slot %d out of range", slot);
  if (rt->scratch_bytes[slot] < bytes) {
    cc_release(rt->scratch[slot]);
    rt->scratch[slot] = NULL;
    rt->scratch_bytes[slot] = 0;
    size_t want = bytes + bytes / 4; /* headroom: fewer regrowths */
    if (want > rt->info.max_alloc) want = bytes;
    CC_TRY(cc_buffer(rt, want, &rt->scratch[slot], "scratch"));
    rt->scratch_bytes[slot] = want;
  }
  *out = rt->scratch[slot];
  return CLIPCL_OK;
}

/* ---- arena --------------------------------------------------------------- */

static void arena_setup(cc_arena *a, cc_rt *rt, const char *name, size_t expected, uint64_t max_alloc) {
  memset(a, 0, sizeof *a);
  a->rt = rt;
  a->max_alloc = max_alloc;
  snprintf(a->name, sizeof a->name, "%s", name);
  size_t maxe = (size_t)(max_alloc / 4);
  a->block_elems = expected ? cc_round_up(expected, 16) : (1u << 20);
  if (a->block_elems > maxe) a->block_elems = maxe / 16 * 16;
}

clipcl_status cc_arena_init(cc_arena *a, cc_rt *rt, const char *name, size_t expected) {
  arena_setup(a, rt, name, expected, rt->info.max_alloc);
  return CLIPCL_OK;
}

clipcl_status cc_arena_init_count(cc_arena *a, const char *name, size_t expected, uint64_t max_alloc) {
  arena_setup(a, NULL, name, expected, max_alloc);
  return CLIPCL_OK;
}

uint64_t cc_arena_bytes(const cc_arena *a, uint64_t *largest) {
  uint64_t total = 0, big = 0;
  for (int i = 0; i < a->nblocks; i++) {
    uint64_t b = (uint64_t)a->cap[i] * 4;
    total += b;
    if (b > big) big = b;
  }
  if (largest) *largest = big;
  return total;
}

clipcl_status cc_arena_alloc(cc_arena *a, size_t elems, cc_view *out) {
  size_t need = cc_round_up(elems ? elems : 1, 16);
  int b = a->nblocks - 1;
  if (b < 0 || a->used[b] + need > a->cap[b]) {
    if (a->nblocks == 64) return cc_fail(CLIPCL_ERR_NOMEM, "arena %s: too many blocks", a->name);
    size_t cap = need > a->block_elems ? need : a->block_elems;
    char what[64];
    snprintf(what, sizeof what, "the %s", a->name);
    b = a->nblocks;
    if (a->rt) CC_TRY(cc_buffer(a->rt, cap * 4, &a->blocks[b], what));
    else if ((uint64_t)cap * 4 > a->max_alloc) return too_big(what, (uint64_t)cap * 4, a->max_alloc, 0);
    else a->blocks[b] = NULL; /* counting only */
    a->cap[b] = cap;
    a->used[b] = 0;
    a->nblocks++;
  }
  out->buf = a->blocks[b];
  out->off = a->used[b];
  a->used[b] += need;
  return CLIPCL_OK;
}

void cc_arena_free(cc_arena *a) {
  for (int i = 0; i < a->nblocks; i++) cc_release(a->blocks[i]);
  a->nblocks = 0;
}

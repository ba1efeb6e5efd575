/* gemm.c: cc_gemm and the ops built on it (linear layers, column sums).
 *
 * Backends, chosen per device (override: CLIPCL_GEMM=cpu|clblast|naive):
 *  - cpu:     the project's packed, register-tiled kernels (kernels/gemm.cl),
 *             the default on CPU devices, where CLBlast's GPU-shaped kernels
 *             run 4-20x slower;
 *  - clblast: CLBlast's tuned kernels, the default on GPUs;
 *  - naive:   one work-item per output element; a correctness fallback.
 * CPU tile parameters come from, in order: CLIPCL_GEMM_PARAMS
 * ("MR=6 NV=2 KU=4 MB=16"), this device's row in the tune file (written by
 * `clipcl tune`, or by the automatic tuning on the device's first GEMM,
 * gemm_tune.c), the built-in row for the device's vector width.
 */
#define _DEFAULT_SOURCE /* flock */
#include <clblast_c.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ops/gemm_params.h"
#include "ops/ops.h"

enum { BACKEND_CPU, BACKEND_CLBLAST, BACKEND_NAIVE };
#define KCL_MAX 512 /* kernels/gemm.cl KCL: K slice of gemm_tile_packed */
#define PACK_BT_BLOCKS 4 /* kernels/gemm.cl PBK */
#define PACK_B_ROWS 8    /* kernels/gemm.cl PKB */
static const char *backend_names[] = {"cpu-tiled", "clblast", "naive"};

/* One tile parameter set and the defines its kernels are built with. */
typedef struct {
  cc_gemm_params p;
  char defines[128];
} gemm_cfg;

/* cfg[0] serves A stored (M,K); cfg[1] A stored (K,M) (transA), whose
 * in-place reads favour taller tiles. */
typedef struct {
  int backend;
  int tuning; /* inside autotune(): no second one */
  gemm_cfg cfg[2];
} gemm_state;

/* Built-in parameters by the device's vector width (kernels/prelude.cl):
 * tiles whose MR*NV accumulators + NV B vectors + 1 broadcast fit the
 * register file (32 zmm with AVX-512, 16 ymm with AVX2, 16 xmm with SSE).
 * PF (software prefetch of the next B panel, kernels/gemm.cl PF_STEP) is
 * on: without it the first row tile of each work-item waits on L3/DRAM for
 * its panel (ViT-B/32 shapes 0.84-0.93x OpenBLAS without, 0.95-1.05x with
 * on AVX-512; 0.81-0.99x and 0.86-0.97x on AVX2, same runs). */
static const struct {
  int vw;
  cc_gemm_params p, pt; /* A (M,K); A (K,M) */
} builtin[] = {
    {16, {6, 3, 4, 16, 0, 0, 0, 0, 1}, {12, 2, 4, 8, 1, 0, 0, 0, 1}},
    {8, {6, 2, 4, 16, 0, 0, 0, 0, 1}, {6, 2, 4, 16, 1, 0, 0, 0, 1}},
    {4, {6, 2, 4, 16, 0, 0, 0, 0, 1}, {6, 2, 4, 16, 1, 0, 0, 0, 1}},
};

/* The defines of parameter set `which` (0: A stored (M,K), 1: A
 * transposed): AT is kernels/gemm.cl's compile-time layout of op(A): 0 in
 * place (M,K), 1 in place transposed, 2 packed. */
static void cfg_defines(gemm_cfg *c, int which) {
  const cc_gemm_params *p = &c->p;
  snprintf(c->defines, sizeof c->defines, "-DMR=%d -DNV=%d -DKU=%d -DAT=%d -DKI=%d -DPF=%d", p->MR, p->NV,
           p->KU, p->PA ? 2 : which, p->KI, p->PF);
}

int cc_gemm_params_parse(const char *s, cc_gemm_params *p) {
  cc_gemm_params q = *p;
  const char *c = s;
  while (*c) {
    while (*c == ' ' || *c == ',' || *c == '\t') c++;
    if (!*c || *c == '\n') break;
    char key[8];
    int val, used;
    if (sscanf(c, "%7[A-Z]=%d%n", key, &val, &used) != 2) return -1;
    if (!strcmp(key, "MR")) q.MR = val;
    else if (!strcmp(key, "NV")) q.NV = val;
    else if (!strcmp(key, "KU")) q.KU = val;
    else if (!strcmp(key, "MB")) q.MB = val;
    else if (!strcmp(key, "KC")) q.KC = val;
    else if (!strcmp(key, "PA")) q.PA = val;
    else if (!strcmp(key, "VW")) q.VW = val;
    else if (!strcmp(key, "KI")) q.KI = val;
    else if (!strcmp(key, "PF")) q.PF = val;
    else return -1;
    c += used;
  }
  if (q.MR < 1 || q.MR > 32 || q.NV < 1 || q.NV > 8 || q.KU < 1 || q.KU > 16 || q.MB < 1 || q.MB > 4096 ||
      q.KC < 0 || q.PA < 0 || q.PA > 1 || q.PF < 0 || q.PF > 1 || q.KI < 0 || q.KI > 4096 ||
      (q.KI > 0 && q.MB > 32) || (q.VW && q.VW != 4 && q.VW != 8 && q.VW != 16))
    return -1;
  *p = q;
  return 0;
}

void cc_gemm_tune_path(char *out, size_t n) {
  const char *d = getenv("CLIPCL_TUNE_FILE");
  if (d && *d) {
    snprintf(out, n, "%s", d);
    return;
  }
  d = getenv("CLIPCL_CACHE_DIR");
  if (d && *d && strcmp(d, "off")) {
    snprintf(out, n, "%s/gemm_tune.txt", d);
    return;
  }
  if ((d = getenv("XDG_CACHE_HOME")) && *d) snprintf(out, n, "%s/clipcl/gemm_tune.txt", d);
  else if ((d = getenv("HOME")) && *d) snprintf(out, n, "%s/.cache/clipcl/gemm_tune.txt", d);
  else snprintf(out, n, "clipcl_gemm_tune.txt");
}

static void state_free(void *p) { free(p); }

/* CLIPCL_TUNE: "off" never tunes on its own; anything else (or unset)
 * tunes a device that has no tune-file row on its first GEMM. */
static int autotune_allowed(void) {
  const char *t = getenv("CLIPCL_TUNE");
  return !(t && (!strcmp(t, "off") || !strcmp(t, "0")));
}

/* First use of a device with no tune-file row: a few seconds of search
 * (cc_gemm_tune, CC_TUNE_AUTO), stored for every later process. Processes
 * starting together take turns through a lock file, so only the first one
 * tunes (a tuning measured while another runs would be noise) and the
 * others read its row. A failure to tune or to store is not an error: the
 * built-in row stays. */
static void autotune(cc_rt *rt, gemm_state *st) {
  const clipcl_device_info *in = cc_info(rt);
  char path[4096], lockp[4200];
  cc_gemm_tune_path(path, sizeof path);
  snprintf(lockp, sizeof lockp, "%s.lock", path);
  char *slash = strrchr(path, '/');
  if (slash) {
    *slash = 0;
    mkdir(path, 0755);
    *slash = '/';
  }
  int fd = open(lockp, O_RDWR | O_CREAT, 0644);
  if (fd >= 0) flock(fd, LOCK_EX);
  cc_gemm_params p = st->cfg[0].p, pt = st->cfg[1].p;
  if (cc_gemm_tune_lookup(in, &p, &pt)) { /* another process tuned meanwhile */
    st->cfg[0].p = p, st->cfg[1].p = pt;
    for (int i = 0; i < 2; i++) cfg_defines(&st->cfg[i], i);
  } else {
    cc_notice("tuning GEMM for %s (once per device; %s to skip) ...", in->name, "CLIPCL_TUNE=off");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    st->tuning = 1;
    clipcl_status s = cc_gemm_tune(rt, CC_TUNE_AUTO, &p, &pt, NULL, NULL);
    st->tuning = 0;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    if (s == CLIPCL_OK) s = cc_gemm_tune_save(in, &p, &pt);
    if (s == CLIPCL_OK)
      cc_notice("tuned GEMM in %.1f s: MR=%d NV=%d MB=%d PA=%d; saved to %s", dt, p.MR, p.NV, p.MB, p.PA, path);
    else
      cc_notice("GEMM tuning not kept (%s); using the built-in parameters", clipcl_last_error());
    cc_clear_error();
  }
  if (fd >= 0) {
    flock(fd, LOCK_UN);
    close(fd);
  }
}

static clipcl_status get_state(cc_rt *rt, gemm_state **out) {
  gemm_state *st = cc_state(rt, CC_STATE_GEMM);
  if (!st) {
    const clipcl_device_info *in = cc_info(rt);
    st = calloc(1, sizeof *st);
    if (!st) return cc_fail(CLIPCL_ERR_NOMEM, "out of host memory");
    st->backend = in->is_cpu ? BACKEND_CPU : BACKEND_CLBLAST;
    const char *b = getenv("CLIPCL_GEMM");
    if (b && *b) {
      if (!strcmp(b, "cpu")) st->backend = BACKEND_CPU;
      else if (!strcmp(b, "clblast")) st->backend = BACKEND_CLBLAST;
      else if (!strcmp(b, "naive")) st->backend = BACKEND_NAIVE;
      else {
        free(st);
        return cc_fail(CLIPCL_ERR_ARG, "CLIPCL_GEMM=%s: expected cpu, clblast or naive", b);
      }
    }
    for (size_t i = 0; i < sizeof builtin / sizeof *builtin; i++) {
      if (builtin[i].vw == in->vector_width || i + 1 == sizeof builtin / sizeof *builtin) {
        st->cfg[0].p = builtin[i].p;
        st->cfg[1].p = builtin[i].pt;
        break;
      }
    }
    int tuned = cc_gemm_tune_lookup(in, &st->cfg[0].p, &st->cfg[1].p);
    const char *e = getenv("CLIPCL_GEMM_PARAMS");
    if (e && *e) {
      if (cc_gemm_params_parse(e, &st->cfg[0].p) != 0) {
        free(st);
        return cc_fail(CLIPCL_ERR_ARG, "CLIPCL_GEMM_PARAMS=\"%s\": expected e.g. \"MR=6 NV=3 KU=4 MB=16 PA=0 KC=0\"", e);
      }
      st->cfg[1].p = st->cfg[0].p;
    }
    for (int i = 0; i < 2; i++) cfg_defines(&st->cfg[i], i);
    cc_set_state(rt, CC_STATE_GEMM, st, state_free);
    if (!tuned && !(e && *e) && st->backend == BACKEND_CPU && autotune_allowed()) autotune(rt, st);
  }
  *out = st;
  return CLIPCL_OK;
}

const char *cc_gemm_backend(cc_rt *rt) {
  gemm_state *st = NULL;
  if (get_state(rt, &st) != CLIPCL_OK) return "unknown";
  return backend_names[st->backend];
}

clipcl_status cc_gemm_set_params2(cc_rt *rt, const cc_gemm_params *p, const cc_gemm_params *pt) {
  gemm_state *st = NULL;
  CC_TRY(get_state(rt, &st));
  st->cfg[0].p = *p;
  st->cfg[1].p = pt ? *pt : *p;
  for (int i = 0; i < 2; i++) cfg_defines(&st->cfg[i], i);
  return CLIPCL_OK;
}

clipcl_status cc_gemm_set_params(cc_rt *rt, const cc_gemm_params *p) { return cc_gemm_set_params2(rt, p, NULL); }

clipcl_status cc_gemm_get_params2(cc_rt *rt, cc_gemm_params *p, cc_gemm_params *pt) {
  gemm_state *st = NULL;
  CC_TRY(get_state(rt, &st));
  *p = st->cfg[0].p;
  if (pt) *pt = st->cfg[1].p;
  return CLIPCL_OK;
}

clipcl_status cc_gemm_get_params(cc_rt *rt, cc_gemm_params *p) { return cc_gemm_get_params2(rt, p, NULL); }

/* One gemm_tile launch per K slice over the columns [j0, j0+n) of C, with
 * op(B) for those columns at b (element strides b_ts between column panels,
 * b_rs between k rows). */
typedef struct {
  cl_mem buf;
  cl_ulong off, batch_stride, ts;
  int rs;
} b_operand;

/* op(A) as gemm_tile reads it: element (i,k) of row tile tm at
 * off + z*batch_stride + tm*ts + min(i, imax)*rs + k*cs. */
typedef struct {
  cl_mem buf;
  cl_ulong off, batch_stride, ts;
  int rs, cs, clamp;
} a_operand;

/* kernels/gemm.cl's epilogue flags for g (EPI_RESID 1, EPI_GELU 2,
 * EPI_QUICK 4, EPI_KEEP_PRE 8). */
static int epilogue_flags(const cc_gemm_desc *g) {
  int f = g->resid.buf ? 1 : 0;
  if (g->act == CC_ACT_GELU) f |= 2;
  if (g->act == CC_ACT_QUICKGELU) f |= 4;
  if (g->act != CC_ACT_NONE && g->act_out.buf) f |= 8;
  return f;
}

/* The six epilogue arguments of a launch writing columns from j0: active on
 * the last K slice only (earlier slices are partial sums). Unused buffers
 * are passed as C, a valid argument never read. */
#define EPI_ARGS(g, j0, last)                                                                            \
  CC_MEM((g)->resid.buf ? (g)->resid.buf : (g)->C.buf), CC_ULONG((g)->resid.off + (j0)), CC_INT((g)->ldr), \
      CC_MEM((g)->act_out.buf ? (g)->act_out.buf : (g)->C.buf), CC_ULONG((g)->act_out.off + (j0)),      \
      CC_INT((last) ? epilogue_flags(g) : 0)

static clipcl_status tile_columns(cc_rt *rt, const gemm_cfg *c, cc_kernel *kt, const cc_gemm_desc *g, int batch,
                                  const a_operand *a, const b_operand *b, int j0, int n) {
  const cc_gemm_params *p = &c->p;
  int NR = cc_info(rt)->vector_width * p->NV;
  size_t mtiles = ((size_t)g->M + p->MR - 1) / p->MR, ntiles = ((size_t)n + NR - 1) / NR;
  int MB = p->KI > 0 && p->MB > 32 ? 32 : p->MB; /* kernels/gemm.cl MB_KEEP */
  size_t mblocks = (mtiles + MB - 1) / MB;
  int kc = p->KC > 0 ? p->KC : g->K;
  int has_bias = g->bias.buf != NULL;
  size_t gt[2] = {mblocks * ntiles, (size_t)batch}, lt[2] = {1, 1};
  for (int k0 = 0; k0 < g->K; k0 += kc) {
    int kn = g->K - k0 < kc ? g->K - k0 : kc;
    int first = k0 == 0;
    cl_mem bias = first && has_bias ? g->bias.buf : g->C.buf;
    CC_TRY(CC_LAUNCH(rt, kt, 2, gt, lt, CC_MEM(a->buf), CC_ULONG(a->off + (cl_ulong)k0 * a->cs),
                     CC_ULONG(a->batch_stride), CC_ULONG(a->ts), CC_INT(a->rs), CC_INT(a->cs), CC_INT(a->clamp),
                     CC_MEM(b->buf), CC_ULONG(b->off + (cl_ulong)k0 * b->rs), CC_ULONG(b->batch_stride),
                     CC_ULONG(b->ts), CC_INT(b->rs), CC_MEM(g->C.buf), CC_ULONG(g->C.off + j0), CC_INT(g->ldc),
                     CC_ULONG(g->sC), CC_MEM(bias), CC_ULONG(g->bias.off + j0), CC_INT(first && has_bias),
                     EPI_ARGS(g, j0, k0 + kn == g->K), CC_INT(g->M), CC_INT(n), CC_INT(kn), CC_FLOAT(g->alpha),
                     CC_FLOAT(first ? g->beta : 1.0f), CC_INT((int)mtiles), CC_INT((int)ntiles), CC_INT(MB)));
  }
  return CLIPCL_OK;
}

/* op(B) (K x N, B stored (N,K) when transB) for `batch` problems into
 * column panels [z][tn][k][NR] at dst (bp_batch floats apart), zero beyond
 * N: the layout gemm_tile reads with b_ts = K*NR, b_rs = NR. A row-major B
 * goes row by row (pack_b_rows); a transposed one through VW x VW register
 * transposes (pack_bt). */
static clipcl_status pack_b(cc_rt *rt, const gemm_cfg *c, cc_view dst, size_t bp_batch, cc_view B, int ldb,
                            size_t sB, int N, int K, int transB, int batch) {
  int VW = cc_info(rt)->vector_width, ntl = (N + VW * c->p.NV - 1) / (VW * c->p.NV);
  cc_kernel *kb;
  size_t lb[3] = {1, 1, 1};
  if (!transB) {
    CC_TRY(cc_kernel_get(rt, "gemm.cl", "pack_b_rows", c->defines, &kb));
    size_t gb[2] = {((size_t)K + PACK_B_ROWS - 1) / PACK_B_ROWS, (size_t)batch};
    return CC_LAUNCH(rt, kb, 2, gb, lb, CC_VIEW(dst), CC_ULONG(bp_batch), CC_VIEW(B), CC_INT(ldb),
                     CC_ULONG(sB), CC_INT(N), CC_INT(K));
  }
  CC_TRY(cc_kernel_get(rt, "gemm.cl", "pack_bt", c->defines, &kb));
  size_t kstep = (size_t)VW * PACK_BT_BLOCKS;
  size_t gb[3] = {((size_t)K + kstep - 1) / kstep, (size_t)ntl * c->p.NV, (size_t)batch};
  return CC_LAUNCH(rt, kb, 3, gb, lb, CC_VIEW(dst), CC_ULONG(bp_batch), CC_VIEW(B), CC_INT(ldb), CC_ULONG(sB),
                   CC_INT(N), CC_INT(K));
}

static clipcl_status gemm_cpu(cc_rt *rt, gemm_state *st, const cc_gemm_desc *g, int batch) {
  const gemm_cfg *c = &st->cfg[g->transA ? 1 : 0];
  int VW = cc_info(rt)->vector_width, NR = VW * c->p.NV;
  cc_kernel *kt;
  CC_TRY(cc_kernel_get(rt, "gemm.cl", "gemm_tile", c->defines, &kt));
  a_operand a = {g->A.buf, g->A.off, g->sA, 0, g->transA ? 1 : g->lda, g->transA ? g->lda : 1, 1};
  a.ts = (cl_ulong)c->p.MR * a.rs;
  if (c->p.PA) {
    /* Packed A: MR values per k contiguous, zero padded rows. */
    size_t mtiles = ((size_t)g->M + c->p.MR - 1) / c->p.MR, ap_batch = mtiles * c->p.MR * (size_t)g->K;
    cl_mem Ap;
    cc_kernel *ka;
    CC_TRY(cc_scratch(rt, 0, ap_batch * batch * 4, &Ap));
    size_t la[3] = {1, 1, 1};
    if (g->transA) { /* kernels/gemm.cl pack_at: PK = PT = 16 */
      CC_TRY(cc_kernel_get(rt, "gemm.cl", "pack_at", c->defines, &ka));
      size_t ga[3] = {((size_t)g->K + 15) / 16, (mtiles + 15) / 16, (size_t)batch};
      CC_TRY(CC_LAUNCH(rt, ka, 3, ga, la, CC_MEM(Ap), CC_ULONG(ap_batch), CC_VIEW(g->A), CC_INT(g->lda),
                       CC_ULONG(g->sA), CC_INT(g->M), CC_INT(g->K), CC_INT((int)mtiles)));
    } else {
      CC_TRY(cc_kernel_get(rt, "gemm.cl", "pack_a", c->defines, &ka));
      size_t ga[3] = {((size_t)g->K + VW - 1) / VW, mtiles, (size_t)batch};
      CC_TRY(CC_LAUNCH(rt, ka, 3, ga, la, CC_MEM(Ap), CC_ULONG(ap_batch), CC_VIEW(g->A), CC_INT(g->lda),
                       CC_ULONG(g->sA), CC_INT(g->M), CC_INT(g->K)));
    }
    a = (a_operand){Ap, 0, ap_batch, (cl_ulong)c->p.MR * g->K, 1, c->p.MR, 0};
  }
  int mtiles = (g->M + c->p.MR - 1) / c->p.MR, mblocks = (mtiles + c->p.MB - 1) / c->p.MB;
  if (g->Bp.v.buf && g->Bp.nr == NR && !g->transA) { /* panels packed ahead of time */
    b_operand b = {g->Bp.v.buf, g->Bp.v.off, 0, (cl_ulong)NR * g->K, NR};
    return tile_columns(rt, c, kt, g, batch, &a, &b, 0, g->N);
  }
  if (mblocks > 1) {
    /* Many row tiles share each column panel: pack all of op(B) once into
     * contiguous panels (transposing when B is (N,K)), then the in-place
     * kernel streams them; this also avoids cache-set conflicts of row
     * strides that are multiples of 4 KiB. */
    int ntl = (g->N + NR - 1) / NR;
    size_t bp_batch = (size_t)ntl * NR * g->K;
    cl_mem Bp;
    CC_TRY(cc_scratch(rt, 1, bp_batch * batch * 4, &Bp));
    CC_TRY(pack_b(rt, c, (cc_view){Bp, 0}, bp_batch, g->B, g->ldb, g->sB, g->N, g->K, g->transB, batch));
    b_operand b = {Bp, 0, bp_batch, (cl_ulong)NR * g->K, NR};
    return tile_columns(rt, c, kt, g, batch, &a, &b, 0, g->N);
  }
  /* One row block: gemm_tile_packed copies each column panel into a
   * cache-resident buffer. (Reading a row-major B in place instead ran at
   * 0.25-0.5x OpenBLAS where its rows are 3-12 KiB apart, as CLIP's weights
   * are: the panel's rows collide in the caches; the copy measured as fast
   * or faster on every shape tried, batched attention PV included.) */
  int n = g->N, ntiles = (n + NR - 1) / NR;
  int kcl = KCL_MAX, kc = c->p.KC > 0 && c->p.KC < kcl ? c->p.KC : kcl;
  cc_kernel *kp;
  CC_TRY(cc_kernel_get(rt, "gemm.cl", "gemm_tile_packed", c->defines, &kp));
  cl_ulong boff = g->B.off;
  int bk_stride = g->transB ? 1 : g->ldb; /* element step of op(B) along k */
  int has_bias = g->bias.buf != NULL;
  size_t gt[2] = {(size_t)ntiles * mblocks, (size_t)batch}, lt[2] = {1, 1};
  for (int k0 = 0; k0 < g->K; k0 += kc) {
    int kn = g->K - k0 < kc ? g->K - k0 : kc, first = k0 == 0;
    cl_mem bias = first && has_bias ? g->bias.buf : g->C.buf;
    CC_TRY(CC_LAUNCH(rt, kp, 2, gt, lt, CC_MEM(a.buf), CC_ULONG(a.off + (cl_ulong)k0 * a.cs),
                     CC_ULONG(a.batch_stride), CC_ULONG(a.ts), CC_INT(a.rs), CC_INT(a.cs), CC_INT(a.clamp),
                     CC_MEM(g->B.buf), CC_ULONG(boff + (cl_ulong)k0 * bk_stride), CC_ULONG(g->sB), CC_INT(g->ldb),
                     CC_INT(g->transB), CC_MEM(g->C.buf), CC_ULONG(g->C.off), CC_INT(g->ldc),
                     CC_ULONG(g->sC), CC_MEM(bias), CC_ULONG(g->bias.off), CC_INT(first && has_bias),
                     EPI_ARGS(g, 0, k0 + kn == g->K), CC_INT(g->M), CC_INT(n), CC_INT(kn),
                     CC_FLOAT(g->alpha), CC_FLOAT(first ? g->beta : 1.0f), CC_INT(mtiles), CC_INT(ntiles),
                     CC_INT(c->p.MB)));
  }
  return CLIPCL_OK;
}

clipcl_status cc_gemm_pack_b(cc_rt *rt, cc_packed *out, cc_view B, int ldb, int transB, int N, int K, size_t *elems) {
  gemm_state *st = NULL;
  CC_TRY(get_state(rt, &st));
  *elems = 0;
  if (st->backend != BACKEND_CPU || N <= 0 || K <= 0) return CLIPCL_OK;
  const gemm_cfg *c = &st->cfg[0];
  int VW = cc_info(rt)->vector_width, NR = VW * c->p.NV, ntl = (N + NR - 1) / NR;
  *elems = (size_t)ntl * NR * K;
  out->nr = NR;
  if (!out->v.buf) return CLIPCL_OK;
  return pack_b(rt, c, out->v, *elems, B, ldb, 0, N, K, transB, 1);
}

static clipcl_status gemm_naive(cc_rt *rt, const cc_gemm_desc *g, int batch) {
  cc_kernel *k;
  CC_TRY(cc_kernel_get(rt, "gemm.cl", "gemm_naive", NULL, &k));
  size_t gws[3] = {(size_t)g->N, (size_t)g->M, (size_t)batch};
  int has_bias = g->bias.buf != NULL;
  cl_mem bias = has_bias ? g->bias.buf : g->C.buf;
  return CC_LAUNCH(rt, k, 3, gws, NULL, CC_VIEW(g->A), CC_INT(g->lda), CC_ULONG(g->sA), CC_INT(g->transA),
                   CC_VIEW(g->B), CC_INT(g->ldb), CC_ULONG(g->sB), CC_INT(g->transB), CC_VIEW(g->C),
                   CC_INT(g->ldc), CC_ULONG(g->sC), CC_MEM(bias), CC_ULONG(g->bias.off), CC_INT(has_bias),
                   CC_INT(g->M), CC_INT(g->N), CC_INT(g->K), CC_FLOAT(g->alpha), CC_FLOAT(g->beta));
}

static clipcl_status gemm_clblast(cc_rt *rt, const cc_gemm_desc *g, int batch) {
  cl_command_queue q = cc_queue(rt);
  cl_event ev = NULL;
  CLBlastStatusCode s;
  CLBlastTranspose ta = g->transA ? CLBlastTransposeYes : CLBlastTransposeNo;
  CLBlastTranspose tb = g->transB ? CLBlastTransposeYes : CLBlastTransposeNo;
  if (batch == 1) {
    s = CLBlastSgemm(CLBlastLayoutRowMajor, ta, tb, (size_t)g->M, (size_t)g->N, (size_t)g->K, g->alpha,
                     g->A.buf, g->A.off, (size_t)g->lda, g->B.buf, g->B.off, (size_t)g->ldb, g->beta, g->C.buf,
                     g->C.off, (size_t)g->ldc, &q, cc_profiling(rt) ? &ev : NULL);
  } else {
    s = CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, ta, tb, (size_t)g->M, (size_t)g->N, (size_t)g->K,
                                   g->alpha, g->A.buf, g->A.off, (size_t)g->lda, g->sA, g->B.buf, g->B.off,
                                   (size_t)g->ldb, g->sB, g->beta, g->C.buf, g->C.off, (size_t)g->ldc, g->sC,
                                   (size_t)batch, &q, cc_profiling(rt) ? &ev : NULL);
  }
  if (s != CLBlastSuccess)
    return cc_fail(CLIPCL_ERR_OPENCL, "CLBlast error %d (%s) in SGEMM %dx%dx%d%s%s batch %d", (int)s,
                   s > -1000 ? cc_cl_error_name((cl_int)s) : "CLBlast-specific", g->M, g->N, g->K,
                   g->transA ? " A^T" : "", g->transB ? " B^T" : "", batch);
  cc_profile_event(rt, "clblast_sgemm", ev);
  if (g->bias.buf) {
    cc_kernel *k;
    CC_TRY(cc_kernel_get(rt, "gemm.cl", "add_bias", NULL, &k));
    size_t gws[3] = {(size_t)g->N, (size_t)g->M, (size_t)batch};
    CC_TRY(CC_LAUNCH(rt, k, 3, gws, NULL, CC_VIEW(g->C), CC_INT(g->ldc), CC_ULONG(g->sC), CC_VIEW(g->bias),
                     CC_INT(g->M), CC_INT(g->N)));
  }
  return CLIPCL_OK;
}

clipcl_status cc_gemm(cc_rt *rt, const cc_gemm_desc *g) {
  int batch = g->batch > 0 ? g->batch : 1;
  if (g->M < 0 || g->N < 0 || g->K < 0)
    return cc_fail(CLIPCL_ERR_ARG, "gemm: negative size %dx%dx%d", g->M, g->N, g->K);
  if (g->M == 0 || g->N == 0) return CLIPCL_OK;
  int colsA = g->transA ? g->M : g->K, colsB = g->transB ? g->K : g->N;
  if (g->lda < colsA || g->ldb < colsB || g->ldc < g->N)
    return cc_fail(CLIPCL_ERR_ARG, "gemm %dx%dx%d: leading dimension too small (lda %d ldb %d ldc %d)", g->M,
                   g->N, g->K, g->lda, g->ldb, g->ldc);
  int epi = epilogue_flags(g);
  if (epi && batch > 1) return cc_fail(CLIPCL_ERR_ARG, "gemm: the epilogue (residual, activation) is for one matrix");
  if ((epi & 1) && g->ldr < g->N)
    return cc_fail(CLIPCL_ERR_ARG, "gemm %dx%dx%d: residual leading dimension %d too small", g->M, g->N, g->K, g->ldr);
  gemm_state *st = NULL;
  CC_TRY(get_state(rt, &st));
  if (g->K > 0 && st->backend == BACKEND_CPU) return gemm_cpu(rt, st, g, batch);
  /* K == 0: C = beta*C + bias, which the naive kernel does without reading A or B */
  CC_TRY(g->K > 0 && st->backend == BACKEND_CLBLAST ? gemm_clblast(rt, g, batch) : gemm_naive(rt, g, batch));
  if (!epi) return CLIPCL_OK;
  cc_kernel *k; /* these backends have no epilogue: one more pass */
  CC_TRY(cc_kernel_get(rt, "gemm.cl", "gemm_epilogue", NULL, &k));
  size_t gws[2] = {(size_t)g->N, (size_t)g->M};
  return CC_LAUNCH(rt, k, 2, gws, NULL, CC_VIEW(g->C), CC_INT(g->ldc), EPI_ARGS(g, 0, 1), CC_INT(g->M),
                   CC_INT(g->N));
}

clipcl_status cc_colsum(cc_rt *rt, cc_view out, cc_view x, int rows, int cols, int ld, int accumulate) {
  if (cols <= 0) return CLIPCL_OK;
  const int chunk = 64; /* rows per partial sum: fixed, so results do not depend on the device */
  int nparts = rows > 0 ? (rows + chunk - 1) / chunk : 1;
  cl_mem part;
  CC_TRY(cc_scratch(rt, 6, (size_t)nparts * cols * 4, &part));
  cc_kernel *kp, *kf;
  CC_TRY(cc_kernel_get(rt, "gemm.cl", "colsum_part", NULL, &kp));
  CC_TRY(cc_kernel_get(rt, "gemm.cl", "colsum_final", NULL, &kf));
  if (rows > 0) {
    size_t vw = (size_t)cc_info(rt)->vector_width;
    size_t g[2] = {((size_t)cols + vw - 1) / vw, (size_t)nparts}, l[2] = {1, 1};
    CC_TRY(CC_LAUNCH(rt, kp, 2, g, l, CC_MEM(part), CC_VIEW(x), CC_INT(rows), CC_INT(cols), CC_INT(ld),
                     CC_INT(chunk)));
  } else {
    CC_TRY(cc_fill(rt, (cc_view){part, 0}, (size_t)cols, 0.0f));
  }
  size_t gf = cc_round_up((size_t)cols, 64), lf = 64;
  return CC_LAUNCH(rt, kf, 1, &gf, &lf, CC_VIEW(out), CC_MEM(part), CC_INT(nparts), CC_INT(cols),
                   CC_INT(accumulate));
}

clipcl_status cc_linear_fwd(cc_rt *rt, cc_view out, cc_view inp, cc_view w, cc_view bias, int N, int IC,
                            int OC) {
  return cc_linear_fwd_epi(rt, out, inp, w, bias, cc_none(), CC_ACT_NONE, cc_none(), (cc_packed){{NULL, 0}, 0}, N,
                           IC, OC);
}

clipcl_status cc_linear_fwd_epi(cc_rt *rt, cc_view out, cc_view inp, cc_view w, cc_view bias, cc_view resid,
                                int act, cc_view act_out, cc_packed wp, int N, int IC, int OC) {
  cc_gemm_desc g = {.transA = 0, .transB = 1, .M = N, .N = OC, .K = IC, .alpha = 1.0f, .beta = 0.0f,
                    .A = inp, .B = w, .C = out, .lda = IC, .ldb = IC, .ldc = OC, .bias = bias,
                    .resid = resid, .ldr = OC, .act = act, .act_out = act_out, .Bp = wp};
  return cc_gemm(rt, &g);
}

static clipcl_status linear_bwd(cc_rt *rt, cc_view dinp, cc_view dw, cc_view dbias, cc_view dout, cc_view inp,
                                cc_view w, int N, int IC, int OC, float beta_dinp) {
  if (dinp.buf) {
    cc_gemm_desc g = {.M = N, .N = IC, .K = OC, .alpha = 1.0f, .beta = beta_dinp, .A = dout, .B = w, .C = dinp,
                      .lda = OC, .ldb = IC, .ldc = IC};
    CC_TRY(cc_gemm(rt, &g));
  }
  if (dw.buf) {
    cc_gemm_desc g = {.transA = 1, .M = OC, .N = IC, .K = N, .alpha = 1.0f, .beta = 1.0f, .A = dout, .B = inp,
                      .C = dw, .lda = OC, .ldb = IC, .ldc = IC};
    CC_TRY(cc_gemm(rt, &g));
  }
  if (dbias.buf) CC_TRY(cc_colsum(rt, dbias, dout, N, OC, OC, 1));
  return CLIPCL_OK;
}

clipcl_status cc_linear_bwd(cc_rt *rt, cc_view dinp, cc_view dw, cc_view dbias, cc_view dout, cc_view inp,
                            cc_view w, int N, int IC, int OC) {
  return linear_bwd(rt, dinp, dw, dbias, dout, inp, w, N, IC, OC, 1.0f);
}

clipcl_status cc_linear_bwd_set(cc_rt *rt, cc_view dinp, cc_view dw, cc_view dbias, cc_view dout, cc_view inp,
                                cc_view w, int N, int IC, int OC) {
  return linear_bwd(rt, dinp, dw, dbias, dout, inp, w, N, IC, OC, 0.0f);
}

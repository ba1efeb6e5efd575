/* cpu_as.c: an LD_PRELOAD library that makes PoCL (through LLVM) compile
 * kernels for another, older x86-64 CPU class than the host's, so the AVX2
 * code paths can be built, tested and timed on an AVX-512 machine:
 *   CLIPCL_AS_CPU=haswell LD_PRELOAD=.../libclipcl_as_cpu.so clipcl ...
 * (scripts/as-cpu wraps this). It replaces LLVM's host CPU name with
 * CLIPCL_AS_CPU and clears the AVX-512/AMX/AVX-VNNI entries of the host
 * feature map, which is all PoCL 3.x reads to pick its target CPU, kernel
 * library and preferred vector widths. Emulating a newer CPU than the host
 * would make the kernels fault, so scripts/as-cpu refuses that.
 * The symbols are LLVM's C++ functions (llvm::sys::getHostCPUName,
 * llvm::sys::getHostCPUFeatures(StringMap<bool>&)); the feature map is
 * walked through the StringMapImpl layout (bucket table, bucket count), each
 * entry being {size_t key length; bool value; key bytes at offset 16}. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *data;
  size_t len;
} string_ref;

typedef struct {
  char **table;
  unsigned buckets, items, tombstones, item_size;
} string_map;

#define GET_NAME "_ZN4llvm3sys14getHostCPUNameEv"
#define GET_FEATURES "_ZN4llvm3sys18getHostCPUFeaturesERNS_9StringMapIbNS_15MallocAllocatorEEE"

string_ref _ZN4llvm3sys14getHostCPUNameEv(void);
int _ZN4llvm3sys18getHostCPUFeaturesERNS_9StringMapIbNS_15MallocAllocatorEEE(string_map *m);

string_ref _ZN4llvm3sys14getHostCPUNameEv(void) {
  const char *c = getenv("CLIPCL_AS_CPU");
  if (!c || !*c) c = "haswell";
  return (string_ref){c, strlen(c)};
}

static char llvm_path[512];

static int find_llvm(struct dl_phdr_info *info, size_t size, void *data) {
  (void)size, (void)data;
  if (info->dlpi_name && strstr(info->dlpi_name, "libLLVM")) {
    snprintf(llvm_path, sizeof llvm_path, "%s", info->dlpi_name);
    return 1;
  }
  return 0;
}

int _ZN4llvm3sys18getHostCPUFeaturesERNS_9StringMapIbNS_15MallocAllocatorEEE(string_map *m) {
  if (!llvm_path[0]) dl_iterate_phdr(find_llvm, NULL);
  void *h = llvm_path[0] ? dlopen(llvm_path, RTLD_LAZY | RTLD_NOLOAD) : NULL;
  /* libLLVM-15.so.1 versions its symbols LLVM_15 */
  const char *base = strstr(llvm_path, "libLLVM-");
  char version[32];
  snprintf(version, sizeof version, "LLVM_%d", base ? atoi(base + 8) : 15);
  int (*real)(string_map *) = h ? (int (*)(string_map *))dlvsym(h, GET_FEATURES, version) : NULL;
  if (!real) {
    fprintf(stderr, "libclipcl_as_cpu: %s not found in %s\n", GET_FEATURES, llvm_path[0] ? llvm_path : "(no libLLVM)");
    abort();
  }
  int r = real(m);
  for (unsigned i = 0; i < m->buckets; i++) {
    char *e = m->table[i];
    if (!e || (uintptr_t)e == (uintptr_t)-8) continue; /* empty or tombstone */
    size_t len = *(size_t *)e;
    const char *key = e + 16;
    if ((len >= 6 && !memcmp(key, "avx512", 6)) || (len >= 3 && !memcmp(key, "amx", 3)) ||
        (len == 7 && !memcmp(key, "avxvnni", 7)))
      e[8] = 0;
  }
  return r;
}

/* ---- the CPUID instruction, for every library in the process --------------
 * With CLIPCL_AS_CPU_CPUID=1 (scripts/as-cpu sets it where the kernel offers
 * CPUID faulting, /proc/cpuinfo flag cpuid_fault) the process's CPUID
 * instructions trap (arch_prctl ARCH_SET_CPUID 0); the SIGSEGV handler below
 * runs the real instruction with faulting briefly off, clears the AVX-512,
 * AMX and AVX-VNNI bits (leaf 7, its sub-leaf 1, and their state components
 * in leaf 0xD) and resumes after the instruction. So libraries that dispatch
 * on CPUID themselves (ONNX Runtime's MLAS, oneDNN, OpenBLAS, PyTorch's
 * cpuinfo) pick their AVX2 kernels, as on an AVX2-only CPU. glibc chose its
 * string functions before this library's constructor runs; they are not
 * the subject. The setting is per thread and inherited by new threads, and
 * execve resets it (the constructor sets it again in the new program). */
#include <signal.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef ARCH_SET_CPUID
#define ARCH_SET_CPUID 0x1012
#endif

static struct sigaction prev_segv;

static void mask_cpuid(unsigned leaf, unsigned sub, unsigned *a, unsigned *b, unsigned *c, unsigned *d) {
  if (leaf == 7 && sub == 0) {
    /* EBX: AVX512F 16, DQ 17, IFMA 21, PF 26, ER 27, CD 28, BW 30, VL 31 */
    *b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
    /* ECX: VBMI 1, VBMI2 6, VNNI 11, BITALG 12, VPOPCNTDQ 14 */
    *c &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
    /* EDX: 4VNNIW 2, 4FMAPS 3, VP2INTERSECT 8, AMX-BF16 22, FP16 23, AMX-TILE 24, AMX-INT8 25 */
    *d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
  } else if (leaf == 7 && sub == 1) {
    *a &= ~((1u << 4) | (1u << 5)); /* AVX-VNNI, AVX512_BF16 */
  } else if (leaf == 0xd && sub == 0) {
    *a &= ~((1u << 5) | (1u << 6) | (1u << 7) | (1u << 17) | (1u << 18)); /* opmask, ZMM, AMX tile state */
  }
  (void)d;
}

static void on_segv(int sig, siginfo_t *si, void *ctx) {
  ucontext_t *uc = ctx;
  greg_t *g = uc->uc_mcontext.gregs;
  const unsigned char *ip = (const unsigned char *)g[REG_RIP];
  if (ip && ip[0] == 0x0f && ip[1] == 0xa2) {
    unsigned leaf = (unsigned)g[REG_RAX], sub = (unsigned)g[REG_RCX], a, b, c, d;
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(leaf), "c"(sub));
    syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
    mask_cpuid(leaf, sub, &a, &b, &c, &d);
    g[REG_RAX] = a, g[REG_RBX] = b, g[REG_RCX] = c, g[REG_RDX] = d;
    g[REG_RIP] += 2;
    return;
  }
  /* not a CPUID: whoever handled SIGSEGV before, or the default action */
  if (prev_segv.sa_flags & SA_SIGINFO && prev_segv.sa_sigaction) {
    prev_segv.sa_sigaction(sig, si, ctx);
  } else if (prev_segv.sa_handler != SIG_DFL && prev_segv.sa_handler != SIG_IGN && prev_segv.sa_handler) {
    prev_segv.sa_handler(sig);
  } else {
    signal(SIGSEGV, SIG_DFL); /* the fault repeats and ends the process as it would have */
  }
}

__attribute__((constructor)) static void as_cpu_cpuid(void) {
  const char *on = getenv("CLIPCL_AS_CPU_CPUID");
  if (!on || strcmp(on, "1")) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, &prev_segv) != 0 || syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
    fprintf(stderr, "libclipcl_as_cpu: CPUID faulting is not available here (CLIPCL_AS_CPU_CPUID=1)\n");
    abort();
  }
}

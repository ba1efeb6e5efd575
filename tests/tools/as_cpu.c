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

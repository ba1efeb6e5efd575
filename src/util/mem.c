/* mem.c: host memory figures and byte counts for messages (see mem.h). */
#include "util/mem.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

void cc_host_memory(uint64_t *total, uint64_t *avail) {
  *total = *avail = 0;
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
  if (pages > 0 && size > 0) *total = (uint64_t)pages * (uint64_t)size;
  /* MemAvailable counts reclaimable cache, which free pages alone do not */
  FILE *f = fopen("/proc/meminfo", "r");
  if (f) {
    char line[256];
    unsigned long long kb;
    while (fgets(line, sizeof line, f))
      if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
        *avail = (uint64_t)kb * 1024;
        break;
      }
    fclose(f);
  }
}

const char *cc_fmt_bytes(char *buf, size_t cap, uint64_t b) {
  static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (b < 1024) {
    snprintf(buf, cap, "%llu bytes", (unsigned long long)b);
    return buf;
  }
  double v = (double)b / 1024;
  int u = 0;
  while (v >= 1024 && u < 5) v /= 1024, u++;
  if (v == (double)(uint64_t)v)
    snprintf(buf, cap, "%llu %s", (unsigned long long)v, unit[u]);
  else
    snprintf(buf, cap, "%.1f %s", v, unit[u]);
  return buf;
}

const char *cc_host_memory_note(char *buf, size_t cap) {
  uint64_t total, avail;
  cc_host_memory(&total, &avail);
  char a[32], t[32];
  if (total && avail)
    snprintf(buf, cap, " (host memory: %s available of %s)", cc_fmt_bytes(a, sizeof a, avail),
             cc_fmt_bytes(t, sizeof t, total));
  else if (total)
    snprintf(buf, cap, " (host memory: %s)", cc_fmt_bytes(t, sizeof t, total));
  else if (cap)
    buf[0] = 0;
  return buf;
}

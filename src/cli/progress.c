/* progress.c: the one-line progress display of the long commands (embed,
 * index, probe feature extraction, zeroshot, retrieval): "images 640/10000
 * 212.4/s  ETA 45 s", redrawn in place on a terminal and never written when
 * stderr is not one (a pipe or a log file gets only the results).
 *
 * Rates and ETAs leave out the first update of each stage: that batch pays
 * for compiling the kernels (seconds to minutes on a first run), so counting
 * it would show an ETA many times the real one. Not here: what is counted
 * (the library's progress callbacks) or any timing of the work itself. */
#define _DEFAULT_SOURCE /* isatty */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

double cli_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

void cli_progress_init(cli_progress *p, int enabled) {
  memset(p, 0, sizeof *p);
  p->enabled = enabled;
}

void cli_progress_init_tty(cli_progress *p) { cli_progress_init(p, isatty(2)); }

/* "45 s", "12 min 5 s", "3 h 20 min" */
static void fmt_duration(char *out, size_t cap, double s) {
  long t = (long)(s + 0.5);
  if (t < 60) snprintf(out, cap, "%ld s", t);
  else if (t < 3600) snprintf(out, cap, "%ld min %ld s", t / 60, t % 60);
  else snprintf(out, cap, "%ld h %ld min", t / 3600, t / 60 % 60);
}

int cli_progress_format(cli_progress *p, const char *stage, int64_t done, int64_t total, double now, char *out,
                        size_t cap) {
  if (!p->started || strncmp(p->stage, stage, sizeof p->stage - 1) != 0 || done < p->last) {
    /* a new stage (or a second pass of one) starts its own warm-up */
    snprintf(p->stage, sizeof p->stage, "%s", stage);
    p->t0 = now;
    p->done0 = done;
    p->started = 1;
  }
  p->last = done;
  int n;
  if (total > 0) n = snprintf(out, cap, "%s %lld/%lld", stage, (long long)done, (long long)total);
  else n = snprintf(out, cap, "%s %lld", stage, (long long)done);
  double dt = now - p->t0;
  int64_t dn = done - p->done0;
  if (n >= 0 && (size_t)n < cap && dn > 0 && dt > 0) {
    double rate = (double)dn / dt;
    int m = snprintf(out + n, cap - (size_t)n, "  %.*f/s", rate < 10 ? 2 : 1, rate);
    if (m > 0) n += m;
    if (total > 0 && done < total && (size_t)n < cap) {
      char eta[32];
      fmt_duration(eta, sizeof eta, (double)(total - done) / rate);
      m = snprintf(out + n, cap - (size_t)n, "  ETA %s", eta);
      if (m > 0) n += m;
    }
  }
  return n;
}

void cli_progress_update(cli_progress *p, const char *stage, int64_t done, int64_t total) {
  if (!p->enabled) return;
  double t = cli_now();
  char line[160];
  int n = cli_progress_format(p, stage, done, total, t, line, sizeof line);
  if (n < 0) return;
  /* pad over a longer previous line instead of clearing (no escape codes) */
  int pad = p->width > n ? p->width - n : 0;
  fprintf(stderr, "\r%s%*s", line, pad, "");
  fflush(stderr);
  p->width = n;
  p->shown = 1;
}

void cli_progress_break(cli_progress *p) {
  if (p->shown) fputc('\n', stderr);
  p->shown = 0;
  p->width = 0;
}

/* mem.h: what the machine has, for messages that explain an allocation that
 * cannot or must not be made ("needs 27.9 GiB; 21.3 GiB available"). */
#ifndef CC_MEM_H
#define CC_MEM_H
#include <stddef.h>
#include <stdint.h>

/* Physical memory and the part the kernel reports as available
 * (MemAvailable); 0 when unknown. */
void cc_host_memory(uint64_t *total, uint64_t *avail);
/* "768 MiB", "27.9 GiB", "512 bytes" into buf; returns buf. */
const char *cc_fmt_bytes(char *buf, size_t cap, uint64_t bytes);
/* " (host memory: 21.3 GiB available of 23.4 GiB)" or "" when unknown,
 * to append to an out-of-memory message; returns buf. */
const char *cc_host_memory_note(char *buf, size_t cap);
#endif

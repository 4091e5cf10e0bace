/* probe.h: clocks and memory probes. CLOCK_MONOTONIC nanoseconds; the process's
 * resident set from /proc/self/statm (0 where the OS has no such file). */
#ifndef KVB_PROBE_H
#define KVB_PROBE_H

#include <stdint.h>
#include <stddef.h>

uint64_t kvb_now_ns(void);
uint64_t kvb_clock_resolution_ns(void);   /* smallest nonzero step seen between reads */
size_t   kvb_rss_bytes(void);

#endif

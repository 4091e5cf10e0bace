/* probe.h: clocks, memory probes and the CPU's name. CLOCK_MONOTONIC nanoseconds; the process's
 * resident set from /proc/self/statm (0 where the OS has no such file). */
#ifndef KVB_PROBE_H
#define KVB_PROBE_H

#include <stdint.h>
#include <stddef.h>

uint64_t kvb_now_ns(void);
uint64_t kvb_clock_resolution_ns(void);   /* smallest nonzero step seen between reads */
size_t   kvb_rss_bytes(void);
/* The CPU's model name from /proc/cpuinfo ("model name", or "Model" on arm64);
 * "unknown" where there is none. */
void     kvb_cpu_model(char *buf, size_t n);
/* That name as a file name: lower case, each run of other characters one '-'
 * ("Intel(R) Xeon(R) Processor" -> "intel-r-xeon-r-processor"): the folder of
 * this CPU's regression baseline. */
void     kvb_cpu_key(char *buf, size_t n);
void     kvb_cpu_key_of(const char *model, char *buf, size_t n);   /* the same for any name */
/* Memory the OS says a new allocation can take without swapping: MemAvailable
 * of /proc/meminfo, or less where a cgroup v2 limit (a container's) leaves
 * less, in bytes; 0 where the OS does not say. */
size_t   kvb_mem_available(void);

#endif

/* probe.c: see probe.h. */
#define _POSIX_C_SOURCE 200809L
#include "probe.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t kvb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t kvb_clock_resolution_ns(void)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 1000; i++) {
        uint64_t a = kvb_now_ns(), b;
        while ((b = kvb_now_ns()) == a) {}
        if (b - a < best) best = b - a;
    }
    return best;
}

size_t kvb_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return (n == 2 && page > 0) ? (size_t)resident * (size_t)page : 0;
}

void kvb_cpu_model(char *buf, size_t n)
{
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0 && strncmp(line, "Model", 5) != 0) continue;
        char *c = strchr(line, ':');
        if (!c) continue;
        c += 1 + (c[1] == ' ');
        c[strcspn(c, "\n")] = 0;
        snprintf(buf, n, "%s", c);
        break;
    }
    fclose(f);
}

void kvb_cpu_key_of(const char *model, char *buf, size_t n)
{
    if (!n) return;
    size_t o = 0;
    int dash = 0;
    for (const char *c = model; *c; c++) {
        char ch = *c;
        if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'))) { dash = 1; continue; }
        if (o + 1 + (dash && o > 0) >= n) break;
        if (dash && o > 0) buf[o++] = '-';
        buf[o++] = ch;
        dash = 0;
    }
    buf[o] = 0;
    if (o == 0) snprintf(buf, n, "unknown");
}

void kvb_cpu_key(char *buf, size_t n)
{
    char model[256];
    kvb_cpu_model(model, sizeof model);
    kvb_cpu_key_of(model, buf, n);
}

/* A cgroup v2 limit (memory.max) less what the group uses: a container's
 * own ceiling, which /proc/meminfo does not show. 0 when there is none. */
static size_t cgroup_room(void)
{
    char line[512], path[700];
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return 0;
    path[0] = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = 0;
            snprintf(path, sizeof path, "/sys/fs/cgroup%s", line + 3);
        }
    fclose(f);
    if (!path[0]) return 0;
    unsigned long long max = 0, cur = 0;
    char file[800];
    snprintf(file, sizeof file, "%s/memory.max", path);
    if (!(f = fopen(file, "r"))) return 0;
    int ok = fscanf(f, "%llu", &max) == 1;     /* "max": no limit */
    fclose(f);
    if (!ok) return 0;
    snprintf(file, sizeof file, "%s/memory.current", path);
    if ((f = fopen(file, "r"))) {
        if (fscanf(f, "%llu", &cur) != 1) cur = 0;
        fclose(f);
    }
    return max > cur ? (size_t)(max - cur) : 1;
}

size_t kvb_mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    size_t avail = (size_t)kb * 1024, room = cgroup_room();
    return room && (!avail || room < avail) ? room : avail;
}

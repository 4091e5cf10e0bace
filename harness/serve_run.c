/* serve_run.c: serve_run.h's workloads, budget rule, runs and rows. */
#define _GNU_SOURCE /* getline */
#include "serve_run.h"
#include "../base/probe.h"
#include "../base/stats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *kvb_arrival_name(kvb_arrival a)
{
    static const char *const names[] = {"poisson", "all", "trace"};
    return a >= 0 && a < KVB_ARRIVAL_COUNT ? names[a] : "?";
}

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int uniform_int(uint64_t *s, int lo, int hi)
{
    return lo + (int)(mix(s) % (uint64_t)(hi - lo + 1));
}

/* One trace line "arrival_s,prompt,output" into r; a message naming the
 * line and field when it is bad. */
static kvb_status trace_line(const char *path, int no, char *line, kvb_request *r, char *msg,
                             size_t msg_len)
{
    static const char *const names[] = {"arrival_s", "prompt", "output"};
    char *p = line;
    double v[3];
    for (int f = 0; f < 3; f++) {
        char *end = NULL;
        errno = 0;
        v[f] = strtod(p, &end);
        int sep = f < 2 ? ',' : 0;
        while (end && (*end == ' ' || *end == '\r' || *end == '\n')) end++;
        int ok = end != p && errno == 0 && end && *end == sep && isfinite(v[f]) &&
                 (f == 0 ? v[f] >= 0 : v[f] >= 1 && v[f] <= (1 << 20) && v[f] == floor(v[f]));
        if (!ok) {
            size_t n = strcspn(p, ",\r\n");
            snprintf(msg, msg_len, "trace '%s' line %d field %d (%s) '%.*s': %s", path, no, f + 1,
                     names[f], (int)(n > 40 ? 40 : n), p,
                     f == 0 ? "wants seconds >= 0, then a comma"
                            : "wants a whole number of tokens in 1..1048576");
            return KVB_STATUS_FORMAT;
        }
        p = end + 1;
    }
    r->arrival_s = v[0];
    r->prompt_len = (int)v[1];
    r->output_len = (int)v[2];
    return KVB_STATUS_OK;
}

static kvb_status read_trace(const char *path, kvb_workload *w, char *msg, size_t msg_len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(msg, msg_len, "trace '%s': %s", path, strerror(errno));
        return KVB_STATUS_IO;
    }
    char *line = NULL;
    size_t cap = 0;
    int no = 0, n = 0, room = 0;
    kvb_status st = KVB_STATUS_OK;
    while (st == KVB_STATUS_OK && getline(&line, &cap, f) >= 0) {
        no++;
        char *p = line + strspn(line, " \t");
        if (*p == '#' || *p == '\n' || *p == '\r' || !*p) continue;
        if (no == 1 && strncmp(p, "arrival_s,", 10) == 0) continue; /* the header */
        if (n == room) {
            room = room ? 2 * room : 64;
            kvb_request *q = realloc(w->req, (size_t)room * sizeof *q);
            if (!q) {
                snprintf(msg, msg_len, "trace '%s': out of memory at line %d", path, no);
                st = KVB_STATUS_NO_MEMORY;
                break;
            }
            w->req = q;
        }
        kvb_request *r = &w->req[n];
        st = trace_line(path, no, p, r, msg, msg_len);
        if (st == KVB_STATUS_OK && n && r->arrival_s < w->req[n - 1].arrival_s) {
            snprintf(msg, msg_len,
                     "trace '%s' line %d field 1 (arrival_s) %g: before the line above's %g "
                     "(arrivals in order)",
                     path, no, r->arrival_s, w->req[n - 1].arrival_s);
            st = KVB_STATUS_FORMAT;
        }
        n += st == KVB_STATUS_OK;
    }
    if (st == KVB_STATUS_OK && ferror(f)) {
        snprintf(msg, msg_len, "trace '%s': %s", path, strerror(errno));
        st = KVB_STATUS_IO;
    }
    if (st == KVB_STATUS_OK && n == 0) {
        snprintf(msg, msg_len, "trace '%s': no requests (lines arrival_s,prompt,output)", path);
        st = KVB_STATUS_FORMAT;
    }
    free(line);
    fclose(f);
    w->n = n;
    return st;
}

kvb_status kvb_workload_make(const kvb_workload_config *c, kvb_workload *w, char *msg,
                             size_t msg_len)
{
    memset(w, 0, sizeof *w);
    kvb_status st = KVB_STATUS_OK;
    uint64_t s = c->seed * 0x2545f4914f6cdd1dull + 7;
    if (c->arrival == KVB_ARRIVAL_TRACE) {
        if ((st = read_trace(c->trace, w, msg, msg_len)) != KVB_STATUS_OK) {
            kvb_workload_free(w);
            return st;
        }
    } else {
        w->n = c->n_requests;
        w->req = calloc((size_t)w->n, sizeof *w->req);
        if (!w->req) goto oom;
        double t = 0;
        for (int i = 0; i < w->n; i++) {
            kvb_request *r = &w->req[i];
            /* gaps drawn at rate 1 and scaled: every rate serves the same list */
            double u = ((double)(mix(&s) >> 11) + 0.5) / 9007199254740992.0;
            if (c->arrival == KVB_ARRIVAL_POISSON) t += -log(u) / c->rate;
            r->arrival_s = c->arrival == KVB_ARRIVAL_POISSON ? t : 0;
            r->prompt_len = uniform_int(&s, c->prompt_lo, c->prompt_hi);
            r->output_len = uniform_int(&s, c->output_lo, c->output_hi);
        }
    }
    size_t total = 0;
    for (int i = 0; i < w->n; i++) {
        kvb_request *r = &w->req[i];
        r->id = i;
        r->prefix_len = c->shared_prefix;
        r->prompt_len += c->shared_prefix;
        total += (size_t)r->prompt_len;
        if (r->prompt_len + r->output_len > w->max_len) w->max_len = r->prompt_len + r->output_len;
    }
    if (c->max_len) {
        if (c->max_len < w->max_len) {
            snprintf(msg, msg_len, "--max-len %d is below the longest request (%d tokens: "
                     "prompt + output)", c->max_len, w->max_len);
            kvb_workload_free(w);
            return KVB_STATUS_INVALID_ARG;
        }
        w->max_len = c->max_len;
    }
    w->tokens = malloc((total ? total : 1) * sizeof *w->tokens);
    if (!w->tokens) goto oom;
    uint64_t shared_seed = c->seed ^ 0x5851f42d4c957f2dull;
    int *p = w->tokens;
    for (int i = 0; i < w->n; i++) {
        kvb_request *r = &w->req[i];
        uint64_t ts = shared_seed;
        for (int j = 0; j < r->prompt_len; j++)
            p[j] = (int)(mix(j < c->shared_prefix ? &ts : &s) % (uint64_t)c->vocab);
        r->prompt = p;
        p += r->prompt_len;
    }
    return KVB_STATUS_OK;
oom:
    snprintf(msg, msg_len, "out of memory for %d requests", w->n);
    kvb_workload_free(w);
    return KVB_STATUS_NO_MEMORY;
}

void kvb_workload_free(kvb_workload *w)
{
    free(w->req);
    free(w->tokens);
    memset(w, 0, sizeof *w);
}

size_t kvb_serve_token_bytes(const kvb_model_config *mc, const kvb_serve_case *c)
{
    double bits = kvb_dtype_bits(c->opt.dtype, c->opt.group);
    return (size_t)ceil(2.0 * mc->n_layers * mc->n_kv_heads * mc->head_dim * bits / 8.0);
}

int kvb_serve_can_swap(const kvb_serve_case *c)
{
    return c->backend->version >= 4 && c->backend->seq_save && c->backend->seq_load;
}

kvb_status kvb_serve_plan(const kvb_model_config *mc, const kvb_serve_case *c,
                          const kvb_serve_setup *su_all, int max_len, int state_rows,
                          kvb_options *o,
                          kvb_sched_config *sc, char *msg, size_t msg_len)
{
    kvb_serve_setup one = *su_all; /* with the case's own budget */
    const kvb_serve_setup *su = &one;
    if (c->budget_bytes) one.budget_bytes = c->budget_bytes;
    const size_t tb = kvb_serve_token_bytes(mc, c);
    const int paged = (c->backend->flags & KVB_BACKEND_PAGED) != 0;
    const int prealloc = !paged && c->opt.alloc == KVB_ALLOC_PREALLOC;
    const int bt = paged ? (c->opt.block_tokens ? c->opt.block_tokens : 16) : 16;
    /* one request at its longest: whole blocks, or max_len tokens (a grow
     * sequence's capacity doubles but stops at the cache's max_seq) */
    size_t need = paged ? (size_t)((max_len + bt - 1) / bt) * bt * tb : (size_t)max_len * tb;
    if (su->budget_bytes < need) {
        snprintf(msg, msg_len,
                 "--kv-budget %zu bytes is below what %s needs for one request of %d tokens "
                 "(%zu bytes); raise it or shorten the requests",
                 su->budget_bytes, c->name, max_len, need);
        return KVB_STATUS_INVALID_ARG;
    }
    int batch = su->max_batch < state_rows ? su->max_batch : state_rows;
    /* a backend that cannot fork serves the same requests unshared */
    int prefix_slots = su->prefix_cache && c->backend->seq_fork ? 4 : 0;
    if (prealloc) {
        size_t slots = su->budget_bytes / need;
        prefix_slots = prefix_slots && slots >= 2 ? 1 : 0;
        if (slots - (size_t)prefix_slots < (size_t)batch) batch = (int)slots - prefix_slots;
    }
    *o = c->opt;
    o->max_seqs = batch + prefix_slots;
    if (paged) {
        o->block_tokens = bt;
        o->pool_bytes = su->budget_bytes;
        o->pool_blocks = 0;
    }
    *sc = (kvb_sched_config){.max_batch = batch,
                             .prefix_slots = prefix_slots,
                             .block_tokens = bt,
                             .budget_bytes = su->budget_bytes,
                             .token_bytes = tb,
                             .reserve_tokens = prealloc ? max_len : 0,
                             .preempt = kvb_serve_can_swap(c) ? c->preempt
                                                              : KVB_PREEMPT_RECOMPUTE,
                             .swap_bytes = su->swap_bytes};
    return KVB_STATUS_OK;
}

static void pcts(double *x, size_t n, double out[3])
{
    out[0] = kvb_quantile(x, n, 0.5);
    out[1] = kvb_quantile(x, n, 0.9);
    out[2] = kvb_quantile(x, n, 0.99);
}

static kvb_status summarize(const kvb_workload *w, const kvb_req_result *res,
                            const kvb_sched_stats *st, kvb_serve_summary *s)
{
    size_t n_itl = 0;
    for (int i = 0; i < w->n; i++) n_itl += res[i].n_out > 1 ? (size_t)res[i].n_out - 1 : 0;
    double *ttft = malloc(((size_t)w->n + 1) * sizeof *ttft);
    double *tpot = malloc(((size_t)w->n + 1) * sizeof *tpot);
    double *itl = malloc((n_itl + 1) * sizeof *itl);
    if (!ttft || !tpot || !itl) {
        free(ttft), free(tpot), free(itl);
        return KVB_STATUS_NO_MEMORY;
    }
    size_t a = 0, b = 0, k = 0;
    for (int i = 0; i < w->n; i++) {
        const kvb_req_result *r = &res[i];
        if (r->outcome != KVB_REQ_OUTCOME_FINISHED) continue;
        ttft[a++] = r->first_s - w->req[i].arrival_s;
        if (r->n_out > 1) tpot[b++] = (r->finish_s - r->first_s) / (r->n_out - 1);
        for (int j = 1; j < r->n_out; j++) itl[k++] = r->token_s[j] - r->token_s[j - 1];
    }
    pcts(ttft, a, s->ttft);
    pcts(tpot, b, s->tpot);
    pcts(itl, k, s->itl);
    free(ttft), free(tpot), free(itl);
    s->finished = st->finished;
    s->rejected = st->rejected;
    s->preemptions = st->preemptions;
    s->sim_s = st->end_s;
    s->throughput = st->end_s > 0 ? (double)st->out_tokens / st->end_s : 0;
    s->prefix_lookups = st->prefix_lookups;
    s->prefix_hits = st->prefix_hits;
    s->prefix_tokens = st->prefix_tokens;
    s->swaps_out = st->swaps_out;
    s->swaps_in = st->swaps_in;
    s->swap_peak = st->swap_peak;
    s->swap_s = st->swap_s;
    double bsum = 0, used = 0, resv = 0, saved = 0;
    int nb = 0;
    for (int i = 0; i < st->n_steps; i++) {
        const kvb_sched_step *p = &st->steps[i];
        if (p->batch > 0) {
            bsum += p->batch;
            nb++;
            if (p->batch > s->batch_max) s->batch_max = p->batch;
        }
        used += (double)p->used / (double)s->budget_bytes;
        resv += (double)p->reserved / (double)s->budget_bytes;
        double sv = p->seq_used > p->used ? (double)(p->seq_used - p->used) : 0;
        saved += sv;
        if (sv > s->saved_max) s->saved_max = sv;
    }
    int ns = st->n_steps ? st->n_steps : 1;
    s->batch_mean = nb ? bsum / nb : 0;
    s->kv_used_mean = used / ns;
    s->kv_reserved_mean = resv / ns;
    s->saved_mean = saved / ns;
    return KVB_STATUS_OK;
}

/* One case in flight: its cache, scheduler and configuration (which the
 * scheduler reads by reference). */
typedef struct case_run {
    kvb_cache *cache;
    kvb_sched *sched;
    kvb_sched_config sc;
    int done;
} case_run;

/* Case k's cache and scheduler; the summary's fixed fields. */
static kvb_status case_setup(const kvb_model *m, kvb_state *s, const kvb_serve_case *c,
                             const kvb_serve_setup *su, const kvb_workload *w, double rate,
                             kvb_serve_summary *sum, kvb_req_result *res, kvb_sched_stats *st,
                             case_run *cr, char *msg, size_t msg_len)
{
    memset(sum, 0, sizeof *sum);
    memset(st, 0, sizeof *st);
    memset(res, 0, (size_t)w->n * sizeof *res);
    memset(cr, 0, sizeof *cr);
    kvb_options o;
    kvb_status r =
        kvb_serve_plan(&m->cfg, c, su, w->max_len, s->max_seq, &o, &cr->sc, msg, msg_len);
    if (r != KVB_STATUS_OK) return r;
    kvb_shape sh = kvb_model_kv_shape(&m->cfg);
    sh.max_seq = w->max_len;
    if ((r = kvb_cache_create(&cr->cache, c->backend, &sh, &o, msg, msg_len)) != KVB_STATUS_OK)
        return r;
    sum->rate = rate;
    sum->n_requests = w->n;
    sum->budget_bytes = cr->sc.budget_bytes;
    sum->max_seqs = o.max_seqs;
    sum->max_batch = cr->sc.max_batch;
    r = kvb_sched_start(&cr->sched, m, s, cr->cache, &cr->sc, w->req, w->n, res, st, msg,
                        msg_len);
    cr->done = w->n == 0;
    return r;
}

/* Case k's figures once its scheduler is done (or failed with r); its
 * scheduler and cache freed. */
static kvb_status case_finish(const kvb_serve_case *c, const kvb_workload *w, case_run *cr,
                              kvb_status r, kvb_serve_summary *sum, kvb_req_result *res,
                              kvb_sched_stats *st, char *msg, size_t msg_len)
{
    sum->wall_s = cr->sched ? kvb_sched_wall_s(cr->sched) : 0;
    kvb_sched_end(cr->sched);
    kvb_cache_destroy(cr->cache);
    cr->sched = NULL;
    cr->cache = NULL;
    if (r == KVB_STATUS_OK && summarize(w, res, st, sum) != KVB_STATUS_OK) {
        snprintf(msg, msg_len, "out of memory for the latency figures");
        r = KVB_STATUS_NO_MEMORY;
    }
    if (c->backend->flags & KVB_BACKEND_PAGED)
        sum->saved_max_blocks =
            sum->saved_max / ((double)cr->sc.block_tokens * (double)cr->sc.token_bytes);
    return r;
}

void kvb_serve_cases_run(const kvb_model *m, kvb_state *s, const kvb_serve_case *cs, int n,
                         const kvb_serve_setup *su, const kvb_workload *w, double rate,
                         int interleave, kvb_serve_summary *sums, kvb_req_result *res,
                         kvb_sched_stats *sts, kvb_status *rcs, char (*msgs)[KVB_SERVE_MSG])
{
    case_run *cr = calloc((size_t)n, sizeof *cr);
    for (int k = 0; k < n; k++) {
        msgs[k][0] = 0;
        rcs[k] = cr ? KVB_STATUS_OK : KVB_STATUS_NO_MEMORY;
    }
    if (!cr) {
        for (int k = 0; k < n; k++) snprintf(msgs[k], KVB_SERVE_MSG, "out of memory");
        return;
    }
    kvb_req_result *rk;
    /* interleaved: every case set up, then a round each in turn until all are
     * done, so a noisy stretch of the machine falls on all of them alike;
     * else one case from start to end after another */
    for (int k0 = 0; k0 < n; k0 = interleave ? n : k0 + 1) {
        const int k1 = interleave ? n : k0 + 1;
        for (int k = k0; k < k1; k++) {
            rk = res + (size_t)k * w->n;
            rcs[k] = case_setup(m, s, &cs[k], su, w, rate, &sums[k], rk, &sts[k], &cr[k],
                                msgs[k], KVB_SERVE_MSG);
            if (rcs[k] != KVB_STATUS_OK) cr[k].done = 1;
        }
        for (int busy = 1; busy;) {
            busy = 0;
            for (int k = k0; k < k1; k++) {
                if (cr[k].done) continue;
                rcs[k] = kvb_sched_round(cr[k].sched, &cr[k].done);
                if (rcs[k] != KVB_STATUS_OK) cr[k].done = 1;
                busy |= !cr[k].done;
            }
        }
        for (int k = k0; k < k1; k++) {
            rk = res + (size_t)k * w->n;
            rcs[k] = case_finish(&cs[k], w, &cr[k], rcs[k], &sums[k], rk, &sts[k], msgs[k],
                                 KVB_SERVE_MSG);
        }
    }
    free(cr);
}

/* the mode column: a paged case's block, else the allocation */
static void case_mode(const kvb_serve_case *c, char *buf, size_t n)
{
    if (c->backend->flags & KVB_BACKEND_PAGED)
        snprintf(buf, n, "bs%d", c->opt.block_tokens ? c->opt.block_tokens : 16);
    else
        snprintf(buf, n, "%s", kvb_alloc_name(c->opt.alloc));
}

void kvb_serve_write_row(FILE *f, const kvb_serve_case *c, const kvb_serve_summary *s)
{
    char mode[32];
    case_mode(c, mode, sizeof mode);
    fprintf(f, "%s,%s,%s,%s,%g,%d,%zu,%d,%d,%d,%d,%d,%.6f,%.6f,%.3f,%.3f,%d", c->name,
            c->backend->name, kvb_dtype_name(c->opt.dtype), mode, s->rate, s->n_requests,
            s->budget_bytes, s->max_seqs, s->max_batch, s->finished, s->rejected, s->preemptions,
            s->sim_s, s->wall_s, s->throughput, s->batch_mean, s->batch_max);
    const double *v[3] = {s->ttft, s->tpot, s->itl};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) fprintf(f, ",%.6f", v[i][j]);
    fprintf(f, ",%.5f,%.5f,%d,%d,%.4f,%lld,%.0f,%.0f,%.1f,%s,%d,%d,%zu,%.6f\n", s->kv_used_mean,
            s->kv_reserved_mean, s->prefix_lookups, s->prefix_hits,
            s->prefix_lookups ? (double)s->prefix_hits / s->prefix_lookups : 0.0, s->prefix_tokens,
            s->saved_mean, s->saved_max, s->saved_max_blocks,
            kvb_preempt_name(kvb_serve_can_swap(c) ? c->preempt : KVB_PREEMPT_RECOMPUTE),
            s->swaps_out, s->swaps_in, s->swap_peak, s->swap_s);
}

void kvb_serve_write_requests(FILE *f, const kvb_serve_case *c, double rate, const kvb_workload *w,
                              const kvb_req_result *res)
{
    static const char *const outcome[] = {"pending", "finished", "rejected"};
    for (int i = 0; i < w->n; i++) {
        const kvb_request *q = &w->req[i];
        const kvb_req_result *r = &res[i];
        int fin = r->outcome == KVB_REQ_OUTCOME_FINISHED;
        fprintf(f, "%s,%g,%d,%.6f,%d,%d,%s,%d,%.6f,%.6f,%.6f,%.6f,%d,%d,%d\n", c->name, rate, q->id,
                q->arrival_s, q->prompt_len, q->output_len, outcome[r->outcome], r->n_out,
                fin ? r->first_s : NAN, fin ? r->finish_s : NAN,
                fin ? r->first_s - q->arrival_s : NAN,
                fin && r->n_out > 1 ? (r->finish_s - r->first_s) / (r->n_out - 1) : NAN,
                r->preemptions, r->prefix_hit_tokens, r->swaps);
    }
}

void kvb_serve_write_steps(FILE *f, const kvb_serve_case *c, double rate, const kvb_sched_stats *st)
{
    for (int i = 0; i < st->n_steps; i++) {
        const kvb_sched_step *p = &st->steps[i];
        fprintf(f, "%s,%g,%d,%.6f,%d,%d,%d,%zu,%zu,%zu\n", c->name, rate, i, p->t_s, p->batch,
                p->running, p->waiting, p->used, p->reserved, p->seq_used);
    }
}

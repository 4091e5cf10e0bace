/* serve.c: see serve.h. */
#include "serve.h"
#include "../base/probe.h"
#include "../base/stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *kvb_len_dist_name(kvb_len_dist d)
{
    static const char *const n[KVB_LEN_COUNT] = {"uniform", "longtail"};
    return d >= 0 && d < KVB_LEN_COUNT ? n[d] : "?";
}

const char *kvb_fork_kind_name(kvb_fork_kind f)
{
    static const char *const n[KVB_FORK_COUNT] = {"none", "parallel", "beam"};
    return f >= 0 && f < KVB_FORK_COUNT ? n[f] : "?";
}

enum { REQ_WAITING, REQ_RUNNING, REQ_DONE };

typedef struct sim {
    const kvb_backend      *b;
    kvb_cache              *c;
    const kvb_serve_config *cfg;
    int       group;          /* sequences per request */
    int      *prompt;         /* [request] */
    int      *target;         /* [slot] prompt + output */
    int      *cur;            /* [slot] tokens held */
    int      *state;          /* [request] REQ_* */
    long long *admitted_at;   /* [request] admission stamp; the largest is preempted first */
    long long stamp;
    int      *queue, q_head, q_len;   /* waiting requests, front first */
    float    *k, *v, *q, *out;        /* one token's K/V, one query, its output */
    uint64_t  rng;
    int       preemptions;
} sim;

static double unif(uint64_t *s)   /* [0, 1) */
{
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return (double)(*s >> 11) * (1.0 / 9007199254740992.0);
}

static int draw_len(uint64_t *s, kvb_len_dist d, int max)
{
    int n;
    if (d == KVB_LEN_LONGTAIL) {
        double u1 = unif(s), u2 = unif(s);
        double z = sqrt(-2.0 * log(u1 > 0 ? u1 : 1e-300)) * cos(6.283185307179586 * u2);
        n = (int)ceil(exp(log(max / 8.0 > 1 ? max / 8.0 : 1) + z));
    } else
        n = 1 + (int)(unif(s) * max);
    return n < 1 ? 1 : n > max ? max : n;
}

static int paged(const sim *S) { return (S->b->flags & KVB_BACKEND_PAGED) != 0; }

/* Over budget: a paged pool says FULL itself; a dense cache is judged by its
 * reserved bytes after the fact. */
static int over_budget(const sim *S)
{
    return !paged(S) && kvb_cache_memory(S->c).reserved > S->cfg->budget_bytes;
}

/* One token into every layer of slot, then (optionally) attention over each. */
static kvb_status step(sim *S, int slot)
{
    for (int l = 0; l < S->cfg->shape.n_layers; l++) {
        kvb_status st = kvb_cache_append(S->c, slot, l, S->k, S->v);
        if (st != KVB_STATUS_OK) return st;   /* paged: only layer 0 takes blocks */
        if (S->cfg->attend) kvb_cache_attend(S->c, slot, l, S->q, S->out);
    }
    S->cur[slot]++;
    return KVB_STATUS_OK;
}

static void release(sim *S, int r)
{
    for (int i = 0; i < S->group; i++) {
        kvb_cache_seq_clear(S->c, r * S->group + i);
        S->cur[r * S->group + i] = 0;
    }
}

/* Frees the most recently admitted running request and queues it first. */
static int preempt_latest(sim *S)
{
    int victim = -1;
    for (int r = 0; r < S->cfg->n_requests; r++)
        if (S->state[r] == REQ_RUNNING &&
            (victim < 0 || S->admitted_at[r] > S->admitted_at[victim]))
            victim = r;
    if (victim < 0) return -1;
    release(S, victim);
    S->state[victim] = REQ_WAITING;
    S->q_head = (S->q_head + S->cfg->n_requests - 1) % S->cfg->n_requests;
    S->queue[S->q_head] = victim;
    S->q_len++;
    S->preemptions++;
    return victim;
}

/* Prefills request r's prompt and forks its other sequences; undoes all of it
 * and returns FULL when memory runs out. */
static kvb_status admit(sim *S, int r)
{
    int base = r * S->group;
    kvb_status st = KVB_STATUS_OK;
    for (int t = 0; st == KVB_STATUS_OK && t < S->prompt[r]; t++) {
        for (int l = 0; st == KVB_STATUS_OK && l < S->cfg->shape.n_layers; l++)
            st = kvb_cache_append(S->c, base, l, S->k, S->v);
        if (st == KVB_STATUS_OK) S->cur[base]++;
    }
    if (st == KVB_STATUS_OK && over_budget(S)) st = KVB_STATUS_FULL;
    for (int i = 1; st == KVB_STATUS_OK && i < S->group; i++) {
        st = kvb_cache_seq_fork(S->c, base, base + i);
        if (st == KVB_STATUS_OK) S->cur[base + i] = S->cur[base];
        if (st == KVB_STATUS_OK && over_budget(S)) st = KVB_STATUS_FULL;
    }
    if (st != KVB_STATUS_OK) { release(S, r); return st; }
    S->state[r] = REQ_RUNNING;
    S->admitted_at[r] = ++S->stamp;
    return KVB_STATUS_OK;
}

kvb_status kvb_serve_run(const kvb_backend *b, kvb_options o, const kvb_serve_config *cfg,
                         kvb_serve_result *res)
{
    memset(res, 0, sizeof *res);
    sim S = {.b = b, .cfg = cfg, .group = cfg->fork == KVB_FORK_NONE ? 1 : cfg->fork_n,
             .rng = cfg->seed * 0x9e3779b97f4a7c15ull + 7};
    const int N = cfg->n_requests, slots = N * S.group;
    if (!b->append || !b->attend || !b->seq_clear) {
        snprintf(res->reason, sizeof res->reason, "%s holds no K/V or cannot free a sequence",
                 b->name);
        return res->status = KVB_STATUS_UNSUPPORTED;
    }
    if (S.group > 1 && !b->seq_fork) {
        snprintf(res->reason, sizeof res->reason, "%s cannot fork", b->name);
        return res->status = KVB_STATUS_UNSUPPORTED;
    }
    o.max_seqs = slots;
    if (b->flags & KVB_BACKEND_PAGED) { o.pool_bytes = cfg->budget_bytes; o.pool_blocks = 0; }
    size_t kvd = (size_t)cfg->shape.n_kv_heads * cfg->shape.head_dim;
    size_t qd = (size_t)cfg->shape.n_heads * cfg->shape.head_dim;
    S.prompt = calloc((size_t)N, sizeof *S.prompt);
    S.state = calloc((size_t)N, sizeof *S.state);
    S.admitted_at = calloc((size_t)N, sizeof *S.admitted_at);
    S.queue = calloc((size_t)N, sizeof *S.queue);
    S.target = calloc((size_t)slots, sizeof *S.target);
    S.cur = calloc((size_t)slots, sizeof *S.cur);
    S.k = malloc(kvd * sizeof *S.k);
    S.v = malloc(kvd * sizeof *S.v);
    S.q = malloc(qd * sizeof *S.q);
    S.out = malloc(qd * sizeof *S.out);
    size_t cap_steps = 1 << 16, n_steps = 0;
    double *steps = malloc(cap_steps * sizeof *steps);
    kvb_status st = KVB_STATUS_NO_MEMORY;
    if (!S.prompt || !S.state || !S.admitted_at || !S.queue || !S.target || !S.cur || !S.k ||
        !S.v || !S.q || !S.out || !steps)
        goto out;
    /* the same seeded workload for every backend */
    uint64_t ws = cfg->seed * 2654435761u + 99;
    for (int r = 0; r < N; r++) {
        S.prompt[r] = draw_len(&ws, cfg->lengths, cfg->max_prompt);
        int out_len = draw_len(&ws, cfg->lengths, cfg->max_output);
        for (int i = 0; i < S.group; i++) {
            int oi = cfg->fork == KVB_FORK_PARALLEL && i
                         ? draw_len(&ws, cfg->lengths, cfg->max_output)
                         : out_len;
            S.target[r * S.group + i] = S.prompt[r] + oi;
        }
        S.queue[r] = r;
    }
    S.q_len = N;
    for (size_t i = 0; i < kvd; i++) {
        S.k[i] = (float)(unif(&S.rng) - 0.5);
        S.v[i] = (float)(unif(&S.rng) - 0.5);
    }
    for (size_t i = 0; i < qd; i++) S.q[i] = (float)(unif(&S.rng) - 0.5);
    char msg[256] = "";
    st = kvb_cache_create(&S.c, b, &cfg->shape, &o, msg, sizeof msg);
    if (st != KVB_STATUS_OK) {
        snprintf(res->reason, sizeof res->reason, "create: %s", msg);
        goto out;
    }

    uint64_t t_start = kvb_now_ns();
    int done = 0, running = 0;
    double util_sum = 0, live_sum = 0, saved_sum = 0, run_sum = 0;
    int util_n = 0, saved_n = 0;
    uint64_t deadline = cfg->time_budget_s > 0 ? t_start + (uint64_t)(cfg->time_budget_s * 1e9) : 0;
    for (int round = 0; done < N; round++) {
        if (deadline && kvb_now_ns() > deadline) {
            res->cut_short = 1;
            snprintf(res->reason, sizeof res->reason,
                     "time budget %.1f s reached after %d rounds, %d of %d "
                     "requests finished",
                     cfg->time_budget_s, round, done, N);
            break;
        }
        if (round > 100 * (cfg->max_prompt + cfg->max_output) + 10 * N) {
            snprintf(res->reason, sizeof res->reason, "no progress after %d rounds", round);
            st = KVB_STATUS_FULL;
            goto out;
        }
        /* admission, first come first served (a large budget admits many
         * long prompts in one round: the time budget is checked per request) */
        while (S.q_len > 0 && !(deadline && running > 0 && kvb_now_ns() > deadline)) {
            int r = S.queue[S.q_head];
            if (admit(&S, r) != KVB_STATUS_OK) {
                if (running == 0) {
                    snprintf(res->reason, sizeof res->reason,
                             "request %d (prompt %d x %d sequences) "
                             "does not fit the %.1f MB budget alone",
                             r, S.prompt[r], S.group, (double)cfg->budget_bytes / 1e6);
                    st = KVB_STATUS_FULL;
                    goto out;
                }
                break;
            }
            S.q_head = (S.q_head + 1) % N;
            S.q_len--;
            running++;
        }
        /* beams drop about half of themselves and refill from survivors */
        if (cfg->fork == KVB_FORK_BEAM && round % 4 == 3)
            for (int r = 0; r < N; r++) {
                if (S.state[r] != REQ_RUNNING) continue;
                for (int i = 1; i < S.group; i++) {
                    if (unif(&S.rng) < 0.5) continue;
                    int child = r * S.group + i,
                        parent = r * S.group + (int)(unif(&S.rng) * S.group);
                    if (parent == child || S.cur[parent] != S.cur[child]) continue;
                    kvb_cache_seq_clear(S.c, child);
                    if (kvb_cache_seq_fork(S.c, parent, child) != KVB_STATUS_OK) {
                        S.cur[child] = 0;      /* no room to fork: the beam is dropped */
                        continue;
                    }
                }
                while (over_budget(&S) && running > 1) {
                    if (preempt_latest(&S) >= 0) running--;
                }
            }
        /* one token for every running sequence */
        for (int r = 0; r < N; r++) {
            if (S.state[r] != REQ_RUNNING) continue;
            int finished = 0;
            for (int i = 0; i < S.group && S.state[r] == REQ_RUNNING; i++) {
                int slot = r * S.group + i;
                if (S.cur[slot] >= S.target[slot] || S.cur[slot] == 0) { finished++; continue; }
                uint64_t t0 = kvb_now_ns();
                kvb_status s2 = step(&S, slot);
                while (s2 == KVB_STATUS_FULL || (s2 == KVB_STATUS_OK && over_budget(&S))) {
                    int victim = preempt_latest(&S);
                    if (victim >= 0) running--;
                    if (victim == r && running == 0) {
                        snprintf(res->reason, sizeof res->reason, "request %d needs more than the "
                                 "%.1f MB budget alone (%d sequences, %d tokens)", r,
                                 (double)cfg->budget_bytes / 1e6, S.group, S.target[slot]);
                        st = KVB_STATUS_FULL;
                        goto out;
                    }
                    if (victim == r || victim < 0) break;
                    if (s2 == KVB_STATUS_FULL) s2 = step(&S, slot);
                }
                if (S.state[r] != REQ_RUNNING) break;        /* r itself was preempted */
                if (s2 != KVB_STATUS_OK) {
                    snprintf(res->reason, sizeof res->reason, "append failed: %s",
                             kvb_status_str(s2));
                    st = s2;
                    goto out;
                }
                if (n_steps == cap_steps) {
                    double *grown = realloc(steps, 2 * cap_steps * sizeof *steps);
                    if (!grown) { st = KVB_STATUS_NO_MEMORY; goto out; }
                    steps = grown;
                    cap_steps *= 2;
                }
                steps[n_steps++] = (double)(kvb_now_ns() - t0);
                res->tokens++;
                if (S.cur[slot] >= S.target[slot]) {
                    finished++;
                    kvb_cache_seq_clear(S.c, slot);          /* its memory goes back at once */
                }
            }
            if (S.state[r] == REQ_RUNNING && finished == S.group) {
                S.state[r] = REQ_DONE;
                for (int i = 0; i < S.group; i++)
                    res->output_tokens += S.target[r * S.group + i] - S.prompt[r];
                done++;
                running--;
            }
        }
        /* what this round held */
        kvb_memory m = kvb_cache_memory(S.c);
        int live = 0;
        size_t unshared = 0;
        for (int sl = 0; sl < slots; sl++) {
            if (S.state[sl / S.group] != REQ_RUNNING || S.cur[sl] == 0 || S.cur[sl] >= S.target[sl])
                continue;
            live++;
            kvb_memory sm;
            if (kvb_cache_seq_memory(S.c, sl, &sm) == KVB_STATUS_OK) unshared += sm.reserved;
        }
        if (m.reserved > 0) {
            util_sum += (double)m.used / (double)m.reserved;
            live_sum += (double)m.used / (double)cfg->budget_bytes;
            util_n++;
        }
        if (unshared > 0) { saved_sum += 1.0 - (double)m.reserved / (double)unshared; saved_n++; }
        run_sum += live;
        if (live > res->max_running) res->max_running = live;
        res->rounds = round + 1;
    }
    res->wall_s = (double)(kvb_now_ns() - t_start) / 1e9;
    res->finished = done;
    res->preemptions = S.preemptions;
    res->mean_running = res->rounds ? run_sum / res->rounds : 0;
    res->utilization = util_n ? util_sum / util_n : NAN;
    res->budget_live = util_n ? live_sum / util_n : NAN;
    res->sharing_saved = saved_n ? saved_sum / saved_n : 0;
    res->step_ns_median = kvb_median(steps, n_steps);
    res->step_ns_p10 = kvb_quantile(steps, n_steps, 0.1);
    res->step_ns_p90 = kvb_quantile(steps, n_steps, 0.9);
    st = KVB_STATUS_OK;
out:
    kvb_cache_destroy(S.c);
    free(S.prompt); free(S.state); free(S.admitted_at); free(S.queue); free(S.target); free(S.cur);
    free(S.k); free(S.v); free(S.q); free(S.out); free(steps);
    res->status = st;
    return st;
}

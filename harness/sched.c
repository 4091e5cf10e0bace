/* sched.c: the continuous-batching scheduler of sched.h: a waiting queue,
 * running requests on cache slots, admission, preemption by recompute, and
 * the prefix table. Nothing here sleeps: the clock moves by model calls. */
#include "sched.h"
#include "../base/probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct prefix_entry {
    uint64_t hash;
    const int *toks; /* [len] the prompt that filled it (requests outlive the run) */
    int len, refs, live;
    long long last; /* tick of its last use: least recently used goes first */
} prefix_entry;

typedef struct kvb_sched engine;

struct kvb_sched {
    const kvb_model *m;
    kvb_state *s;
    kvb_cache *c;
    const kvb_sched_config *cfg;
    const kvb_request *reqs;
    kvb_req_result *res;
    kvb_sched_stats *st;
    int n, max_seq, paged, block_tokens, n_slots;
    double t;
    int *wait; /* [n] ring of request indices */
    int w_head, w_len;
    int *run_req, *run_slot, *run_ent; /* [max_batch] in admission order: newest last */
    int n_run;
    int *slot_busy;    /* [max_batch] */
    prefix_entry *ent; /* [prefix_slots], entry k on slot max_batch + k */
    long long tick;
    void **swapped;             /* [n] a swapped-out request's saved sequence, or NULL */
    size_t *swapped_len;        /* [n] its bytes */
    size_t swap_used;           /* host bytes swapped sequences hold now */
    int *buf;                   /* [max_seq] a prompt plus the tokens generated so far */
    float *logits;              /* [max_batch][vocab] */
    int *b_seq, *b_tok, *b_pos; /* [max_batch] */
    char *msg;
    size_t msg_len;
    int arrived;  /* requests reqs[0..arrived) have joined the queue or been rejected */
    double wall;  /* seconds this engine's rounds took */
};

const char *kvb_preempt_name(kvb_preempt p)
{
    static const char *const names[] = {"recompute", "swap"};
    return p >= 0 && p < KVB_PREEMPT_COUNT ? names[p] : "?";
}

/* The clock moves by the time since t0; returns that step. */
static double advance(engine *e, uint64_t t0)
{
    double dt = e->cfg->step_cost_s > 0 ? e->cfg->step_cost_s : (double)(kvb_now_ns() - t0) * 1e-9;
    e->t += dt;
    return dt;
}

static int record(engine *e, int batch)
{
    kvb_sched_stats *st = e->st;
    if (st->n_steps == st->cap_steps) {
        int cap = st->cap_steps ? 2 * st->cap_steps : 256;
        kvb_sched_step *p = realloc(st->steps, (size_t)cap * sizeof *p);
        if (!p) return -1;
        st->steps = p;
        st->cap_steps = cap;
    }
    kvb_memory mem = kvb_cache_memory(e->c);
    size_t seq_used = 0;
    for (int q = 0; q < e->n_slots; q++) {
        kvb_memory sm;
        if (kvb_cache_seq_memory(e->c, q, &sm) != KVB_STATUS_OK) {
            seq_used = mem.used; /* no per-sequence figure: nothing shown as shared */
            break;
        }
        seq_used += sm.used;
    }
    st->steps[st->n_steps++] =
        (kvb_sched_step){e->t, batch, e->n_run, e->w_len, mem.used, mem.reserved, seq_used};
    return 0;
}

static int over_budget(const engine *e)
{
    return e->cfg->bug != KVB_SCHED_BUG_NO_BUDGET &&
           kvb_cache_memory(e->c).reserved > e->cfg->budget_bytes;
}

static void push_front(engine *e, int r)
{
    e->w_head = (e->w_head + e->n - 1) % e->n;
    e->wait[e->w_head] = r;
    e->w_len++;
}

static void release_entry(engine *e, int k)
{
    if (k >= 0) e->ent[k].refs--;
}

/* Running request i out of the running set (order kept), its slot cleared. */
static void drop_running(engine *e, int i)
{
    kvb_cache_seq_clear(e->c, e->run_slot[i]);
    e->slot_busy[e->run_slot[i]] = 0;
    release_entry(e, e->run_ent[i]);
    for (int j = i; j + 1 < e->n_run; j++) {
        e->run_req[j] = e->run_req[j + 1];
        e->run_slot[j] = e->run_slot[j + 1];
        e->run_ent[j] = e->run_ent[j + 1];
    }
    e->n_run--;
}

/* Running request i's sequence copied to host memory, when swapping is on,
 * the backend can, the sequence is whole (every layer holds the prompt and
 * the tokens fed so far: not one a failed step cut short) and the host
 * budget has room; else nothing, and it will be recomputed. */
static void swap_out(engine *e, int i)
{
    const int r = e->run_req[i], slot = e->run_slot[i];
    const int held = e->reqs[r].prompt_len + e->res[r].n_out - 1;
    size_t n = 0;
    if (e->cfg->preempt != KVB_PREEMPT_SWAP) return;
    for (int l = 0; l < e->m->cfg.n_layers; l++)
        if (kvb_cache_length(e->c, slot, l) != held) return;
    if (kvb_cache_seq_save(e->c, slot, NULL, &n) != KVB_STATUS_OK ||
        e->swap_used + n > e->cfg->swap_bytes)
        return;
    void *buf = malloc(n ? n : 1);
    if (!buf) return;
    uint64_t t0 = kvb_now_ns();
    kvb_status st = kvb_cache_seq_save(e->c, slot, buf, &n);
    e->st->swap_s += advance(e, t0);
    if (st != KVB_STATUS_OK) {
        free(buf);
        return;
    }
    e->swapped[r] = buf;
    e->swapped_len[r] = n;
    e->swap_used += n;
    if (e->swap_used > e->st->swap_peak) e->st->swap_peak = e->swap_used;
    e->res[r].swaps++;
    e->st->swaps_out++;
}

static void swap_drop(engine *e, int r)
{
    if (!e->swapped[r]) return;
    free(e->swapped[r]);
    e->swap_used -= e->swapped_len[r];
    e->swapped[r] = NULL;
    e->swapped_len[r] = 0;
}

static void preempt(engine *e, int i)
{
    int r = e->run_req[i];
    swap_out(e, i);
    drop_running(e, i);
    push_front(e, r);
    e->res[r].preemptions++;
    e->st->preemptions++;
}

/* Clears the least recently used prefix entry nobody holds, except keep: 1 if one was. */
static int evict_one(engine *e, int keep)
{
    int best = -1;
    for (int k = 0; k < e->cfg->prefix_slots; k++)
        if (e->ent[k].live && e->ent[k].refs == 0 && k != keep &&
            (best < 0 || e->ent[k].last < e->ent[best].last))
            best = k;
    if (best < 0) return 0;
    kvb_cache_seq_clear(e->c, e->cfg->max_batch + best);
    e->ent[best].live = 0;
    return 1;
}

/* Whether tokens more tokens on a new sequence fit, with a paged pool's free
 * blocks or the budget's room; a contiguous prealloc sequence reserves
 * reserve_tokens whatever it holds. */
static int fits(const engine *e, int tokens, int reserve_tokens)
{
    if (e->cfg->bug == KVB_SCHED_BUG_NO_BUDGET) return 1;
    kvb_memory mem = kvb_cache_memory(e->c);
    if (e->paged) {
        /* and one more block for every running sequence: admitting into the
         * last free blocks only preempts the newcomer at the next block edge,
         * and each readmission recomputes its prefill (measured: 16 to 22
         * preemptions for 16 requests at 48 MiB on stories110m without it) */
        size_t bt = (size_t)e->block_tokens;
        size_t need = ((tokens + bt - 1) / bt + (size_t)e->n_run) * bt * e->cfg->token_bytes;
        return mem.reserved + need <= mem.capacity && mem.reserved + need <= e->cfg->budget_bytes;
    }
    int t = reserve_tokens > tokens ? reserve_tokens : tokens;
    return mem.reserved + (size_t)t * e->cfg->token_bytes <= e->cfg->budget_bytes;
}

static uint64_t hash_tokens(const int *t, int n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a over the ids' bytes */
    for (int i = 0; i < n; i++)
        for (int b = 0; b < 4; b++)
            h = (h ^ (((uint32_t)t[i] >> (8 * b)) & 0xff)) * 1099511628211ull;
    return h;
}

static void emit(engine *e, int r, int tok)
{
    kvb_req_result *q = &e->res[r];
    if (q->n_out == 0) q->first_s = e->t;
    q->token_s[q->n_out] = e->t;
    q->tokens[q->n_out++] = tok;
    if (q->n_out == e->reqs[r].output_len) {
        q->finish_s = e->t;
        q->outcome = KVB_REQ_OUTCOME_FINISHED;
        e->st->finished++;
        e->st->out_tokens += q->n_out;
    }
}

/* The prefix entry for toks[0..plen): a hit (*hit = 1), or a free (evicted if
 * need be) entry filled now; -1 when there is none or it does not fit.
 * Returns a status on a model error. */
static kvb_status prefix_entry_for(engine *e, const int *toks, int plen, int *k_out, int *hit)
{
    uint64_t h = hash_tokens(toks, plen);
    *k_out = -1;
    *hit = 0;
    for (int k = 0; k < e->cfg->prefix_slots; k++) {
        prefix_entry *p = &e->ent[k];
        if (p->live && p->hash == h && p->len == plen &&
            memcmp(p->toks, toks, (size_t)plen * sizeof *toks) == 0) {
            *k_out = k;
            *hit = 1;
            return KVB_STATUS_OK;
        }
    }
    int k = -1;
    for (int j = 0; j < e->cfg->prefix_slots && k < 0; j++)
        if (!e->ent[j].live) k = j;
    if (k < 0 && evict_one(e, -1))
        for (int j = 0; j < e->cfg->prefix_slots && k < 0; j++)
            if (!e->ent[j].live) k = j;
    if (k < 0 || !fits(e, plen, e->cfg->reserve_tokens)) return KVB_STATUS_OK;
    int slot = e->cfg->max_batch + k;
    uint64_t t0 = kvb_now_ns();
    kvb_status s = kvb_forward_seq_cached(e->m, e->s, e->c, slot, toks, plen, 0, NULL, NULL);
    advance(e, t0);
    if (s == KVB_STATUS_OK && over_budget(e)) s = KVB_STATUS_FULL;
    if (s != KVB_STATUS_OK) {
        kvb_cache_seq_clear(e->c, slot);
        return s == KVB_STATUS_FULL ? KVB_STATUS_OK : s;
    }
    e->ent[k] = (prefix_entry){h, toks, plen, 0, 1, 0};
    *k_out = k;
    return KVB_STATUS_OK;
}

/* Admits waiting request r onto a free slot: prefills its prompt plus what it
 * generated, emitting the next token. *ok = 0 when it did not fit (the cache
 * as it was, but for a prefix entry it may have filled). */
static void run_add(engine *e, int r, int slot, int k)
{
    e->slot_busy[slot] = 1;
    e->run_req[e->n_run] = r;
    e->run_slot[e->n_run] = slot;
    e->run_ent[e->n_run++] = k;
}

/* Swapped-out request r back onto a free slot from host memory, no model
 * call: it holds its prompt and every token but the newest, which the next
 * step feeds. *ok = 0 (the cache as it was) when it does not fit. */
static kvb_status swap_in(engine *e, int r, int slot, int *ok)
{
    const kvb_request *q = &e->reqs[r];
    const int T = q->prompt_len + e->res[r].n_out;   /* held after the next step */
    *ok = 0;
    while (!fits(e, T, e->cfg->reserve_tokens) && evict_one(e, -1)) {
    }
    if (!fits(e, T, e->cfg->reserve_tokens)) return KVB_STATUS_OK;
    uint64_t t0 = kvb_now_ns();
    kvb_status s = kvb_cache_seq_load(e->c, slot, e->swapped[r], e->swapped_len[r]);
    e->st->swap_s += advance(e, t0);
    if (s == KVB_STATUS_OK && over_budget(e)) s = KVB_STATUS_FULL;
    if (s != KVB_STATUS_OK) {
        kvb_cache_seq_clear(e->c, slot);
        if (s == KVB_STATUS_FULL || s == KVB_STATUS_NO_MEMORY) return KVB_STATUS_OK;
        snprintf(e->msg, e->msg_len, "request %d: swap in of %zu bytes: %s", q->id,
                 e->swapped_len[r], kvb_status_str(s));
        return s;
    }
    swap_drop(e, r);
    e->st->swaps_in++;
    run_add(e, r, slot, -1);
    *ok = 1;
    return KVB_STATUS_OK;
}

static kvb_status admit(engine *e, int r, int use_prefix, int *ok)
{
    const kvb_request *q = &e->reqs[r];
    kvb_req_result *rs = &e->res[r];
    int T = q->prompt_len + rs->n_out, slot = 0;
    *ok = 0;
    while (e->slot_busy[slot]) slot++;
    if (e->swapped[r]) {
        kvb_status s = swap_in(e, r, slot, ok);
        /* alone and still not back (a grow store's doubling can pass the
         * budget where a prefill's would not): recomputed instead */
        if (s != KVB_STATUS_OK || *ok || use_prefix) return s;
        swap_drop(e, r);
    }
    memcpy(e->buf, q->prompt, (size_t)q->prompt_len * sizeof *e->buf);
    memcpy(e->buf + q->prompt_len, rs->tokens, (size_t)rs->n_out * sizeof *e->buf);
    int bt = e->cfg->block_tokens, plen = 0, k = -1, hit = 0;
    if (use_prefix && e->cfg->prefix_slots > 0)
        plen = (q->prefix_len < T - 1 ? q->prefix_len : T - 1) / bt * bt;
    const int want = plen;
    if (plen > 0) {
        kvb_status s = prefix_entry_for(e, q->prompt, plen, &k, &hit);
        if (s != KVB_STATUS_OK) return s;
        if (k < 0) plen = 0;
    }
    /* a paged fork shares the prefix's blocks; a dense one copies them */
    int fresh = (e->paged && k >= 0) ? T - plen + 1 : T + 1;
    while (!fits(e, fresh, e->cfg->reserve_tokens) && evict_one(e, k)) {
    }
    if (!fits(e, fresh, e->cfg->reserve_tokens)) return KVB_STATUS_OK;
    uint64_t t0 = kvb_now_ns();
    kvb_status s = KVB_STATUS_OK;
    if (k >= 0) s = kvb_cache_seq_fork(e->c, e->cfg->max_batch + k, slot);
    if (s == KVB_STATUS_OK)
        s = kvb_forward_seq_cached(e->m, e->s, e->c, slot, e->buf + plen, T - plen, plen, NULL,
                                   NULL);
    advance(e, t0);
    if (s == KVB_STATUS_OK && over_budget(e)) s = KVB_STATUS_FULL;
    if (s != KVB_STATUS_OK) {
        kvb_cache_seq_clear(e->c, slot);
        if (s == KVB_STATUS_FULL || s == KVB_STATUS_NO_MEMORY) return KVB_STATUS_OK;
        snprintf(e->msg, e->msg_len, "request %d: prefill of %d tokens: %s", q->id, T - plen,
                 kvb_status_str(s));
        return s;
    }
    if (want > 0) e->st->prefix_lookups++; /* admissions, not attempts */
    if (k >= 0) {
        e->ent[k].refs++;
        e->ent[k].last = ++e->tick;
        if (hit) e->st->prefix_hits++;
        if (hit) e->st->prefix_tokens += plen;
    }
    rs->prefix_hit_tokens = hit ? plen : 0;
    *ok = 1;
    run_add(e, r, slot, k);
    emit(e, r, kvb_argmax(e->s->logits, e->m->cfg.vocab_size));
    if (rs->outcome == KVB_REQ_OUTCOME_FINISHED) drop_running(e, e->n_run - 1);
    return KVB_STATUS_OK;
}

/* Whether a step opening a block for every running sequence at a block's edge
 * fits the pool and the budget. */
static int paged_step_fits(const engine *e)
{
    size_t need = 0;
    for (int i = 0; i < e->n_run; i++)
        if (kvb_cache_length(e->c, e->run_slot[i], 0) % e->block_tokens == 0)
            need += (size_t)e->block_tokens * e->cfg->token_bytes;
    kvb_memory mem = kvb_cache_memory(e->c);
    size_t lim = mem.capacity < e->cfg->budget_bytes ? mem.capacity : e->cfg->budget_bytes;
    return mem.reserved + need <= lim;
}

/* One token for every running request. */
static kvb_status decode_step(engine *e)
{
    /* a paged pool must hold the blocks this step opens: room is made first,
     * since a batch cut short by a full pool loses its whole step */
    while (e->paged && e->cfg->bug != KVB_SCHED_BUG_NO_BUDGET && e->n_run > 0 &&
           !paged_step_fits(e))
        if (!evict_one(e, -1)) preempt(e, e->n_run - 1);
    if (e->n_run == 0) return record(e, 0) ? KVB_STATUS_NO_MEMORY : KVB_STATUS_OK;
    const int B = e->n_run, V = e->m->cfg.vocab_size;
    for (int i = 0; i < B; i++) {
        int r = e->run_req[i];
        e->b_seq[i] = e->run_slot[i];
        e->b_tok[i] = e->res[r].tokens[e->res[r].n_out - 1];
        e->b_pos[i] = e->reqs[r].prompt_len + e->res[r].n_out - 1;
    }
    uint64_t t0 = kvb_now_ns();
    kvb_status s =
        kvb_forward_batch(e->m, e->s, e->c, B, e->b_seq, e->b_tok, e->b_pos, e->logits, NULL);
    advance(e, t0);
    if (s == KVB_STATUS_FULL || s == KVB_STATUS_NO_MEMORY) {
        /* the sequences the step reached hold a token without its logits:
         * recomputed later (newest first to the queue, so the oldest leads) */
        for (int i = B - 1; i >= 0; i--) {
            int cut = 0;
            for (int l = 0; l < e->m->cfg.n_layers; l++)
                cut |= kvb_cache_length(e->c, e->run_slot[i], l) != e->b_pos[i];
            if (cut) preempt(e, i);
        }
        return record(e, 0) ? KVB_STATUS_NO_MEMORY : KVB_STATUS_OK;
    }
    if (s != KVB_STATUS_OK) {
        snprintf(e->msg, e->msg_len, "decode step of %d sequences: %s", B, kvb_status_str(s));
        return s;
    }
    for (int i = 0; i < B; i++) emit(e, e->run_req[i], kvb_argmax(e->logits + (size_t)i * V, V));
    for (int i = B - 1; i >= 0; i--)
        if (e->res[e->run_req[i]].outcome == KVB_REQ_OUTCOME_FINISHED) drop_running(e, i);
    while (over_budget(e))
        if (!evict_one(e, -1)) {
            if (e->n_run == 0) break;
            preempt(e, e->n_run - 1);
        }
    return record(e, B) ? KVB_STATUS_NO_MEMORY : KVB_STATUS_OK;
}

static void reject(engine *e, int r)
{
    e->res[r].outcome = KVB_REQ_OUTCOME_REJECTED;
    e->st->rejected++;
}

/* Admits from the front of the queue while slots and memory allow. */
static kvb_status admit_waiting(engine *e)
{
    while (e->w_len > 0 && e->n_run < e->cfg->max_batch) {
        int r = e->wait[e->w_head], ok = 0;
        e->w_head = (e->w_head + 1) % e->n;
        e->w_len--;
        kvb_status s = admit(e, r, 1, &ok);
        if (s == KVB_STATUS_OK && !ok && e->n_run == 0) {
            /* alone: every unused prefix entry goes, and it runs unshared or never */
            while (evict_one(e, -1)) {
            }
            s = admit(e, r, 0, &ok);
            if (s == KVB_STATUS_OK && !ok) reject(e, r);
            ok = 1;
        }
        if (s != KVB_STATUS_OK) return s;
        if (record(e, 0)) return KVB_STATUS_NO_MEMORY;
        if (!ok) {
            push_front(e, r);
            break;
        }
    }
    return KVB_STATUS_OK;
}

kvb_status kvb_sched_round(kvb_sched *e, int *done)
{
    uint64_t t0 = kvb_now_ns();
    kvb_status s = KVB_STATUS_OK;
    *done = 0;
    while (s == KVB_STATUS_OK && e->st->finished + e->st->rejected < e->n) {
        for (; e->arrived < e->n && e->reqs[e->arrived].arrival_s <= e->t; e->arrived++) {
            const kvb_request *q = &e->reqs[e->arrived];
            if (q->prompt_len + q->output_len > e->max_seq)
                reject(e, e->arrived);
            else
                e->wait[(e->w_head + e->w_len++) % e->n] = e->arrived;
        }
        if (e->n_run == 0 && e->w_len == 0) { /* idle: the clock jumps to the next arrival */
            if (e->arrived < e->n) e->t = e->reqs[e->arrived].arrival_s;
            continue;
        }
        s = admit_waiting(e);
        if (s == KVB_STATUS_OK && e->n_run > 0) s = decode_step(e);
        if (s == KVB_STATUS_NO_MEMORY && !e->msg[0])
            snprintf(e->msg, e->msg_len, "out of memory for the step records");
        break;
    }
    if (s == KVB_STATUS_OK && e->st->finished + e->st->rejected == e->n) {
        e->st->end_s = e->t;
        *done = 1;
    }
    e->wall += (double)(kvb_now_ns() - t0) * 1e-9;
    return s;
}

double kvb_sched_wall_s(const kvb_sched *e) { return e->wall; }

static kvb_status check_args(const kvb_model *m, const kvb_state *s, const kvb_cache *c,
                             const kvb_sched_config *cfg, const kvb_request *reqs, int n, char *msg,
                             size_t msg_len)
{
    int slots = cfg->max_batch + cfg->prefix_slots;
    if (cfg->max_batch < 1 || cfg->max_batch > s->max_seq) {
        snprintf(msg, msg_len, "max_batch %d: allowed 1..%d (the state's rows)", cfg->max_batch,
                 s->max_seq);
        return KVB_STATUS_INVALID_ARG;
    }
    if (cfg->prefix_slots < 0 || kvb_cache_length(c, slots - 1, 0) < 0) {
        snprintf(msg, msg_len, "max_batch %d + prefix_slots %d: more than the cache's sequences",
                 cfg->max_batch, cfg->prefix_slots);
        return KVB_STATUS_INVALID_ARG;
    }
    if (cfg->token_bytes == 0 || cfg->block_tokens < 1) {
        snprintf(msg, msg_len, "token_bytes %zu, block_tokens %d: both must be positive",
                 cfg->token_bytes, cfg->block_tokens);
        return KVB_STATUS_INVALID_ARG;
    }
    for (int i = 0; i < n; i++) {
        const kvb_request *q = &reqs[i];
        const char *bad = q->prompt_len < 1                                    ? "prompt_len"
                          : q->output_len < 1                                  ? "output_len"
                          : q->prefix_len < 0 || q->prefix_len > q->prompt_len ? "prefix_len"
                          : !q->prompt                                         ? "prompt"
                          : i && q->arrival_s < reqs[i - 1].arrival_s          ? "arrival_s"
                                                                               : NULL;
        for (int j = 0; !bad && j < q->prompt_len; j++)
            if (q->prompt[j] < 0 || q->prompt[j] >= m->cfg.vocab_size) bad = "prompt token";
        if (bad) {
            snprintf(msg, msg_len,
                     "request %d (index %d): bad %s (lengths >= 1, prefix within the prompt, "
                     "tokens in the vocab, arrivals in order)",
                     q->id, i, bad);
            return KVB_STATUS_INVALID_ARG;
        }
    }
    return KVB_STATUS_OK;
}

kvb_status kvb_sched_start(kvb_sched **out, const kvb_model *m, kvb_state *s, kvb_cache *cache,
                           const kvb_sched_config *cfg, const kvb_request *reqs, int n,
                           kvb_req_result *res, kvb_sched_stats *st, char *msg, size_t msg_len)
{
    *out = NULL;
    memset(st, 0, sizeof *st);
    memset(res, 0, (size_t)n * sizeof *res);
    msg[0] = 0;
    kvb_status rc = check_args(m, s, cache, cfg, reqs, n, msg, msg_len);
    if (rc != KVB_STATUS_OK) return rc;
    const int B = cfg->max_batch;
    engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(msg, msg_len, "out of memory for the scheduler");
        return KVB_STATUS_NO_MEMORY;
    }
    *e = (engine){.m = m,
                .s = s,
                .c = cache,
                .cfg = cfg,
                .reqs = reqs,
                .res = res,
                .st = st,
                .n = n,
                .max_seq = kvb_cache_shape(cache)->max_seq,
                .paged = (kvb_cache_backend(cache)->flags & KVB_BACKEND_PAGED) != 0,
                .block_tokens = cfg->block_tokens,
                .n_slots = B + cfg->prefix_slots,
                .msg = msg,
                .msg_len = msg_len};
    if (e->max_seq > m->cfg.max_seq) e->max_seq = m->cfg.max_seq;
    const size_t nr = n > 0 ? (size_t)n : 1;
    e->wait = malloc(nr * sizeof *e->wait);
    e->run_req = malloc((size_t)B * sizeof(int));
    e->run_slot = malloc((size_t)B * sizeof(int));
    e->run_ent = malloc((size_t)B * sizeof(int));
    e->slot_busy = calloc((size_t)B, sizeof(int));
    e->ent = calloc((size_t)cfg->prefix_slots + 1, sizeof *e->ent);
    e->buf = malloc((size_t)e->max_seq * sizeof *e->buf);
    e->logits = malloc((size_t)B * m->cfg.vocab_size * sizeof *e->logits);
    e->b_seq = malloc((size_t)B * sizeof(int));
    e->b_tok = malloc((size_t)B * sizeof(int));
    e->b_pos = malloc((size_t)B * sizeof(int));
    e->swapped = calloc(nr, sizeof *e->swapped);
    e->swapped_len = calloc(nr, sizeof *e->swapped_len);
    int oom = !e->swapped || !e->swapped_len || !e->wait || !e->run_req || !e->run_slot ||
              !e->run_ent || !e->slot_busy || !e->ent ||
              !e->buf || !e->logits || !e->b_seq || !e->b_tok || !e->b_pos;
    for (int i = 0; i < n && !oom; i++) {
        res[i].tokens = malloc((size_t)reqs[i].output_len * sizeof *res[i].tokens);
        res[i].token_s = malloc((size_t)reqs[i].output_len * sizeof *res[i].token_s);
        oom = !res[i].tokens || !res[i].token_s;
    }
    if (oom) {
        kvb_sched_end(e);
        snprintf(msg, msg_len, "out of memory for %d requests' records", n);
        return KVB_STATUS_NO_MEMORY;
    }
    *out = e;
    return KVB_STATUS_OK;
}

void kvb_sched_end(kvb_sched *e)
{
    if (!e) return;
    for (int q = 0; q < e->n_slots; q++) kvb_cache_seq_clear(e->c, q);
    for (int i = 0; e->swapped && i < e->n; i++) swap_drop(e, i);
    free(e->swapped);
    free(e->swapped_len);
    free(e->wait);
    free(e->run_req);
    free(e->run_slot);
    free(e->run_ent);
    free(e->slot_busy);
    free(e->ent);
    free(e->buf);
    free(e->logits);
    free(e->b_seq);
    free(e->b_tok);
    free(e->b_pos);
    free(e);
}

kvb_status kvb_sched_run(const kvb_model *m, kvb_state *s, kvb_cache *cache,
                         const kvb_sched_config *cfg, const kvb_request *reqs, int n,
                         kvb_req_result *res, kvb_sched_stats *st, char *msg, size_t msg_len)
{
    kvb_sched *e = NULL;
    kvb_status rc = kvb_sched_start(&e, m, s, cache, cfg, reqs, n, res, st, msg, msg_len);
    for (int done = n == 0; rc == KVB_STATUS_OK && !done;) rc = kvb_sched_round(e, &done);
    kvb_sched_end(e);
    return rc;
}

void kvb_sched_free(kvb_req_result *res, int n, kvb_sched_stats *st)
{
    for (int i = 0; res && i < n; i++) {
        free(res[i].tokens);
        free(res[i].token_s);
        res[i].tokens = NULL;
        res[i].token_s = NULL;
    }
    if (st) {
        free(st->steps);
        st->steps = NULL;
        st->n_steps = st->cap_steps = 0;
    }
}

/* run.c: see run.h. Only the model step sits inside the timed region; the
 * memory probes, the argmax and the bookkeeping run outside it. */
#include "run.h"
#include "../base/probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *kvb_point_status_name(kvb_point_status s)
{
    static const char *const n[] = {"pending", "ok", "cut_short", "skipped", "failed"};
    return (s >= 0 && s <= KVB_POINT_FAILED) ? n[s] : "?";
}

const char *kvb_point_dtype(const kvb_point *p)
{
    return (p->backend->flags & KVB_BACKEND_RECOMPUTE) ? "-" : kvb_dtype_name(p->opt.dtype);
}

void kvb_point_mode(const kvb_point *p, char *buf, size_t n)
{
    if (p->backend->flags & KVB_BACKEND_RECOMPUTE)
        snprintf(buf, n, "-");
    else if ((p->backend->flags & KVB_BACKEND_PAGED) && (p->backend->flags & KVB_BACKEND_QUANT))
        snprintf(buf, n, "bs%d-g%d", p->opt.block_tokens ? p->opt.block_tokens : 16,
                 p->opt.group ? p->opt.group : 32);
    else if (p->backend->flags & KVB_BACKEND_PAGED)
        snprintf(buf, n, "bs%d", p->opt.block_tokens ? p->opt.block_tokens : 16);
    else if (p->backend->flags & KVB_BACKEND_QUANT)   /* group, residual, key axis */
        snprintf(buf, n, "g%d-r%d-k%s%s", p->opt.group ? p->opt.group : 32, p->opt.residual,
                 kvb_key_axis_name(kvb_key_axis_resolve(p->opt.dtype, p->opt.key_axis)),
                 p->opt.alloc == KVB_ALLOC_PREALLOC ? "-prealloc" : "");
    else
        snprintf(buf, n, "%s", kvb_alloc_name(p->opt.alloc));
}

void kvb_point_label(const kvb_point *p, char *buf, size_t n)
{
    char mode[32];
    kvb_point_mode(p, mode, sizeof mode);
    if (p->backend->flags & KVB_BACKEND_RECOMPUTE)
        snprintf(buf, n, "%s", p->backend->name);
    else
        snprintf(buf, n, "%s/%s/%s", p->backend->name, kvb_point_dtype(p), mode);
}

kvb_status kvb_point_init(kvb_point *p, const kvb_backend *b, const kvb_options *o,
                          int n_tokens, int reps)
{
    memset(p, 0, sizeof *p);
    p->backend = b;
    p->opt = *o;
    p->n_tokens = n_tokens;
    p->reps = reps;
    p->steps_done = calloc((size_t)reps, sizeof *p->steps_done);
    p->rec = calloc((size_t)reps * (size_t)n_tokens, sizeof *p->rec);
    p->prefill = calloc((size_t)reps, sizeof *p->prefill);
    if (!p->steps_done || !p->rec || !p->prefill) {
        kvb_point_free(p);
        return KVB_STATUS_NO_MEMORY;
    }
    return KVB_STATUS_OK;
}

void kvb_point_free(kvb_point *p)
{
    if (!p) return;
    free(p->steps_done);
    free(p->rec);
    free(p->prefill);
    p->steps_done = NULL; p->rec = NULL; p->prefill = NULL;
}

/* Work units of one step, for the ETA: a recompute step redoes every position. */
static double step_work(const kvb_point *p, int pos)
{
    return (p->backend->flags & KVB_BACKEND_RECOMPUTE) ? (double)(pos + 1) : 1.0;
}

static void progress(const kvb_point *p, const kvb_gen_config *g, int idx, int count, int rep,
                     int step, uint64_t t_start)
{
    double total = 0, done = 0;
    for (int i = 0; i < g->n_tokens; i++) {
        double w = step_work(p, g->prompt_len + i);
        total += w * g->reps;
        done += w * rep + (i < step ? w : 0);
    }
    double el = (double)(kvb_now_ns() - t_start) / 1e9;
    double eta = done > 0 ? el * (total - done) / done : 0;
    char label[96];
    kvb_point_label(p, label, sizeof label);
    fprintf(stderr, "\r[%d/%d] %-24s rep %d/%d step %d/%d  %.0fs elapsed, ETA %.0fs   ",
            idx + 1, count, label, rep + 1, g->reps, step, g->n_tokens, el, eta);
    fflush(stderr);
}

typedef struct one_rep {
    kvb_step_record *rec;     /* NULL: warm-up, nothing recorded */
    int              steps;   /* decode steps to run */
    kvb_step_record  prefill; /* the prompt's pass and the first token it chose */
    int              steps_done;
} one_rep;

/* create -> prefill -> decode; stops early when the point's deadline passes. */
static kvb_status run_rep(const kvb_model *m, kvb_state *s, kvb_point *p, const kvb_gen_config *g,
                          one_rep *r, uint64_t deadline, int idx, int count, int rep, uint64_t t0)
{
    const kvb_backend *b = p->backend;
    const int recompute = (b->flags & KVB_BACKEND_RECOMPUTE) != 0;
    kvb_shape shape = kvb_model_kv_shape(&m->cfg);
    kvb_cache *cache = NULL;
    char msg[256] = "";
    kvb_status st = kvb_cache_create(&cache, b, &shape, &p->opt, msg, sizeof msg);
    if (st != KVB_STATUS_OK) {
        snprintf(p->reason, sizeof p->reason, "create failed: %s%s%s", kvb_status_str(st),
                 msg[0] ? ": " : "", msg);
        return st;
    }
    int *tokens = malloc((size_t)(g->prompt_len + r->steps + 1) * sizeof *tokens);
    if (!tokens) { kvb_cache_destroy(cache); return KVB_STATUS_NO_MEMORY; }
    memcpy(tokens, g->prompt, (size_t)g->prompt_len * sizeof *tokens);

    kvb_step_timing ptm = {0};
    uint64_t a = kvb_now_ns();
    st = kvb_forward_seq(m, s, cache, 0, tokens, g->prompt_len, &ptm);
    if (st == KVB_STATUS_FULL && (b->flags & KVB_BACKEND_PAGED))
        snprintf(p->reason, sizeof p->reason, "pool full during the %d-token prefill, sequence 0",
                 g->prompt_len);
    else if (st != KVB_STATUS_OK)
        snprintf(p->reason, sizeof p->reason, "prefill failed: %s", kvb_status_str(st));
    int pos = g->prompt_len;
    tokens[pos] = kvb_argmax(s->logits, m->cfg.vocab_size);
    {
        uint64_t e = kvb_now_ns(); /* time to the first token: prefill and its argmax */
        kvb_memory mem = kvb_cache_memory(cache);
        r->prefill = (kvb_step_record){pos - 1, tokens[pos], e - a, ptm.attn_ns,
                                       mem.reserved, mem.used, mem.metadata, kvb_rss_bytes()};
    }
    uint64_t last_draw = 0;
    for (int i = 0; st == KVB_STATUS_OK && i < r->steps; i++, pos++) {
        kvb_step_timing tm = {0};
        a = kvb_now_ns();
        st = recompute ? kvb_forward_seq(m, s, NULL, 0, tokens, pos + 1, &tm)
                       : kvb_forward_token(m, s, cache, 0, tokens[pos], pos, &tm);
        uint64_t e = kvb_now_ns();
        if (st != KVB_STATUS_OK) {
            if (st == KVB_STATUS_FULL && (b->flags & KVB_BACKEND_PAGED))
                snprintf(p->reason, sizeof p->reason, "pool full at token %d, sequence 0", pos);
            else
                snprintf(p->reason, sizeof p->reason, "decode failed at position %d: %s", pos,
                         kvb_status_str(st));
            break;
        }
        tokens[pos + 1] = kvb_argmax(s->logits, m->cfg.vocab_size);
        if (r->rec) {
            kvb_memory mem = kvb_cache_memory(cache);
            r->rec[i] = (kvb_step_record){pos, tokens[pos + 1], e - a, tm.attn_ns,
                                          mem.reserved, mem.used, mem.metadata, kvb_rss_bytes()};
        }
        r->steps_done = i + 1;
        if (g->progress && r->rec && e - last_draw > 200000000u) {
            progress(p, g, idx, count, rep, i + 1, t0);
            last_draw = e;
        }
        if (deadline && e > deadline && i + 1 < r->steps) break;
    }
    free(tokens);
    kvb_cache_destroy(cache);
    return st;
}

kvb_status kvb_run_point(const kvb_model *m, kvb_state *s, kvb_point *p,
                         const kvb_gen_config *g, int idx, int count)
{
    char why[256] = "";
    kvb_shape shape = kvb_model_kv_shape(&m->cfg);
    if (kvb_backend_supports(p->backend, &shape, &p->opt, why, sizeof why) != KVB_STATUS_OK) {
        p->status = KVB_POINT_SKIPPED;
        snprintf(p->reason, sizeof p->reason, "%s", why);
        return KVB_STATUS_OK;
    }
    uint64_t t0 = kvb_now_ns();
    uint64_t deadline = g->time_budget_s > 0 ? t0 + (uint64_t)(g->time_budget_s * 1e9) : 0;
    one_rep warm = {.rec = NULL, .steps = g->warmup < g->n_tokens ? g->warmup : g->n_tokens};
    kvb_status st = run_rep(m, s, p, g, &warm, deadline, idx, count, 0, t0);
    p->status = KVB_POINT_OK;
    for (int r = 0; st == KVB_STATUS_OK && r < g->reps; r++) {
        one_rep rr = {.rec = p->rec + (size_t)r * g->n_tokens, .steps = g->n_tokens};
        st = run_rep(m, s, p, g, &rr, deadline, idx, count, r, t0);
        p->prefill[r] = rr.prefill;
        p->steps_done[r] = rr.steps_done;
        if (st != KVB_STATUS_OK) break;
        if (rr.steps_done < g->n_tokens) {
            p->status = KVB_POINT_CUT_SHORT;
            snprintf(p->reason, sizeof p->reason,
                     "time budget %.1f s reached in repetition %d after %d of %d steps",
                     g->time_budget_s, r + 1, rr.steps_done, g->n_tokens);
            break;            /* its records are kept; reps_done counts full ones only */
        }
        p->reps_done = r + 1;
        if (deadline && kvb_now_ns() > deadline && r + 1 < g->reps) {
            p->status = KVB_POINT_CUT_SHORT;
            snprintf(p->reason, sizeof p->reason, "time budget %.1f s reached after %d of %d "
                     "repetitions", g->time_budget_s, r + 1, g->reps);
            break;
        }
    }
    if (g->progress) fprintf(stderr, "\r%*s\r", 100, "");
    if (st != KVB_STATUS_OK) p->status = KVB_POINT_FAILED;
    return st;
}

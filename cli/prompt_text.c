/* prompt_text.c: run's --prompt-text: the prompt tokenized with --tokenizer's
 * vocab or the --model file's own, and the continuation the first measured
 * point generated, decoded with the same vocab. */
#include "cli.h"
#include "opts.h"
#include "../harness/run.h"
#include "../model/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kvb_opts_prompt_text(const kvb_opts *c, int vocab, int **ids, int *n, kvb_tokenizer **tk)
{
    char msg[512];
    const char *path = c->tokenizer ? c->tokenizer : c->model;
    if (!path)
        return kvb_usage_error("--prompt-text needs a vocab: --tokenizer PATH, or --model with "
                               "one (a GGUF file or a Hugging Face directory)");
    kvb_status st = kvb_tokenizer_open(tk, path, vocab, msg, sizeof msg);
    if (st != KVB_STATUS_OK) return kvb_usage_error("--prompt-text: %s", msg);
    st = kvb_tokenizer_encode_alloc(*tk, c->prompt_text, strlen(c->prompt_text), -1, ids, n, msg,
                                    sizeof msg);
    if (st == KVB_STATUS_OK && *n == 0) {
        free(*ids);
        snprintf(msg, sizeof msg, "'%s' is no tokens (an empty text and no BOS)", c->prompt_text);
        st = KVB_STATUS_INVALID_ARG;
    }
    if (st != KVB_STATUS_OK) {
        kvb_tokenizer_free(*tk);
        *tk = NULL;
        return kvb_usage_error("--prompt-text: %s", msg);
    }
    printf("prompt: %d tokens (%s vocab of %s)\n", *n, kvb_tokenizer_kind_name(*tk), path);
    return 0;
}

void kvb_print_continuation(const kvb_tokenizer *tk, const char *prompt, const kvb_point *pts,
                            int n_pts)
{
    for (int i = 0; tk && i < n_pts; i++) {
        const kvb_point *p = &pts[i];
        if (p->status != KVB_POINT_OK && p->status != KVB_POINT_CUT_SHORT) continue;
        if (!p->steps_done || p->steps_done[0] < 1) continue;
        char label[128];
        kvb_point_label(p, label, sizeof label);
        printf("text (%s, greedy, repetition 1): %s", label, prompt);
        /* the prefill chose the first token; each decode step the next */
        const kvb_step_record *all[2] = {p->prefill, p->rec};
        int counts[2] = {1, p->steps_done[0]};
        for (int part = 0; part < 2; part++)
            for (int s = 0; s < counts[part]; s++) {
                size_t len;
                const char *b = kvb_tokenizer_decode(tk, all[part][s].token, &len);
                if (b) fwrite(b, 1, len, stdout);
            }
        printf("\n");
        return;
    }
}

/* report_ppl.c: kvbench ppl's ppl.csv in the report: one point per cache at
 * its bytes per token, with its perplexity increase over the f32 cache and its
 * KL against it (plots/ppl.gp), and the table's rows. Columns are found by
 * name (base/columns.h); a row whose case was skipped is listed, not drawn. */
#include "report_int.h"
#include "../base/columns.h"
#include "../base/csv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kvb_rp_read_ppl(report *r, const char *dir, const char *host)
{
    char path[2400], msg[600];
    kvb_csv c;
    snprintf(path, sizeof path, "%s/ppl.csv", dir);
    if (kvb_csv_open(&c, path, msg, sizeof msg)) return;
    static const char *const cols[7] = {KVB_COL_CASE,    KVB_COL_BYTES_PER_TOKEN, KVB_COL_PPL,
                                        KVB_COL_DPPL,    KVB_COL_KL_MEAN,         KVB_COL_TOP1,
                                        KVB_COL_STATUS};
    int k[7], need = -1;
    if (kvb_csv_next(&c) > 0 && kvb_csv_header(&c) == 0) need = kvb_csv_columns(&c, cols, k, 7);
    plot *p = &r->p[P_PPL];
    const char *on = r->multi ? " on " : "", *hn = r->multi ? host : "";
    while (need >= 0 && kvb_csv_next(&c) > 0) {
        if (c.n <= need) continue;
        char **f = c.field, name[200];
        snprintf(name, sizeof name, "%s%s%s", f[k[0]], on, hn);
        if (strcmp(f[k[6]], "ok") != 0) {
            kvb_rp_row(r, p, 6, name, "-", "skipped", "-", "-", "-");
            continue;
        }
        if (!p->blocks) kvb_rp_block(r, P_PPL, "caches on the same windows");
        double dppl = atof(f[k[3]]), kl = atof(f[k[4]]);
        /* KL's log axis: the reference's exact 0 drawn at the floor */
        fprintf(kvb_rp_dat(r, P_PPL), "%s %.6g %.6g \"%s\"\n", f[k[1]], dppl,
                kl > 1e-12 ? kl : 1e-12, name);
        char c4[CELL], c5[CELL], c6[CELL];
        snprintf(c4, sizeof c4, "%+.3e", dppl);
        snprintf(c5, sizeof c5, "%.3e", kl);
        snprintf(c6, sizeof c6, "%.2f%%", atof(f[k[5]]) * 100);
        kvb_rp_row(r, p, 6, name, f[k[1]], f[k[2]], c4, c5, c6);
    }
    kvb_csv_close(&c);
}

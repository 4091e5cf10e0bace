/* test_history.c: what history check pools as its base (history.h): the
 * commits before the newest taken newest first up to KVB_CMP_MAX_SAMPLES, a
 * commit without the case skipped, another kind of the same name not taken;
 * and the short commit ids show and the chart print. tests/cli_history.sh
 * checks the command on files. */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../analysis/history.h"

/* a set of one case (name, kind) with n samples all equal to v */
static void one_case(kvb_cmp_set *s, kvb_cmp_case *c, const char *name, kvb_cmp_kind kind, int n,
                     double v)
{
    memset(s, 0, sizeof *s);
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->kind = kind;
    c->n = n;
    for (int i = 0; i < n; i++) c->v[i] = v;
    s->c = c;
    s->n = s->cap = 1;
}

static void test_pool(void **state)
{
    (void)state;
    kvb_cmp_set sets[4];
    kvb_cmp_case cases[4];
    double out[KVB_CMP_MAX_SAMPLES];
    int commits;
    /* oldest first: 30 samples of 1, none (another case), 30 of 3, 30 of 4 */
    one_case(&sets[0], &cases[0], "x/time_ns", KVB_CMP_TIME, 30, 1);
    one_case(&sets[1], &cases[1], "y/time_ns", KVB_CMP_TIME, 30, 2);
    one_case(&sets[2], &cases[2], "x/time_ns", KVB_CMP_TIME, 30, 3);
    one_case(&sets[3], &cases[3], "x/time_ns", KVB_CMP_TIME, 30, 4);
    int n = kvb_hist_pool(sets, 4, "x/time_ns", KVB_CMP_TIME, out, &commits);
    assert_int_equal(n, KVB_CMP_MAX_SAMPLES);
    assert_int_equal(commits, 3);
    /* the most recent kept: all of 4 and 3, then the oldest's first four */
    for (int i = 0; i < 30; i++) assert_true(out[i] == 4);
    for (int i = 30; i < 60; i++) assert_true(out[i] == 3);
    for (int i = 60; i < 64; i++) assert_true(out[i] == 1);
    /* fewer sets: only theirs */
    n = kvb_hist_pool(sets, 2, "x/time_ns", KVB_CMP_TIME, out, &commits);
    assert_int_equal(n, 30);
    assert_int_equal(commits, 1);
    assert_true(out[0] == 1);
    /* the same name of another kind is another case */
    n = kvb_hist_pool(sets, 4, "x/time_ns", KVB_CMP_RATIO, out, &commits);
    assert_int_equal(n, 0);
    assert_int_equal(commits, 0);
    assert_null(kvb_hist_find(&sets[1], "x/time_ns", KVB_CMP_TIME));
    assert_ptr_equal(kvb_hist_find(&sets[1], "y/time_ns", KVB_CMP_TIME), &cases[1]);
}

static void test_short(void **state)
{
    (void)state;
    char s[16];
    kvb_hist_short("c964709c1b89de654ff720a0b6f782addf0c6d7b", s);
    assert_string_equal(s, "c964709");
    kvb_hist_short("v1.2-rc3", s);
    assert_string_equal(s, "v1.2-rc3");
    kvb_hist_short("a-very-long-branch-name", s); /* a tic label, not a key: cut */
    assert_string_equal(s, "a-very-long-");
    kvb_hist_short("C964709C1B89DE654FF720A0B6F782ADDF0C6D7B", s); /* not git's spelling */
    assert_string_equal(s, "C964709C1B89");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_short),
    };
    return cmocka_run_group_tests_name("history", tests, NULL, NULL);
}

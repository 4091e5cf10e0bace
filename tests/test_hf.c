/* test_hf.c: a Hugging Face config.json as a model shape (model/hf.h) (cmocka).
 *
 * The published configs of Llama 3 8B, Llama 3.2 1B (tied, rope_scaling llama3,
 * head_dim given) and Mistral 7B (sliding window) give their shapes, by file and by
 * directory; Hugging Face's defaults fill what a config leaves out; each bad key (absent,
 * a string, a fraction, out of range, heads not a multiple of KV heads, another
 * architecture, not JSON, cut short) is refused with its name, never read as 0.
 * Usage: test_hf [REGEX] (or KVB_TEST_FILTER=REGEX). */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../model/hf.h"
#include "testlib.h"

static const char llama3_8b[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 4096,\n"
    " \"intermediate_size\": 14336, \"max_position_embeddings\": 8192, \"model_type\": \"llama\",\n"
    " \"num_attention_heads\": 32, \"num_hidden_layers\": 32, \"num_key_value_heads\": 8,\n"
    " \"rms_norm_eps\": 1e-05, \"rope_scaling\": null, \"rope_theta\": 500000.0,\n"
    " \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", \"vocab_size\": 128256}\n";

static const char llama32_1b[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"head_dim\": 64, \"hidden_size\": 2048,\n"
    " \"intermediate_size\": 8192, \"max_position_embeddings\": 131072,\n"
    " \"num_attention_heads\": 32, \"num_hidden_layers\": 16, \"num_key_value_heads\": 8,\n"
    " \"rms_norm_eps\": 1e-05, \"rope_scaling\": {\"factor\": 32.0, \"high_freq_factor\": 4.0,\n"
    " \"low_freq_factor\": 1.0, \"original_max_position_embeddings\": 8192,\n"
    " \"rope_type\": \"llama3\"}, \"rope_theta\": 500000.0, \"tie_word_embeddings\": true,\n"
    " \"vocab_size\": 128256}\n";

static const char mistral_7b[] =
    "{\"architectures\": [\"MistralForCausalLM\"], \"hidden_size\": 4096,\n"
    " \"intermediate_size\": 14336, \"max_position_embeddings\": 32768,\n"
    " \"num_attention_heads\": 32, \"num_hidden_layers\": 32, \"num_key_value_heads\": 8,\n"
    " \"sliding_window\": 4096, \"vocab_size\": 32000}\n";

static kvb_status load(void **state, const char *text, kvb_model_config *c, kvb_hf_extra *x,
                       char *msg, size_t n)
{
    char path[512];
    kvbt_tmp_path(state, "config.json", path, sizeof path);
    kvbt_write_file(path, text, strlen(text));
    return kvb_hf_config(path, c, x, msg, n);
}

static void test_published_configs(void **state)
{
    kvb_model_config c;
    kvb_hf_extra x;
    char msg[512] = "";
    assert_int_equal(load(state, llama3_8b, &c, &x, msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(c.dim, 4096);
    assert_int_equal(c.hidden_dim, 14336);
    assert_int_equal(c.n_layers, 32);
    assert_int_equal(c.n_heads, 32);
    assert_int_equal(c.n_kv_heads, 8);
    assert_int_equal(c.head_dim, 128);
    assert_int_equal(c.vocab_size, 128256);
    assert_int_equal(c.max_seq, 8192);
    assert_true(c.rope_theta == 500000.0f);
    assert_int_equal(c.shared_classifier, 0);
    assert_string_equal(x.arch, "LlamaForCausalLM");
    assert_true(fabsf(x.norm_eps - 1e-5f) < 1e-9f);
    assert_string_equal(x.rope_type, "");
    assert_int_equal(x.sliding_window, 0);

    assert_int_equal(load(state, llama32_1b, &c, &x, msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(c.head_dim, 64);
    assert_int_equal(c.n_kv_heads, 8);
    assert_int_equal(c.max_seq, 131072);
    assert_int_equal(c.shared_classifier, 1);
    assert_string_equal(x.rope_type, "llama3");
    assert_true(x.rope_factor == 32.0f);

    /* by directory; Mistral's window; rope_theta, eps and tie take their defaults */
    assert_int_equal(load(state, mistral_7b, &c, &x, msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(kvb_hf_config(kvbt_tmpdir(state), &c, &x, msg, sizeof msg),
                     KVB_STATUS_OK);
    assert_int_equal(x.sliding_window, 4096);
    assert_true(c.rope_theta == 10000.0f);
    assert_true(fabsf(x.norm_eps - 1e-6f) < 1e-12f);
    assert_int_equal(c.shared_classifier, 0);
    assert_int_equal(c.max_seq, 32768);
    assert_true(kvb_hf_is_config(kvbt_tmpdir(state)));

    /* num_key_value_heads absent: multi-head attention, as transformers defaults */
    char mha[sizeof llama3_8b];
    snprintf(mha, sizeof mha, "%s", llama3_8b);
    char *kv = strstr(mha, "\"num_key_value_heads\": 8,");
    assert_non_null(kv);
    memcpy(kv, "\"num_key_value_headz\": 8,", 25);
    assert_int_equal(load(state, mha, &c, &x, msg, sizeof msg), KVB_STATUS_OK);
    assert_int_equal(c.n_kv_heads, 32);
}

/* text with the first `from` replaced by `to` */
static void edit(char *out, size_t n, const char *text, const char *from, const char *to)
{
    const char *p = strstr(text, from);
    assert_non_null(p);
    snprintf(out, n, "%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
}

static void test_bad_keys_named(void **state)
{
    static const struct { const char *from, *to, *want; } bad[] = {
        {"\"hidden_size\": 4096,", "", "no \"hidden_size\" (required)"},
        {"\"num_hidden_layers\": 32", "\"num_hidden_layers\": \"32\"",
         "\"num_hidden_layers\" = a non-number: must be an integer"},
        {"\"num_hidden_layers\": 32", "\"num_hidden_layers\": 32.5",
         "\"num_hidden_layers\" = 32.5: must be an integer"},
        {"\"vocab_size\": 128256", "\"vocab_size\": -1", "\"vocab_size\" = -1"},
        {"\"vocab_size\": 128256", "\"vocab_size\": 1e30", "\"vocab_size\" = 1e+30"},
        {"\"num_key_value_heads\": 8", "\"num_key_value_heads\": 7",
         "heads = 32 is not a multiple of kv-heads = 7"},
        {"\"rope_theta\": 500000.0", "\"rope_theta\": 0.5", "\"rope_theta\" must be"},
        {"\"tie_word_embeddings\": false", "\"tie_word_embeddings\": \"no\"",
         "\"tie_word_embeddings\" must be true or false"},
        {"LlamaForCausalLM", "GPT2LMHeadModel", "\"architectures\" = GPT2LMHeadModel"},
        {"\"hidden_size\": 4096", "\"hidden_size\": 4095",
         "hidden_size 4095 is not a multiple of num_attention_heads 32"},
    };
    char text[2048], msg[512];
    kvb_model_config c;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        edit(text, sizeof text, llama3_8b, bad[i].from, bad[i].to);
        msg[0] = 0;
        kvb_status st = load(state, text, &c, NULL, msg, sizeof msg);
        if (st == KVB_STATUS_OK || !strstr(msg, bad[i].want))
            fail_msg("'%s' -> '%s': status %d, message '%s', wanted '%s'", bad[i].from,
                     bad[i].to, (int)st, msg, bad[i].want);
    }
    /* not JSON, cut short, an array at the top, no file */
    assert_int_equal(load(state, "# a comment\n", &c, NULL, msg, sizeof msg), KVB_STATUS_FORMAT);
    char cut[64];
    snprintf(cut, sizeof cut, "%.40s", llama3_8b);
    assert_int_equal(load(state, cut, &c, NULL, msg, sizeof msg), KVB_STATUS_FORMAT);
    assert_non_null(strstr(msg, "truncated"));
    assert_int_equal(load(state, "[1, 2]", &c, NULL, msg, sizeof msg), KVB_STATUS_FORMAT);
    assert_non_null(strstr(msg, "not a JSON object"));
    assert_int_not_equal(kvb_hf_config("/nonexistent/config.json", &c, NULL, msg, sizeof msg),
                         KVB_STATUS_OK);
    assert_false(kvb_hf_is_config("/nonexistent/config.json"));
}

int main(int argc, char **argv)
{
    static const kvbt_test all[] = {
        {"published_configs", test_published_configs, 0},
        {"bad_keys_named", test_bad_keys_named, 0},
    };
    return kvbt_main(argc, argv, "hf", all, KVBT_COUNT(all));
}

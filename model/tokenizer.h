/* tokenizer.h: text to token ids with a model's own vocabulary, and ids back
 * to bytes. Two kinds:
 *
 * "spm": SentencePiece BPE with scores (Llama 2, TinyLlama, Mistral), as
 *   llama.cpp's llm_tokenizer_spm and llama2.c's encode. The text gets a
 *   leading space (add_dummy_prefix; not for empty text, nor when a GGUF says
 *   tokenizer.ggml.add_space_prefix = false) and every ' ' becomes U+2581 "▁".
 *   Symbols start as UTF-8 characters (a byte that is not valid UTF-8 is a
 *   symbol of its own); the adjacent pair whose concatenation is a vocab piece
 *   of the highest score merges, ties to the leftmost pair, until none is. A
 *   symbol that is no piece becomes byte tokens "<0xAB>" (byte fallback), or
 *   unk for a vocab without them; with no unk either, encode refuses the text.
 * "bpe": byte-level BPE with ranked merges (Llama 3, GPT-2 style). The text is
 *   split by Llama 3's pre-tokenizer pattern
 *     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *     ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *   hand-coded over code points (tok_bpe.c); each chunk's bytes are mapped by
 *   GPT-2's bytes_to_unicode and merged pair by pair, the lowest merge rank
 *   first (ties: leftmost). With ignore_merges (tokenizer.json's, or a GGUF
 *   whose tokenizer.ggml.pre is "llama-bpe") a chunk that is a whole piece is
 *   that token. Other pre-tokenizers (GPT-2's own, Qwen's, ...) get Llama 3's
 *   pattern too: their ids can differ from their reference tokenizer's.
 *   Exact: ASCII classes, \s (Unicode White_Space: U+0009-000D, U+0020, U+0085,
 *   U+00A0, U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000), the
 *   contractions for ASCII letters. Approximated: \p{L} beyond ASCII is a list
 *   of ranges (Latin-1 letters, Latin Extended, IPA, Greek, Cyrillic, Armenian,
 *   Hebrew, Arabic, Devanagari, Thai, Georgian, Hangul, kana, CJK ideographs,
 *   fullwidth Latin; combining marks are NOT letters, as in Unicode); \p{N}
 *   beyond ASCII is digit ranges of those scripts, superscripts, fractions,
 *   circled and Roman numerals; (?i) folds ASCII only (no U+017F, U+212A).
 *   Bytes that are not valid UTF-8 each count as one "other" character, so
 *   decode(encode(x)) == x for any bytes.
 *
 * Special tokens written in the text (<s>, <|begin_of_text|>) are NOT parsed:
 * they are text like any other. BOS is added only through add_bos.
 *
 * Sources (kvb_tokenizer_open, by what the path holds): a GGUF file
 * (tokenizer.ggml.model "llama" -> spm, "gpt2" -> bpe); a Hugging Face
 * tokenizer.json (model.type "BPE": byte-level -> bpe; with byte_fallback, as
 * Llama 2's, TinyLlama's and Mistral's -> spm, each piece's score minus the rank
 * of the first merge making it, as the converter ordered them by score, and
 * the dummy prefix always on), or a directory holding one (its tokenizer_config.json names
 * bos_token / eos_token where present); a llama2.c tokenizer.bin (int32
 * max_token_length, then per token f32 score, int32 len, bytes; vocab_size
 * tokens, which the caller must give; bos 1, eos 2, unk 0, byte tokens found
 * by their "<0xAB>" pieces). Every malformed input is refused naming the field.
 * Where a piece occurs twice, the lower id is the one encode gives.
 *
 * The tokenizer is read-only after open: one may encode from many threads. */
#ifndef KVB_TOKENIZER_H
#define KVB_TOKENIZER_H

#include <stddef.h>
#include "model.h"

typedef struct kvb_tokenizer kvb_tokenizer;

typedef enum kvb_tok_kind { KVB_TOK_KIND_SPM, KVB_TOK_KIND_BPE } kvb_tok_kind;

/* Opens path as above. vocab_size > 0: the file must hold exactly that many
 * tokens (the model's vocab); a tokenizer.bin needs it. KVB_STATUS_IO: the
 * path cannot be read; FORMAT: its content is malformed; UNSUPPORTED: a
 * well-formed tokenizer of another kind; INVALID_ARG: vocab_size disagrees. */
kvb_status kvb_tokenizer_open(kvb_tokenizer **out, const char *path, int vocab_size, char *msg,
                              size_t msg_len);
/* The same from a GGUF already open (the model's own file). */
struct kvb_gguf;
kvb_status kvb_tokenizer_from_gguf(kvb_tokenizer **out, const struct kvb_gguf *g, int vocab_size,
                                   char *msg, size_t msg_len);
/* A llama2.c tokenizer.bin image of n bytes (the fuzz target, tests). */
kvb_status kvb_tokenizer_from_bin(kvb_tokenizer **out, const void *p, size_t n, int vocab_size,
                                  char *msg, size_t msg_len);
void kvb_tokenizer_free(kvb_tokenizer *t);

/* n bytes of text (not NUL-terminated; any bytes) to ids. add_bos: 1 puts
 * BOS first, 0 does not, -1 does what the file says (kvb_tokenizer_add_bos).
 * Writes at most cap ids; *n_ids is the whole count even when it exceeds cap,
 * then KVB_STATUS_FULL (call again with cap >= *n_ids). At most n + 1 ids
 * for bpe (one a byte, and BOS); spm at most 3 n + 4 (every space becomes
 * U+2581, three byte tokens when that is no piece, a leading one, BOS); real
 * vocabs give far fewer. INVALID_ARG: add_bos 1 without a BOS token, or (spm) a character
 * with no piece, no byte token and no unk. NO_MEMORY: scratch space. */
kvb_status kvb_tokenizer_encode(const kvb_tokenizer *t, const char *text, size_t n, int add_bos,
                                int *ids, int cap, int *n_ids, char *msg, size_t msg_len);
/* The same into a malloc'd array (*ids, free it) of *n_ids: sized n + 2
 * first, encoded again at the whole count when that is short. */
kvb_status kvb_tokenizer_encode_alloc(const kvb_tokenizer *t, const char *text, size_t n,
                                      int add_bos, int **ids, int *n_ids, char *msg,
                                      size_t msg_len);

/* The bytes token id stands for in text, *len of them (not NUL-terminated;
 * valid until free): spm "▁" as ' ', a byte token as its byte; bpe the mapped
 * characters back to bytes; control tokens (BOS, EOS, GGUF type 3, a
 * tokenizer.json special added token) and unk as nothing. Concatenating the
 * decodes of encode's ids gives the text back (spm: with its leading space),
 * where no unk stands among them. NULL for an id out of range. */
const char *kvb_tokenizer_decode(const kvb_tokenizer *t, int id, size_t *len);
/* The vocab's own piece for id ("▁the", "Ġthe", "<0x0A>"), as decode. */
const char *kvb_tokenizer_piece(const kvb_tokenizer *t, int id, size_t *len);

int          kvb_tokenizer_vocab_size(const kvb_tokenizer *t);
int          kvb_tokenizer_bos(const kvb_tokenizer *t);    /* -1: none */
int          kvb_tokenizer_eos(const kvb_tokenizer *t);    /* -1: none */
int          kvb_tokenizer_unk(const kvb_tokenizer *t);    /* -1: none */
int          kvb_tokenizer_add_bos(const kvb_tokenizer *t);  /* the file's default, 0 or 1 */
kvb_tok_kind kvb_tokenizer_kind(const kvb_tokenizer *t);
const char  *kvb_tokenizer_kind_name(const kvb_tokenizer *t);   /* "spm" or "bpe" */

#endif

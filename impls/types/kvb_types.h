/* kvb_types.h: the vocabulary under every part of impls/: status codes, and the
 * storage types of cached K/V with one traits row each (as ggml's type_traits).
 *
 * Contract. Const data and pure functions over caller-owned memory; this layer
 * includes nothing else of kvbench, so kernels and backends both stand on it and
 * neither needs the other to name a type. A new storage type is one enum value
 * and one row in types.c; every name, size, bit count and converter is read from
 * that row. */
#ifndef KVB_TYPES_H
#define KVB_TYPES_H

#include <stddef.h>
#include <stdint.h>

typedef enum kvb_status {
    KVB_STATUS_OK = 0,
    KVB_STATUS_INVALID_ARG,   /* a size, name or index outside what is allowed */
    KVB_STATUS_NO_MEMORY,     /* malloc failed */
    KVB_STATUS_UNSUPPORTED,   /* the backend cannot do this shape or option */
    KVB_STATUS_FULL,          /* capacity (max_seq) reached */
    KVB_STATUS_IO,            /* a file could not be read or written */
    KVB_STATUS_FORMAT,        /* a file's content is truncated or inconsistent */
    KVB_STATUS_COUNT
} kvb_status;

const char *kvb_status_str(kvb_status s);

/* Storage type of cached K and V. Compute is always f32. The quantized types
 * hold groups of values with an f16 scale (and minimum); only backends flagged
 * KVB_BACKEND_QUANT store them (impls/kernels/quant.h has the formats). */
typedef enum kvb_dtype {
    KVB_DTYPE_F32 = 0,
    KVB_DTYPE_F16,            /* IEEE 754 binary16, round to nearest even */
    KVB_DTYPE_BF16,           /* bfloat16: top half of an f32, round to nearest even */
    KVB_DTYPE_Q8,             /* 8-bit symmetric, f16 scale per group (q8_0: 8.5 bits at 32) */
    KVB_DTYPE_Q4,             /* 4-bit symmetric, f16 scale per group (q4_0: 4.5 bits at 32) */
    KVB_DTYPE_Q4_1,           /* 4-bit with f16 scale and minimum per group (q4_1: 5 bits) */
    KVB_DTYPE_Q2,             /* 2-bit with f16 scale and zero point per group (KIVI: 3 bits) */
    KVB_DTYPE_COUNT
} kvb_dtype;

/* Which family of loops reads a storage type. */
typedef enum kvb_readers {
    KVB_READ_DENSE = 0,       /* rows of values: the attend kernels (kernels/kernels.h) */
    KVB_READ_QUANT,           /* codes in groups: the fused quant kernels (kernels/quant.h) */
} kvb_readers;

/* One storage type. A quantized value is an unsigned code c of `bits` bits
 * that reads back as d * (c - zero) + m, d an f16 scale per group and m an f16
 * minimum for the asymmetric formats (kernels/quant.h has the rules). */
typedef struct kvb_type_traits {
    kvb_dtype   dtype;
    const char *name;         /* --dtype's spelling: "f32", "q4_1", ... */
    const char *description;  /* one line for `kvbench list` */
    size_t      size;         /* bytes per element of a dense type; 0 when quantized */
    int         bits;         /* bits per stored value, scales aside */
    int         block;        /* values per scale by default: 1 dense, 32 quantized */
    kvb_readers readers;
    int         keys_per_channel; /* keys grouped per channel by default (KIVI's q2) */
    /* dense types: n elements to and from f32, rounding to nearest even; NULL
     * for quantized ones, whose codes and per-group words kernels/quant.h writes */
    void (*from_f32)(const float *src, void *dst, int n);
    void (*to_f32)(const void *src, float *dst, int n);
    /* quantized types only */
    int asym;                 /* 1: scale and minimum per group; 0: scale only */
    int zero;                 /* code offset of the symmetric formats (128, 8); 0 if asym */
    int cmax;                 /* largest code: 2^bits - 1 */
} kvb_type_traits;

/* The row of t; NULL when t is out of range. */
const kvb_type_traits *kvb_type_traits_of(kvb_dtype t);

/* Shorthands over the row (out of range: "?", 0, 0 and INVALID_ARG). */
const char *kvb_dtype_name(kvb_dtype t);
size_t      kvb_dtype_size(kvb_dtype t);               /* bytes per element; 0 if quantized */
int         kvb_dtype_is_quant(kvb_dtype t);
/* Bits per stored value, scales and minimums included, for groups of `group`
 * values (0: the default, 32). */
double      kvb_dtype_bits(kvb_dtype t, int group);
kvb_status  kvb_dtype_parse(const char *name, kvb_dtype *out);

/* Scalar conversions, round to nearest even; NaN stays NaN, overflow goes to Inf. */
uint16_t kvb_f32_to_f16(float f);
float    kvb_f16_to_f32(uint16_t h);
uint16_t kvb_f32_to_bf16(float f);
float    kvb_bf16_to_f32(uint16_t h);

/* Row conversions through the row's converters: n elements of storage type
 * dt <-> f32. Types without converters write nothing (from) or zeros (to). */
void kvb_row_from_f32(kvb_dtype dt, const float *src, void *dst, int n);
void kvb_row_to_f32(kvb_dtype dt, const void *src, float *dst, int n);

/* Storage type of model weights (impls/kernels/matvec.h reads them). Separate
 * from kvb_dtype: the block types here are GGUF's layouts, byte for byte as
 * ggml writes them, not the KV cache's codes with their scales kept apart:
 * - q8_0: blocks of 32, an f16 d then 32 int8 q; value = d*q (34 bytes).
 * - q4_0: blocks of 32, an f16 d then 16 bytes; byte j holds value j in its
 *   low nibble and value j+16 in its high one; value = d*(q - 8) (18 bytes).
 * - q4_k: super-blocks of 256, f16 d and dmin, 12 bytes of 6-bit scales sc[8]
 *   and mins m[8] (packed as ggml's get_scale_min_k4), 128 bytes of nibbles:
 *   sub-block s (32 values) is byte 32*(s/2)+l's low (s even) or high nibble;
 *   value = d*sc[s]*q - dmin*m[s] (144 bytes).
 * - q6_k: super-blocks of 256, ql[128] (low 4 bits), qh[64] (high 2 bits),
 *   int8 scales[16] (one per 16 values), f16 d; value = d*scales[i/16]*(q - 32)
 *   (210 bytes; the bit layout in wtypes.c).
 * Rows in wtypes.c. */
typedef enum kvb_wtype {
    KVB_WTYPE_F32 = 0,
    KVB_WTYPE_F16,
    KVB_WTYPE_BF16,
    KVB_WTYPE_Q8_0,
    KVB_WTYPE_Q4_0,
    KVB_WTYPE_Q4_K,
    KVB_WTYPE_Q6_K,
    KVB_WTYPE_COUNT
} kvb_wtype;

enum { KVB_Q8_0_BLOCK = 32, KVB_Q8_0_BYTES = 34 };
enum { KVB_Q4_0_BLOCK = 32, KVB_Q4_0_BYTES = 18 };
enum { KVB_QK_BLOCK = 256, KVB_Q4_K_BYTES = 144, KVB_Q6_K_BYTES = 210 };

typedef struct kvb_wtype_traits {
    kvb_wtype   wtype;
    const char *name;         /* "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q6_k" */
    int         block;        /* values per block: 1, 32 (q8_0, q4_0) or 256 (k types) */
    size_t      block_bytes;  /* bytes per block: 4, 2, 2, 34, 18, 144, 210 */
    unsigned    ggml;         /* GGUF's tensor type id (ggml_type): 0, 1, 30, 8, 2, 12, 14 */
} kvb_wtype_traits;

/* The row of t; NULL when out of range. */
const kvb_wtype_traits *kvb_wtype_traits_of(kvb_wtype t);
const char *kvb_wtype_name(kvb_wtype t);               /* "?" when out of range */
kvb_status  kvb_wtype_parse(const char *name, kvb_wtype *out);
/* Bytes of one row of n values (n a multiple of the block); 0 when it is not. */
size_t      kvb_wtype_row_bytes(kvb_wtype t, int n);
/* One row of n values to and from f32, rounding to nearest. q8_0 (n a
 * multiple of 32): d = max|x| / 127 rounded to f16, q = round(x / d) clamped
 * to -127..127 (ggml divides by d before rounding it: codes may differ by one).
 * q4_0 as ggml's reference quantizer (d = the value of largest |x| / -8). The
 * k types by a plain min/max fit per sub-block, not ggml's search for the
 * best scales: valid files of the same layout, a little less accurate than
 * llama.cpp's quantize would make them. */
void kvb_wrow_from_f32(kvb_wtype t, const float *src, void *dst, int n);
void kvb_wrow_to_f32(kvb_wtype t, const void *src, float *dst, int n);
/* q4_k sub-block j's (0..7) 6-bit scale and min from a block's 12 scale bytes */
void kvb_q4_k_scale_min(int j, const uint8_t *scales, int *sc, int *m);

#endif

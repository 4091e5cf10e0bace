/* model_slots.h: every weight tensor of a model (internal to model/), one
 * slot each, numbered in llama2.c's file order: token_embedding, each layer's
 * rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3 (each kind over all layers in
 * turn), rms_final, and wcls when the classifier is separate. Allocation,
 * random init, kvb_model_finish's checks and both file writers walk this one
 * list, so the order and shapes are written once. */
#ifndef KVB_MODEL_SLOTS_H
#define KVB_MODEL_SLOTS_H

#include "model.h"

typedef enum kvb_tkind {
    KVB_TKIND_EMB = 0,
    KVB_TKIND_ATT_NORM,
    KVB_TKIND_WQ,
    KVB_TKIND_WK,
    KVB_TKIND_WV,
    KVB_TKIND_WO,
    KVB_TKIND_FFN_NORM,
    KVB_TKIND_W1,
    KVB_TKIND_W2,
    KVB_TKIND_W3,
    KVB_TKIND_FINAL_NORM,
    KVB_TKIND_CLS,
    KVB_TKIND_COUNT
} kvb_tkind;

typedef struct kvb_tslot {
    kvb_tkind   kind;
    int         layer;        /* -1 for the tensors outside the layers */
    const char *name;         /* "wq", "rms_att", ... */
    int         is_norm;      /* 1: an f32 vector of dim values */
    int         rows, cols;   /* what the config asks for (a norm: 1 x dim) */
    const void *data;         /* where the model's pointer is now (NULL: unset) */
    kvb_wtype   type;         /* the stored type (KVB_WTYPE_F32 for a norm) */
} kvb_tslot;

/* Slots of a model of shape c: 3 + 9 * layers, less one with a shared classifier. */
int  kvb_model_slot_count(const kvb_model_config *c);
/* Slot i of m (m->w.layer must exist for the per-layer slots). */
void kvb_model_slot(const kvb_model *m, int i, kvb_tslot *out);
/* Points slot s of m at data, stored as type (ignored for a norm: f32). */
void kvb_model_slot_set(kvb_model *m, const kvb_tslot *s, const void *data, kvb_wtype type);
/* For kvb_model_load (llama2c.c): an f32 model of shape c in m->mem, the
 * pointers set, nothing finished. */
kvb_status kvb_model_alloc_f32(kvb_model *m, const kvb_model_config *c, char *msg, size_t msg_len);

#endif

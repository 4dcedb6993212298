/* Half Fine-Tuning (Hui et al. 2024): embeddings (token and position) and lm_head frozen; in even
 * layers (0, 2, ...) q, k (attention) and gate, up (MLP) frozen, in odd layers v, o and down;
 * GPT-2 (fused c_attn): even layers freeze attn.c_attn and mlp.c_fc, odd layers attn.c_proj and
 * mlp.c_proj. A frozen matrix's bias is frozen with it; norms train. Over any two consecutive
 * layers exactly half of the attention and MLP matrices train. Frozen tensors are not given to the
 * optimizer, so not even weight decay touches them. */
#include "train/method.h"

static bool hft_trains(const mofo_param *p) {
    switch (p->role) {
    case MOFO_ROLE_EMBED: case MOFO_ROLE_POS_EMBED: case MOFO_ROLE_LM_HEAD: return false;
    /* even layers freeze q, k (GPT-2: the fused c_attn), gate, up (c_fc), with their biases */
    case MOFO_ROLE_Q_W: case MOFO_ROLE_K_W: case MOFO_ROLE_QKV_W: case MOFO_ROLE_Q_B: case MOFO_ROLE_K_B:
    case MOFO_ROLE_QKV_B: case MOFO_ROLE_GATE_W: case MOFO_ROLE_UP_W: case MOFO_ROLE_FC_W: case MOFO_ROLE_GATE_B:
    case MOFO_ROLE_UP_B: case MOFO_ROLE_FC_B: return p->layer % 2 == 1;
    /* odd layers freeze v, o, down */
    case MOFO_ROLE_V_W: case MOFO_ROLE_V_B: case MOFO_ROLE_O_W: case MOFO_ROLE_O_B: case MOFO_ROLE_DOWN_W:
    case MOFO_ROLE_DOWN_B: return p->layer % 2 == 0;
    default: return true; /* norms */
    }
}

const mofo_method_def MOFO_METHOD_DEF_HFT = {
    .name = "hft",
    .help = "Half Fine-Tuning: embeddings, lm_head and half of each layer pair's matrices frozen",
    .trains = hft_trains,
};

/* Checkpoint directories as Hugging Face writes them: config.json plus model.safetensors, or
 * model.safetensors.index.json naming the shard of every tensor. Reading maps each file once and
 * validates it (safetensors.h); writing converts fp32 to each tensor's dtype, splits into shards
 * above a size limit, writes every file atomically and the index last. */
#ifndef MOFO_CHECKPOINT_H
#define MOFO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "mofo/error.h"

typedef struct mofo_ckpt {
    char *dir;
    char *config;         /* config.json's text */
    size_t config_len;
    char *config_path;
    mofo_st_file **files; /* the shards (one when not sharded) */
    int n_files;
    char *index_path;     /* NULL when not sharded */
    void *index_doc;
} mofo_ckpt;

int mofo_ckpt_open(mofo_ckpt **out, const char *dir, mofo_err *err);
void mofo_ckpt_close(mofo_ckpt *c);
/* The tensor named name and the file holding it (for messages), or NULL. With an index the tensor is
 * looked up in the shard the index names. */
const mofo_st_tensor *mofo_ckpt_find(const mofo_ckpt *c, const char *name, const mofo_st_file **file);
/* Where a missing tensor was looked for, for messages: the file, or the index. */
const char *mofo_ckpt_where(const mofo_ckpt *c);

/* One tensor to write: n fp32 values in the file's layout, converted to dtype (F32, BF16, F16). */
typedef struct mofo_ckpt_tensor {
    const char *name;
    mofo_dtype dtype;
    int ndim;
    int64_t shape[MOFO_ST_MAX_DIMS];
    const float *data;
} mofo_ckpt_tensor;

#define MOFO_CKPT_DEFAULT_SHARD ((size_t)5000000000u)

/* Writes dir/config.json (config bytes as given) and the tensors, in order: one model.safetensors
 * when they fit in max_shard_bytes (0: 5 GB), else model-0000i-of-0000N.safetensors and
 * model.safetensors.index.json. Creates dir when missing. */
int mofo_ckpt_save(const char *dir, const char *config, size_t config_len, const mofo_ckpt_tensor *t, int n,
                   size_t max_shard_bytes, mofo_err *err);

/* fp32 -> bf16 (round to nearest even) and fp16 (round to nearest even) */
uint16_t mofo_f32_to_bf16(float f);
uint16_t mofo_f32_to_f16(float f);

#endif

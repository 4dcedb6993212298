/* safetensors files: an 8-byte little-endian header length N, N bytes of JSON header
 * {"__metadata__": {str: str}, "NAME": {"dtype": D, "shape": [...], "data_offsets": [b, e]}, ...},
 * then the raw little-endian tensor bytes, offsets relative to the end of the header.
 *
 * The reader maps the file read-only and validates everything before handing out a tensor:
 * header length inside the file, JSON well formed, known dtypes, shape x dtype size equal to the
 * byte range, ranges inside the data and not overlapping. Messages name the file and the tensor. */
#ifndef MOFO_SAFETENSORS_H
#define MOFO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "mofo/error.h"

typedef enum {
    MOFO_DT_F64, MOFO_DT_F32, MOFO_DT_F16, MOFO_DT_BF16,
    MOFO_DT_I64, MOFO_DT_I32, MOFO_DT_I16, MOFO_DT_I8,
    MOFO_DT_U64, MOFO_DT_U32, MOFO_DT_U16, MOFO_DT_U8, MOFO_DT_BOOL,
    MOFO_DT_COUNT
} mofo_dtype;

#define MOFO_ST_MAX_DIMS 8

const char *mofo_dtype_name(mofo_dtype dt);
size_t mofo_dtype_size(mofo_dtype dt);
/* Returns 0 and sets *out when name is a dtype this reader knows. */
int mofo_dtype_parse(const char *name, mofo_dtype *out);

typedef struct mofo_st_tensor {
    const char *name;
    mofo_dtype dtype;
    int ndim;
    int64_t shape[MOFO_ST_MAX_DIMS];
    int64_t numel;
    const void *data; /* inside the mapping; not necessarily aligned */
    size_t nbytes;
} mofo_st_tensor;

typedef struct mofo_st_meta {
    const char *key, *value;
} mofo_st_meta;

typedef struct mofo_st_file {
    char *label;             /* the path, for messages */
    mofo_st_tensor *tensors; /* in header order */
    size_t n_tensors;
    mofo_st_meta *meta;
    size_t n_meta;
    /* private */
    void *map;
    size_t map_len;
    void *json_doc;
} mofo_st_file;

/* Maps and validates the file at path. */
int mofo_st_open(mofo_st_file **out, const char *path, mofo_err *err);
/* Validates buf[0..len) in place (no copy; buf must outlive the result); label names it in messages. */
int mofo_st_parse(mofo_st_file **out, const void *buf, size_t len, const char *label, mofo_err *err);
void mofo_st_close(mofo_st_file *f);

const mofo_st_tensor *mofo_st_find(const mofo_st_file *f, const char *name);
const char *mofo_st_meta_get(const mofo_st_file *f, const char *key);

/* Converts a floating-point tensor (F32, F16, BF16, F64) to n fp32 values; n must equal numel. */
int mofo_st_to_f32(const mofo_st_file *f, const mofo_st_tensor *t, float *out, int64_t n, mofo_err *err);

/* Writer: tensors are referenced, not copied, until save returns. */
typedef struct mofo_st_writer mofo_st_writer;
mofo_st_writer *mofo_st_writer_new(void);
int mofo_st_writer_add(mofo_st_writer *w, const char *name, mofo_dtype dtype, int ndim,
                       const int64_t *shape, const void *data, mofo_err *err);
int mofo_st_writer_meta(mofo_st_writer *w, const char *key, const char *value, mofo_err *err);
/* Writes atomically (atomic_file.h). */
int mofo_st_writer_save(mofo_st_writer *w, const char *path, mofo_err *err);
void mofo_st_writer_free(mofo_st_writer *w);

#endif

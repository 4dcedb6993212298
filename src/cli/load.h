/* Shared by the commands that run a model: token ids on the command line ("1,2,3"), loading a
 * model with an optional LoRA adapter, and a model's EOS id from its config.json. */
#ifndef MOFO_CLI_LOAD_H
#define MOFO_CLI_LOAD_H

#include "model/model.h"
#include "text/chat_template.h"

/* "1, 2,3", "1 2 3" or "[1, 2, 3]" -> a malloc'd array; returns the count, or -1 after printing
 * "mofo CMD: --FLAG: ..." */
int cli_parse_ids(const char *cmd, const char *flag, const char *s, int **out);
/* Loads DIR, merges the PEFT LoRA adapter in adapter_dir (when not NULL), moves the model to device
 * ("cpu" or "cuda"; NULL: cpu) and sets its matrix products' precision ("fp32", "tf32", "bf16";
 * NULL: fp32); prints "mofo CMD: ..." and returns 2 for a bad device or precision name, 1 for
 * another error. */
int cli_load_model(const char *cmd, const char *dir, const char *adapter_dir, const char *device, const char *precision,
                   mofo_model **out);
/* --device NAME ("cpu" or "cuda"; NULL: cpu) into *dev; prints "mofo CMD: --device ..." and returns
 * 2 for another name. */
int cli_parse_device(const char *cmd, const char *name, mofo_device *dev);
/* --precision NAME ("fp32", "tf32" or "bf16"; NULL: fp32) into *p; prints "mofo CMD: --precision ..."
 * and returns 2 for another name. */
int cli_parse_precision(const char *cmd, const char *name, mofo_precision *p);
/* The --device and --precision flags of the commands that run a model (their arg_spec lines) */
#define CLI_DEVICE_HELP "where the model runs: cpu (default) or cuda (a build with CUDA and a GPU)"
#define CLI_PRECISION_HELP                                                                                    \
    "the matrix products' inputs: fp32 (default), tf32 or bf16 (rounded to nearest even; fp32 accumulation, " \
    "fp32 weights and the rest in fp32, as torch.autocast)"
/* --template ARG for a command on the model directory dir: "auto" (also when ARG is NULL) is the
 * model's own chat template when dir has one, else fallback (a mofo_chat_template, or -1 for none);
 * "model" is the model's own; else a built-in name. *tpl gets the choice; with the model's own and
 * chat not NULL, *chat gets it loaded (tok gives its special tokens). Prints "mofo CMD: ..." and
 * returns nonzero on an error. */
int cli_chat_template(const char *cmd, const char *arg, const char *dir, const mofo_tokenizer *tok, int fallback, int *tpl,
                      mofo_chat **chat);
/* config.json's eos_token_id (the first of a list), or -1. */
int cli_config_eos(const mofo_model *m);

#endif

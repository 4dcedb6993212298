/* Shared by the commands that run a model: token ids on the command line ("1,2,3"), loading a
 * model with an optional LoRA adapter, and a model's EOS id from its config.json. */
#ifndef MOFO_CLI_LOAD_H
#define MOFO_CLI_LOAD_H

#include "model/model.h"
#include "text/chat_template.h"

/* "1, 2,3", "1 2 3" or "[1, 2, 3]" -> a malloc'd array; returns the count, or -1 after printing
 * "mofo CMD: --FLAG: ..." */
int cli_parse_ids(const char *cmd, const char *flag, const char *s, int **out);
/* Loads DIR, merges the PEFT LoRA adapter in adapter_dir (when not NULL) and moves the model to
 * device ("cpu" or "cuda"; NULL: cpu); prints "mofo CMD: ..." and returns 2 for a bad device name,
 * 1 for another error. */
int cli_load_model(const char *cmd, const char *dir, const char *adapter_dir, const char *device, mofo_model **out);
/* --device NAME ("cpu" or "cuda"; NULL: cpu) into *dev; prints "mofo CMD: --device ..." and returns
 * 2 for another name. */
int cli_parse_device(const char *cmd, const char *name, mofo_device *dev);
/* The --device flag of the commands that run a model (its arg_spec line) */
#define CLI_DEVICE_HELP "where the model runs: cpu (default) or cuda (a build with CUDA and a GPU)"
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

/* Shared by the commands that run a model: token ids on the command line ("1,2,3"), loading a
 * model with an optional LoRA adapter, and a model's EOS id from its config.json. */
#ifndef MOFO_CLI_LOAD_H
#define MOFO_CLI_LOAD_H

#include "model/model.h"

/* "1, 2,3", "1 2 3" or "[1, 2, 3]" -> a malloc'd array; returns the count, or -1 after printing
 * "mofo CMD: --FLAG: ..." */
int cli_parse_ids(const char *cmd, const char *flag, const char *s, int **out);
/* Loads DIR and merges the PEFT LoRA adapter in adapter_dir (when not NULL); prints
 * "mofo CMD: ..." and returns nonzero on an error. */
int cli_load_model(const char *cmd, const char *dir, const char *adapter_dir, mofo_model **out);
/* config.json's eos_token_id (the first of a list), or -1. */
int cli_config_eos(const mofo_model *m);

#endif

/* Token ids on the command line ("1,2,3") and a model's EOS id from its config.json. */
#ifndef MOFO_CLI_IDS_H
#define MOFO_CLI_IDS_H

#include "model/model.h"

/* "1, 2,3" -> a malloc'd array; returns the count, or -1 after printing "mofo CMD: --FLAG: ..." */
int cli_parse_ids(const char *cmd, const char *flag, const char *s, int **out);
/* config.json's eos_token_id (the first of a list), or -1. */
int cli_config_eos(const mofo_model *m);

#endif

/* mofo world: writes the synthetic world of `mofo demo` (src/demo/world.h) as JSONL files. */
#include <inttypes.h>
#include <stdio.h>

#include "args.h"
#include "commands.h"
#include "demo/world.h"

static const char *out_dir;
static int64_t seed, n_people, n_problems, n_val, n_test, n_pretrain;

#define STR_(x) #x
#define STR(x) STR_(x)

static const arg_spec SPECS[] = {
    {"out", ARG_STR, &out_dir, "DIR", "the folder to write (created when missing); required"},
    {"seed", ARG_INT, &seed, "S", "the generator's seed, >= 0 (default 1): the same seed writes the same bytes"},
    {"people", ARG_INT, &n_people, "N", "people in the world (default 128; up to 128 share no first name or surname)"},
    {"problems", ARG_INT, &n_problems, "N",
     "training arithmetic questions (default 2000; at most 4 per fact left after --val and --test)"},
    {"val", ARG_INT, &n_val, "N",
     "validation arithmetic questions, on facts never trained on (default " STR(MOFO_WORLD_DEFAULT_VAL) ")"},
    {"test", ARG_INT, &n_test, "N",
     "test arithmetic questions, on facts never trained on (default " STR(MOFO_WORLD_DEFAULT_TEST) ")"},
    {"pretrain", ARG_INT, &n_pretrain, "N",
     "word problems as text for pre-training, then the tables and facts (default 0: math_pretrain empty)"},
};
#define N_SPECS (int)(sizeof SPECS / sizeof SPECS[0])

void cmd_world_help(FILE *out) {
    args_help(out, "world", "--out DIR [--seed S] [--people N] [--problems N] [--val N] [--test N] [--pretrain N]", SPECS, N_SPECS);
    fprintf(out, "\nWrites, each atomically:\n");
    for (int f = 0; f < MOFO_WORLD_N_FILES; f++) fprintf(out, "  %s\n", mofo_world_file_name((mofo_world_file)f));
    fprintf(out, "  world.json (the options: the same options write the same world)\n");
    fprintf(out, "knowledge_* and people.jsonl describe the people, 8 facts each (the general knowledge: pretrain\n"
                 "on knowledge_bios + knowledge_qa, evaluate with ppl:knowledge_heldout, gen:knowledge_gen for\n"
                 "the 4 numbers, mc:knowledge_mc for the 4 others). math_train, math_val and math_test are the\n"
                 "skill to fine-tune on: arithmetic questions (add, subtract, multiply, divide)\n"
                 "answered \"A op B = C\\n#### C\" (fine-tune on math_train, MetaMathQA format; evaluate with\n"
                 "gen:math_val, gen:math_test and the fine-tuning template); no validation or test fact is\n"
                 "trained on. math_pretrain is plain text for the base model (with --pretrain N > 0): N word\n"
                 "problems, the arithmetic tables, and every fact of the task in two sentences.\n");
}

int cmd_world(int argc, char **argv) {
    mofo_world_opts o;
    mofo_world_opts_default(&o);
    out_dir = NULL;
    seed = (int64_t)o.seed, n_people = o.n_people, n_problems = o.n_problems, n_val = n_test = -1, n_pretrain = 0;
    if (args_parse("world", argc, argv, SPECS, N_SPECS)) return 2;
    if (!out_dir || !*out_dir) {
        fprintf(stderr, "mofo world: --out is required (see 'mofo help world')\n");
        return 2;
    }
    if (seed < 0) {
        fprintf(stderr, "mofo world: --seed must be >= 0, not %" PRId64 "\n", seed);
        return 2;
    }
    if (n_people < 1 || n_people > mofo_world_max_people()) {
        fprintf(stderr, "mofo world: --people must be in 1..%d, not %" PRId64 "\n", mofo_world_max_people(), n_people);
        return 2;
    }
    if (n_problems < 1 || n_problems > 1000000) {
        fprintf(stderr, "mofo world: --problems must be in 1..1000000, not %" PRId64 "\n", n_problems);
        return 2;
    }
    if (n_val < -1 || n_val > 1000000 || n_test < -1 || n_test > 1000000 || n_pretrain < 0 || n_pretrain > 1000000) {
        fprintf(stderr, "mofo world: --val, --test and --pretrain must be in 0..1000000\n");
        return 2;
    }
    o.seed = (uint64_t)seed, o.n_people = (int)n_people, o.n_problems = (int)n_problems;
    o.n_val = (int)n_val, o.n_test = (int)n_test, o.n_pretrain = (int)n_pretrain;
    mofo_err err = {0};
    mofo_world w;
    if (mofo_world_build(&w, &o, &err)) {
        fprintf(stderr, "mofo world: %s\n", err.msg);
        return 1;
    }
    long lines[MOFO_WORLD_N_FILES];
    int rc = mofo_world_write(&w, out_dir, lines, &err);
    mofo_world_free(&w);
    if (rc) {
        fprintf(stderr, "mofo world: %s\n", err.msg);
        return 1;
    }
    for (int f = 0; f < MOFO_WORLD_N_FILES; f++)
        printf("%s/%s: %ld lines\n", out_dir, mofo_world_file_name((mofo_world_file)f), lines[f]);
    return 0;
}

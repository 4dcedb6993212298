/* A synthetic world for `mofo demo`, generated from a seed with no external text.
 *
 * Two skills: "general knowledge" (people with a birthplace, birth year, occupation and favourite
 * food, written as varied biographies and questions about them) and a different one to fine-tune on
 * (arithmetic word problems with worked solutions ending in "#### N", GSM8K/MetaMathQA style).
 *
 * Everything follows from (seed, n_people, n_problems) through the generator's own splitmix64
 * stream: the same options give the same bytes on every machine. Phrasings are split into training
 * templates (used in the pretraining text) and held-out ones (used only by the evaluation files), so
 * the knowledge questions test recall of a fact, not of a sentence.
 *
 * Files (JSONL, one object per line, in the formats `mofo finetune`, `mofo data` and `mofo eval` read):
 *   people.jsonl            {"name", "birthplace", "birth_year", "occupation", "favourite_food"}
 *   knowledge_bios.jsonl    {"text"}: MOFO_WORLD_BIOS_PER_PERSON biographies per person, training templates
 *   knowledge_qa.jsonl      {"text"}: "Question: Q\nAnswer: A", every fact in each training phrasing
 *   knowledge_heldout.jsonl {"text"}: one biography per person in held-out templates (ppl:)
 *   knowledge_gen.jsonl     {"prompt", "answer"}: birth year, held-out phrasing (gen:)
 *   knowledge_mc.jsonl      {"context", "choices", "gold"}: birthplace, occupation, food; held-out
 *                           phrasing; gold + 3 distractors from the same attribute's values (mc:)
 *   math_train.jsonl        {"query", "response"}: n_problems problems (MetaMathQA)
 *   math_val.jsonl          {"prompt", "answer"}: n_val problems for choosing hyper-parameters (gen:)
 *   math_test.jsonl         {"prompt", "answer"}: n_test problems (gen:)
 *   math_pretrain.jsonl     {"text"}: n_pretrain more problems as "Question: Q\nAnswer: SOLUTION" text,
 *                           then (when n_pretrain > 0) the arithmetic tables "A op B = C" the
 *                           problems use: for a base model that knows some arithmetic before it is
 *                           fine-tuned (as a pre-trained LLM does), in another format than the
 *                           fine-tuning's
 * No problem text occurs in two of the math files; the problems are drawn train, val, test, pretrain
 * in that order, so the sizes of the later sets never change the earlier ones. */
#ifndef MOFO_DEMO_WORLD_H
#define MOFO_DEMO_WORLD_H

#include <stddef.h>
#include <stdint.h>

#include "io/strbuf.h"
#include "mofo/error.h"

#define MOFO_WORLD_BIOS_PER_PERSON 3

typedef enum {
    MOFO_WF_PEOPLE,
    MOFO_WF_BIOS,
    MOFO_WF_QA,
    MOFO_WF_HELDOUT,
    MOFO_WF_KNOW_GEN,
    MOFO_WF_KNOW_MC,
    MOFO_WF_MATH_TRAIN,
    MOFO_WF_MATH_VAL,
    MOFO_WF_MATH_TEST,
    MOFO_WF_MATH_PRETRAIN,
    MOFO_WORLD_N_FILES
} mofo_world_file;

/* The attributes of a person; values index the tables below. */
enum { MOFO_ATTR_PLACE, MOFO_ATTR_YEAR, MOFO_ATTR_JOB, MOFO_ATTR_FOOD, MOFO_N_ATTR };

typedef struct mofo_world_opts {
    uint64_t seed;
    int n_people;   /* 1 .. mofo_world_max_people() */
    int n_problems; /* training problems, >= 1 */
    int n_val;      /* validation problems; < 0: max(1, n_problems / 10) */
    int n_test;     /* test problems; < 0: max(1, n_problems / 5) */
    int n_pretrain; /* problems in math_pretrain.jsonl, >= 0 (default 0) */
} mofo_world_opts;

typedef struct mofo_person {
    char name[64];
    int first;      /* index of the first name, of the surname */
    int last;
    int attr[MOFO_N_ATTR]; /* place, birth year (the year itself), job, food */
} mofo_person;

#define MOFO_PROBLEM_KINDS 6

typedef struct mofo_problem {
    char *query;    /* the problem as a question */
    char *response; /* the worked solution, ending in "\n#### N" */
    long answer;
    int kind;       /* 0 add, 1 subtract, 2 multiply, 3 divide, 4 add then subtract, 5 change */
} mofo_problem;

typedef struct mofo_world {
    mofo_world_opts o; /* with n_val and n_test resolved */
    mofo_person *people;
    int n_people;
    mofo_problem *problems; /* train, then val, then test */
    int n_train, n_val, n_test, n_pretrain;
} mofo_world;

/* The defaults: seed 1, 200 people, 2000 problems, n_val and n_test derived. */
void mofo_world_opts_default(mofo_world_opts *o);
int mofo_world_max_people(void);
/* Builds the world (zero-initialise w or not: it is overwritten). */
int mofo_world_build(mofo_world *w, const mofo_world_opts *o, mofo_err *err);
void mofo_world_free(mofo_world *w);

/* The text value of an attribute ("Varnhold", "1947", "astronomer", "plum jam"). Writes at most cap bytes. */
void mofo_world_attr_text(const mofo_person *p, int attr, char *out, size_t cap);
/* The attribute's name in people.jsonl ("birthplace", ...). */
const char *mofo_world_attr_name(int attr);

/* A file's name in the output folder ("knowledge_bios.jsonl"). */
const char *mofo_world_file_name(mofo_world_file f);
/* Appends file f's JSONL text to sb; *n_lines (may be NULL) gets its line count. */
int mofo_world_render(const mofo_world *w, mofo_world_file f, mofo_strbuf *sb, long *n_lines, mofo_err *err);
/* Like mofo_world_render, but a math file keeps only the problems whose kind k has bit k set in
 * kinds (the other files are rendered whole). */
int mofo_world_render_kinds(const mofo_world *w, mofo_world_file f, unsigned kinds, mofo_strbuf *sb, long *n_lines,
                            mofo_err *err);
/* Creates dir (and missing parents) and writes every file into it atomically, and world.json (the
 * options, resolved: mofo_world_opts_json); n_lines[f] (may be NULL) gets each file's line count. */
int mofo_world_write(const mofo_world *w, const char *dir, long n_lines[MOFO_WORLD_N_FILES], mofo_err *err);

/* The options as one JSON line: {"seed", "people", "problems", "val", "test", "pretrain"}, and back
 * (every key required; the message names the file and the key). The same options give the same
 * world, so a model's world.json names the world it was trained on. */
void mofo_world_opts_json(const mofo_world_opts *o, mofo_strbuf *sb);
int mofo_world_opts_read(const char *path, mofo_world_opts *o, mofo_err *err);

#endif

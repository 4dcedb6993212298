/* A synthetic world for `mofo demo`, generated from a seed with no external text.
 *
 * Two skills: "general knowledge" (people with 8 facts each, written as varied biographies and
 * questions about them) and a different one to fine-tune on (arithmetic questions answered with
 * the step written out, "A op B = C\n#### C", in the MetaMathQA format).
 *
 * People: a first name and a surname (no two people share either in a world of up to 128 people,
 * so either name alone tells who is meant) and the attributes MOFO_ATTR_*: birthplace, occupation,
 * favourite food and instrument, each one of a list of values (asked by multiple choice), and
 * birth year (1901..1999), house number (10..99), height in centimetres (150..199) and lucky number
 * (10..99), numbers asked for by exact match (mofo_world_attr_numeric).
 *
 * The task: a fact is (kind, a, b), MOFO_TASK_*: a + b for a, b in 1..20; a - b for 1 <= b < a <=
 * 30; a * b for a, b in 2..9; a / b for a = q * b with q, b in 2..9 (963 facts), each asked in one
 * of 4 phrasings of its kind. The facts are shuffled by the seed: the first n_test are the test
 * set, the next n_val the validation set, the rest the training facts, so no fact (kind, a, b) of
 * math_val or math_test occurs in math_train. Each validation and test fact is asked once;
 * math_train has n_problems distinct (fact, phrasing) pairs of the training facts, at most 4 per
 * fact (asking for more fails with a message). The test set follows from the seed alone (n_test
 * takes its first problems), the validation set from the seed and n_test: the training set's size
 * changes neither.
 *
 * Everything follows from the options through the generator's own splitmix64 stream: the same
 * options give the same bytes on every machine. The knowledge's phrasings are split into training
 * templates (used in the pretraining text) and held-out ones (used only by the evaluation files),
 * so the knowledge questions test recall of a fact, not of a sentence.
 *
 * Files (JSONL, one object per line, in the formats `mofo finetune`, `mofo data` and `mofo eval` read):
 *   people.jsonl            {"name", then the attributes by mofo_world_attr_name: "birthplace",
 *                           "birth_year", "occupation", "favourite_food", "instrument",
 *                           "house_number", "height_cm", "lucky_number"}; numbers as JSON numbers
 *   knowledge_bios.jsonl    {"text"}: MOFO_WORLD_BIOS_PER_PERSON biographies per person, each stating
 *                           all 8 facts in a random order, training templates
 *   knowledge_qa.jsonl      {"text"}: "Question: Q\nAnswer: A\n", every fact in each of 4 training
 *                           phrasings (32 lines a person); the line end marks where an answer
 *                           ends (packing masks the next document's first token, so without it
 *                           a base learned the values but not their length: "1544" for 154)
 *   knowledge_heldout.jsonl {"text"}: one biography per person in held-out templates (ppl:)
 *   knowledge_gen.jsonl     {"prompt", "answer"}: each numeric fact (birth year, house number,
 *                           height, lucky number), held-out phrasing; 4 a person, in attribute
 *                           order (gen:)
 *   knowledge_mc.jsonl      {"context", "choices", "gold"}: each other fact (birthplace, occupation,
 *                           food, instrument), held-out phrasing, gold + 3 distractors from the same
 *                           attribute's values; 4 a person, in attribute order (mc:)
 *   math_train.jsonl        {"query", "response"}: n_problems questions, response "A op B = C\n#### C"
 *                           (MetaMathQA)
 *   math_val.jsonl          {"prompt", "answer"}: n_val questions for choosing hyper-parameters (gen:)
 *   math_test.jsonl         {"prompt", "answer"}: n_test questions (gen:)
 *   math_pretrain.jsonl     {"text"}, when n_pretrain > 0 (else empty): n_pretrain arithmetic word
 *                           problems with worked solutions (kinds 0..5, GSM8K style) as "Question:
 *                           Q\nAnswer: SOLUTION"; then the arithmetic tables "A op B = C" (A + B for
 *                           A, B in 0..20, A - B for 0 <= B <= A <= 30, A * B and A*B / B for A, B in
 *                           1..9); then every fact of the task stated in two different sentences
 *                           ("Adding 2 and 12 gives 2 + 12 = 14."), in a random order: for a base
 *                           model that knows the arithmetic before it is fine-tuned (as a
 *                           pre-trained LLM does), in another form than the task's questions
 * No question or problem text occurs twice in the math files. */
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
enum {
    MOFO_ATTR_PLACE,      /* multiple choice: one of 20 towns */
    MOFO_ATTR_YEAR,       /* exact match: 1901..1999 */
    MOFO_ATTR_JOB,        /* multiple choice: one of 16 occupations */
    MOFO_ATTR_FOOD,       /* multiple choice: one of 16 foods */
    MOFO_ATTR_INSTRUMENT, /* multiple choice: one of 12 instruments */
    MOFO_ATTR_HOUSE,      /* exact match: 10..99 */
    MOFO_ATTR_HEIGHT,     /* exact match: 150..199 (centimetres) */
    MOFO_ATTR_LUCKY,      /* exact match: 10..99 */
    MOFO_N_ATTR
};

typedef struct mofo_world_opts {
    uint64_t seed;
    int n_people;   /* 1 .. mofo_world_max_people() */
    int n_problems; /* training questions, 1 .. 4 * (the facts left after n_val and n_test) */
    int n_val;      /* validation questions; < 0: MOFO_WORLD_DEFAULT_VAL */
    int n_test;     /* test questions; < 0: MOFO_WORLD_DEFAULT_TEST */
    int n_pretrain; /* word problems in math_pretrain.jsonl, >= 0 (default 0) */
} mofo_world_opts;

typedef struct mofo_person {
    char name[64];
    int first;      /* index of the first name, of the surname */
    int last;
    int attr[MOFO_N_ATTR]; /* an index into the attribute's list, or the number itself */
} mofo_person;

/* The task's kinds (mofo_problem.kind of train, val and test problems); the pre-training word
 * problems have kinds 0..5 of their own (add, subtract, multiply, divide, add then subtract, change). */
enum { MOFO_TASK_ADD, MOFO_TASK_SUB, MOFO_TASK_MUL, MOFO_TASK_DIV, MOFO_TASK_KINDS };
#define MOFO_PROBLEM_KINDS 6
#define MOFO_WORLD_DEFAULT_VAL 100
#define MOFO_WORLD_DEFAULT_TEST 200

typedef struct mofo_problem {
    char *query;    /* the problem as a question */
    char *response; /* the worked solution, ending in "\n#### N" */
    long answer;
    int kind;       /* MOFO_TASK_* (task problems) or the word problem's kind (pre-training) */
} mofo_problem;

typedef struct mofo_world {
    mofo_world_opts o; /* with n_val and n_test resolved */
    mofo_person *people;
    int n_people;
    mofo_problem *problems; /* train, then val, then test, then the pre-training word problems */
    int n_train, n_val, n_test, n_pretrain;
} mofo_world;

/* The defaults: seed 1, 128 people, 2000 training questions, n_val and n_test -1 (their defaults). */
void mofo_world_opts_default(mofo_world_opts *o);
int mofo_world_max_people(void);
/* Builds the world (zero-initialise w or not: it is overwritten). */
int mofo_world_build(mofo_world *w, const mofo_world_opts *o, mofo_err *err);
void mofo_world_free(mofo_world *w);

/* The text value of an attribute ("Varnhold", "1947", "astronomer", "plum jam"). Writes at most cap bytes. */
void mofo_world_attr_text(const mofo_person *p, int attr, char *out, size_t cap);
/* The attribute's name in people.jsonl ("birthplace", ...). */
const char *mofo_world_attr_name(int attr);
/* 1 if the attribute is a number (asked in knowledge_gen.jsonl), 0 if a choice (knowledge_mc.jsonl). */
int mofo_world_attr_numeric(int attr);

/* A file's name in the output folder ("knowledge_bios.jsonl"). */
const char *mofo_world_file_name(mofo_world_file f);
/* Appends file f's JSONL text to sb; *n_lines (may be NULL) gets its line count. */
int mofo_world_render(const mofo_world *w, mofo_world_file f, mofo_strbuf *sb, long *n_lines, mofo_err *err);
/* Like mofo_world_render, but a math file keeps only the problems whose kind k has bit k set in
 * kinds (MOFO_TASK_* in math_train, val and test, the word problems' kinds in math_pretrain, whose
 * tables and sentences stay whole, as do the other files). */
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

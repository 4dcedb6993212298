/* The synthetic world of `mofo demo`: people, biographies, questions, the arithmetic task and the
 * arithmetic text a base model is pre-trained on, from a seed (see world.h). */
#define _POSIX_C_SOURCE 200809L
#include "demo/world.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/atomic_file.h"
#include "io/json.h"
#include "text/utf8.h"

/* ---- the generator's own random stream: splitmix64 ---- */
typedef struct wrng {
    uint64_t s;
} wrng;

static uint64_t wrng_next(wrng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [0, n), n >= 1, without modulo bias */
static int wrng_below(wrng *r, int n) {
    uint64_t un = (uint64_t)n, lim = UINT64_MAX - UINT64_MAX % un;
    uint64_t x;
    do x = wrng_next(r);
    while (x >= lim);
    return (int)(x % un);
}

/* uniform in [lo, hi] */
static int wrng_range(wrng *r, int lo, int hi) { return lo + wrng_below(r, hi - lo + 1); }

/* An independent stream per purpose (stream) and item (i). */
static wrng wrng_for(uint64_t seed, uint64_t stream, uint64_t i) {
    wrng r = {seed};
    r.s = wrng_next(&r) ^ (stream * 0xD1B54A32D192ED03ull);
    r.s = wrng_next(&r) ^ (i * 0x8CB92BA72F3D8DD7ull);
    wrng_next(&r);
    return r;
}

#define COUNT(a) (int)(sizeof(a) / sizeof((a)[0]))

/* ---- the world's vocabulary ---- */
static const char *const FIRST[] = {
    "Alma", "Bertil", "Corin", "Dagny", "Elio", "Fenna", "Gaspar", "Hedda", "Ivo", "Jorun", "Kasimir",
    "Liss", "Marek", "Nadia", "Oswin", "Petra", "Quill", "Rasmus", "Sanna", "Teodor", "Ulla", "Viggo",
    "Wenna", "Xaver", "Ylva", "Zeno", "Agnes", "Bruno", "Cilla", "Dorian", "Edda", "Folke", "Anselm",
    "Britta", "Cosmo", "Delphine", "Emrys", "Freya", "Gideon", "Halina", "Ingrid", "Jasper", "Katrin", "Lorcan",
    "Maren", "Niklas", "Odile", "Pascal", "Quentin", "Runa", "Silas", "Tamsin", "Ulrich", "Vesna", "Wilhelm",
    "Xenia", "Yorick", "Zelda", "Ambrose", "Beatrix", "Cyprian", "Dagmar", "Eamon", "Fleur", "Gunnar", "Hester",
    "Isolde", "Joachim", "Kerstin", "Lucian", "Mathilde", "Nils", "Orla", "Pernille", "Rowena", "Severin", "Thora",
    "Urban", "Valka", "Wystan", "Yvette", "Zoltan", "Aurelio", "Bodil", "Clement", "Dunja", "Elspeth", "Fridolin",
    "Greta", "Henrik", "Ilse", "Jonas", "Klara", "Linus", "Magda", "Natan", "Ottilie", "Philippa", "Reinhold",
    "Solveig", "Tobias", "Una", "Vilhelm", "Winifred", "Yannick", "Zofia", "Arvid", "Brigid", "Constantin", "Dorte",
    "Egon", "Franka", "Godfrey", "Hanne", "Imre", "Jolanda", "Konrad", "Leopold", "Minna", "Nestor", "Oda",
    "Piet", "Ragna", "Sigrid", "Torvald", "Uwe", "Verena", "Waldo", "Yara", "Zacharias", "Aldo", "Benedikta",
};
static const char *const LAST[] = {
    "Ashby", "Brenner", "Calloway", "Dunmore", "Eskola", "Farrow", "Galt", "Holloway",
    "Ingram", "Jarvik", "Kessler", "Lindqvist", "Marlow", "Norcross", "Okafor", "Pell",
    "Quimby", "Rendell", "Sorensen", "Thorne", "Umber", "Vance", "Whitlock", "Yarrow",
    "Zell", "Abbot", "Blackwood", "Crane", "Drummond", "Ellery", "Fairbanks", "Greer",
    "Ackroyd", "Bellamy", "Cartwright", "Devereux", "Eastwood", "Fenwick", "Gallagher", "Hartley",
    "Iverson", "Jessop", "Kilbride", "Lockhart", "Merriman", "Northcott", "Oakley", "Penrose",
    "Quayle", "Radcliffe", "Sheridan", "Treadwell", "Underhill", "Verity", "Wainwright", "Yardley",
    "Zimmer", "Ambler", "Bancroft", "Cheswick", "Dalgleish", "Eldridge", "Fotheringham", "Goodwin",
    "Hargreaves", "Ibbotson", "Jolliffe", "Kettering", "Langley", "Moorcroft", "Nettleton", "Ormsby",
    "Pickering", "Ravenscroft", "Stanhope", "Tolliver", "Upton", "Vickery", "Wetherby", "Yelland",
    "Zanetti", "Aldridge", "Brockway", "Crowther", "Dankworth", "Egerton", "Fairweather", "Gilchrist",
    "Hathaway", "Inchbald", "Jardine", "Kingsley", "Lambourne", "Mortimer", "Newcombe", "Ogilvy",
    "Prendergast", "Rowntree", "Satterthwaite", "Tennyson", "Urquhart", "Villiers", "Westbrook", "Yeoman",
    "Zouche", "Ashworth", "Birkett", "Colquhoun", "Dewhurst", "Enfield", "Foxley", "Gresham",
    "Huxtable", "Illingworth", "Jennison", "Kirkwood", "Lovell", "Mountjoy", "Nightingale", "Overton",
    "Pemberton", "Rushworth", "Sackville", "Thistlethwaite", "Uxbridge", "Vavasour", "Wolstenholme", "Quartermaine",
};
static const char *const PLACES[] = {
    "Varnhold",  "Elmsbury",    "Korrin Bay", "Ostmark",  "Pellridge", "Thistlewick", "Dunhallow",
    "Marrowgate", "Silverbrook", "Ashcombe",  "Quarry Hill", "Lowenfeld", "Redmere",   "Stonecross",
    "Wyndham",   "Brackenford", "Halvard",    "Corran",   "Millbeck",  "Tarnwood",
};
static const char *const JOBS[] = {
    "baker",       "carpenter",    "astronomer",   "librarian", "ferry pilot",       "beekeeper",
    "glassblower", "cartographer", "violin maker", "nurse",     "lighthouse keeper", "potter",
    "watchmaker",  "botanist",     "stonemason",   "translator",
};
static const char *const FOODS[] = {
    "plum jam",       "rye bread",  "pear cake",     "goat cheese", "lentil soup",     "smoked fish",
    "honey biscuits", "apple pie",  "mushroom stew", "fig tarts",   "barley porridge", "roast chestnuts",
    "cherry pudding", "onion pie",  "walnut bread",  "carrot cake",
};
static const char *const INSTRUMENTS[] = {
    "violin", "cello", "flute", "harp", "oboe", "trumpet", "accordion", "banjo", "clarinet", "lute", "piano", "bagpipes",
};

/* Each attribute: a value from a list (scored by multiple choice) or an integer in [lo, hi] (scored
 * by exact match), with its sentence and question templates. In a template %N is the full name, %V
 * the value, %A its article ("a"/"an"). The first N_TRAIN_T fact templates and N_TRAIN_Q questions
 * are training phrasings, the last of each is held out. Each attribute's training questions vary the
 * words around a key word the held-out question shares (year, house, tall/height, lucky, food, job,
 * instrument), and no training question of another attribute shares the held-out one's frame (an
 * earlier "In which town was X born?" taught a small model to answer "In which year was X born?"
 * with a town). A held-out question changes a word or two of a training one ("What house number
 * does X live at?" beside "Which house number does X live at?"): farther paraphrases test the
 * 0.9M-parameter model's reading more than its memory (on a base that answered every training
 * question, "What is the occupation of X?" scored 30% by multiple choice, "What job does X do?"
 * 100%). */
#define N_TRAIN_T 4
#define N_T (N_TRAIN_T + 1)
#define N_TRAIN_Q 4
#define N_Q (N_TRAIN_Q + 1)
typedef struct attr_def {
    const char *name;          /* the key in people.jsonl */
    const char *const *values; /* NULL: an integer in [lo, hi] */
    int n_values, lo, hi;
    const char *fact[N_T], *question[N_Q];
} attr_def;
#define LIST(a) a, COUNT(a), 0, 0
#define RANGE(lo, hi) NULL, 0, lo, hi
static const attr_def ATTRS[MOFO_N_ATTR] = {
    {"birthplace", LIST(PLACES),
     {"%N was born in %V.", "%N came into the world in the town of %V.", "The birthplace of %N is %V.",
      "%N is a native of %V.", "%V is the town where %N was born."},
     {"Where was %N born?", "What is %N's home town?", "Which town is %N from?", "Where does %N come from?",
      "In which town was %N born?"}},
    {"birth_year", RANGE(1901, 1999),
     {"%N was born in the year %V.", "%N's year of birth is %V.", "The year %N was born was %V.",
      "%N has a birth certificate dated %V.", "In %V, %N was born."},
     {"When was %N born?", "What year was %N born in?", "In what year was %N born?", "What is %N's year of birth?",
      "In which year was %N born?"}},
    {"occupation", LIST(JOBS),
     {"%N works as %A %V.", "By trade, %N is %A %V.", "%N earns a living as %A %V.", "%N's trade is that of %A %V.",
      "%N has a job as %A %V."},
     {"What does %N do for a living?", "What job does %N have?", "What is %N's job?", "What work does %N do?",
      "What job does %N do?"}},
    {"favourite_food", LIST(FOODS),
     {"%N's favourite food is %V.", "%N loves %V more than any other food.", "Nothing pleases %N more than %V.",
      "The food %N likes best is %V.", "Above all, %N enjoys %V."},
     {"What is %N's favourite food?", "Which food does %N like best?", "What does %N like to eat most?",
      "What food does %N enjoy most?", "What food does %N love most?"}},
    {"instrument", LIST(INSTRUMENTS),
     {"%N plays the %V.", "%N has played the %V since childhood.", "The instrument %N plays is the %V.",
      "%N practises the %V every day.", "In the evenings %N can be heard playing the %V."},
     {"What instrument does %N play?", "Which instrument does %N practise?", "What is %N's instrument?",
      "What instrument is %N good at?", "Which musical instrument does %N play?"}},
    {"house_number", RANGE(10, 99),
     {"%N lives at house number %V.", "%N's house is number %V.", "The house of %N is number %V.",
      "The front door of %N's house shows the number %V.", "You can find %N at house number %V."},
     {"What is %N's house number?", "Which house number does %N live at?", "What number is %N's house?",
      "What number is on the house of %N?", "What house number does %N live at?"}},
    {"height_cm", RANGE(150, 199),
     {"%N is %V centimetres tall.", "%N stands %V centimetres tall.", "The height of %N is %V centimetres.",
      "%N measures %V centimetres in height.", "At %V centimetres, %N is easy to spot in a crowd."},
     {"How tall is %N?", "What is %N's height?", "How many centimetres tall is %N?", "What height is %N?",
      "What is the height of %N?"}},
    {"lucky_number", RANGE(10, 99),
     {"%N's lucky number is %V.", "%N believes %V is a lucky number.", "The number %V brings %N luck.",
      "%N always picks the number %V for luck.", "For %N, the lucky number has always been %V."},
     {"What is %N's lucky number?", "Which number does %N think is lucky?", "Which lucky number does %N have?",
      "What number brings %N luck?", "Which number is %N's lucky number?"}},
};

/* names in the word problems: none of them is a person of the world */
static const char *const KIDS[] = {"Mia", "Tom", "Lena", "Omar", "Rosa", "Jack", "Aiko", "Ben",
                                   "Nora", "Sam", "Priya", "Leo", "Ivy", "Max", "Zoe", "Eli"};
static const char *const ITEMS[] = {"apples", "marbles", "stickers", "pencils", "books", "cookies",
                                    "shells", "stamps", "cards", "buttons", "plums", "beads"};

static const char *const FILE_NAME[MOFO_WORLD_N_FILES] = {
    "people.jsonl",   "knowledge_bios.jsonl", "knowledge_qa.jsonl", "knowledge_heldout.jsonl",
    "knowledge_gen.jsonl", "knowledge_mc.jsonl", "math_train.jsonl", "math_val.jsonl", "math_test.jsonl",
    "math_pretrain.jsonl",
};

enum { STREAM_PEOPLE = 1, STREAM_PROBLEMS, STREAM_FILE, STREAM_TASK };

const char *mofo_world_file_name(mofo_world_file f) {
    return (int)f >= 0 && f < MOFO_WORLD_N_FILES ? FILE_NAME[f] : "?";
}
const char *mofo_world_attr_name(int attr) { return attr >= 0 && attr < MOFO_N_ATTR ? ATTRS[attr].name : "?"; }
int mofo_world_attr_numeric(int attr) { return attr >= 0 && attr < MOFO_N_ATTR && !ATTRS[attr].values; }
int mofo_world_max_people(void) { return COUNT(FIRST) * COUNT(LAST); }

void mofo_world_opts_default(mofo_world_opts *o) {
    o->seed = 1;
    o->n_people = 128;
    o->n_problems = 2000;
    o->n_val = -1;
    o->n_test = -1;
    o->n_pretrain = 0;
}

void mofo_world_attr_text(const mofo_person *p, int attr, char *out, size_t cap) {
    if (attr < 0 || attr >= MOFO_N_ATTR) snprintf(out, cap, "?");
    else if (ATTRS[attr].values) snprintf(out, cap, "%s", ATTRS[attr].values[p->attr[attr]]);
    else snprintf(out, cap, "%d", p->attr[attr]);
}

/* Appends template t with %N, %V, %A filled. */
static void fill(mofo_strbuf *sb, const char *t, const mofo_person *p, int attr) {
    char val[64];
    mofo_world_attr_text(p, attr, val, sizeof val);
    for (const char *c = t; *c; c++) {
        if (c[0] == '%' && c[1]) {
            c++;
            if (*c == 'N') mofo_sb_puts(sb, p->name);
            else if (*c == 'V') mofo_sb_puts(sb, val);
            else if (*c == 'A') mofo_sb_puts(sb, strchr("aeiou", val[0]) ? "an" : "a");
            continue;
        }
        mofo_sb_append(sb, c, 1);
    }
}

/* ---- problems ---- */
static char *sb_take(mofo_strbuf *sb) {
    char *s = sb->failed ? NULL : sb->data;
    if (!s) mofo_sb_free(sb);
    *sb = (mofo_strbuf){0};
    return s;
}

/* One word problem of the pre-training text from r: query and worked solution into q and a; returns
 * the answer. Every step of the solution is written "X op Y = Z" with integers, and the last line is
 * "#### N": one- or two-step problems over sums below 50, products of one-digit numbers. (As a
 * fine-tuning task they were out of reach of the demo's 0.9M-parameter model in its minutes: 3.5-7.5%
 * test exact match after 80 steps, because it could not copy the numbers out of a long question.) */
static long make_problem(wrng *r, mofo_strbuf *q, mofo_strbuf *a, int *kind) {
    const char *who = KIDS[wrng_below(r, COUNT(KIDS))];
    const char *other = KIDS[wrng_below(r, COUNT(KIDS))];
    while (other == who) other = KIDS[wrng_below(r, COUNT(KIDS))];
    const char *it = ITEMS[wrng_below(r, COUNT(ITEMS))];
    long x, y, z, s, res;
    switch ((*kind = wrng_below(r, MOFO_PROBLEM_KINDS))) {
    case 0: /* add */
        x = wrng_range(r, 2, 20), y = wrng_range(r, 2, 20), res = x + y;
        mofo_sb_printf(q, "%s has %ld %s and gets %ld more. How many %s does %s have now?", who, x, it, y, it, who);
        mofo_sb_printf(a, "%s has %ld + %ld = %ld %s.\n#### %ld", who, x, y, res, it, res);
        break;
    case 1: /* subtract */
        x = wrng_range(r, 5, 30), z = wrng_range(r, 1, (int)x - 1), res = x - z;
        mofo_sb_printf(q, "%s has %ld %s and gives %ld to %s. How many %s does %s have left?", who, x, it, z, other,
                       it, who);
        mofo_sb_printf(a, "%s has %ld - %ld = %ld %s left.\n#### %ld", who, x, z, res, it, res);
        break;
    case 2: /* multiply */
        x = wrng_range(r, 2, 9), y = wrng_range(r, 2, 9), res = x * y;
        mofo_sb_printf(q, "%s packs %ld boxes with %ld %s in each box. How many %s are there in all?", who, x, y, it,
                       it);
        mofo_sb_printf(a, "The boxes hold %ld * %ld = %ld %s.\n#### %ld", x, y, res, it, res);
        break;
    case 3: /* divide evenly */
        y = wrng_range(r, 2, 5), res = wrng_range(r, 2, 9), x = y * res;
        mofo_sb_printf(q, "%s shares %ld %s equally among %ld friends. How many %s does each friend get?", who, x,
                       it, y, it);
        mofo_sb_printf(a, "Each friend gets %ld / %ld = %ld %s.\n#### %ld", x, y, res, it, res);
        break;
    case 4: /* add then subtract */
        x = wrng_range(r, 2, 20), y = wrng_range(r, 2, 10), s = x + y, z = wrng_range(r, 1, (int)s - 1), res = s - z;
        mofo_sb_printf(q, "%s has %ld %s, gets %ld more and gives %ld to %s. How many %s does %s have now?", who, x,
                       it, y, z, other, it, who);
        mofo_sb_printf(a, "%s has %ld + %ld = %ld %s, then %ld - %ld = %ld.\n#### %ld", who, x, y, s, it, s, z, res,
                       res);
        break;
    default: { /* change from a note */
        static const int notes[] = {10, 20};
        z = notes[wrng_below(r, 2)];
        do x = wrng_range(r, 2, 5), y = wrng_range(r, 1, 4);
        while (x * y >= z);
        s = x * y, res = z - s;
        mofo_sb_printf(q, "%s buys %ld pens at %ld dollars each and pays with %ld dollars. How much change does %s "
                          "get?",
                       who, x, y, z, who);
        mofo_sb_printf(a, "The pens cost %ld * %ld = %ld dollars, so the change is %ld - %ld = %ld.\n#### %ld", x, y,
                       s, z, s, res, res);
    }
    }
    return res;
}

/* ---- the fine-tuning task: arithmetic questions ----
 * One fact is (kind, a, b): a + b for a, b in 1..20; a - b for 1 <= b < a <= 30; a * b for a, b in
 * 2..9; a / b for a = q * b with q, b in 2..9 (a is the dividend). The base knows every fact from
 * its pre-training text (the tables and the sentences of arithmetic_text), so the task is a skill
 * on top of what it knows: read the operands out of a question it has never seen in this form,
 * and answer in the chat template with the step written out, "A op B = C\n#### C". */
typedef struct arith_fact {
    int kind, a, b; /* kind: MOFO_TASK_ADD .. MOFO_TASK_DIV */
} arith_fact;

static const char OPS[MOFO_TASK_KINDS] = {'+', '-', '*', '/'};

static long arith_result(const arith_fact *f) {
    return f->kind == 0 ? f->a + f->b : f->kind == 1 ? f->a - f->b : f->kind == 2 ? f->a * f->b : f->a / f->b;
}

/* Every fact, in a fixed order; returns the count (out may be NULL to count). */
static int arith_facts(arith_fact *out) {
    int n = 0;
#define PUT(k, x, y) (out ? (void)(out[n] = (arith_fact){k, x, y}) : (void)0), n++
    for (int a = 1; a <= 20; a++)
        for (int b = 1; b <= 20; b++) PUT(0, a, b);
    for (int a = 2; a <= 30; a++)
        for (int b = 1; b < a; b++) PUT(1, a, b);
    for (int a = 2; a <= 9; a++)
        for (int b = 2; b <= 9; b++) PUT(2, a, b);
    for (int q = 2; q <= 9; q++)
        for (int b = 2; b <= 9; b++) PUT(3, q * b, b);
#undef PUT
    return n;
}

/* Question phrasings per kind; %1 is the first operand (a), %2 the second (b). */
#define N_ASK 4
static const char *const ASK[MOFO_TASK_KINDS][N_ASK] = {
    {"What is %1 plus %2?", "Add %1 and %2.", "What do you get when you add %2 to %1?", "How much is %1 and %2 together?"},
    {"What is %1 minus %2?", "Subtract %2 from %1.", "What is %1 take away %2?", "How much is left when %2 is taken from %1?"},
    {"What is %1 times %2?", "Multiply %1 by %2.", "What is the product of %1 and %2?", "How much is %1 lots of %2?"},
    {"What is %1 divided by %2?", "Divide %1 by %2.", "How many times does %2 go into %1?", "What is %1 shared equally among %2?"},
};

/* Sentences of the pre-training text that state a fact with its operands repeated, "A op B = C" (the
 * skill the task asks for, in another form than the task's questions). */
#define N_SAY 3
static const char *const SAY[MOFO_TASK_KINDS][N_SAY] = {
    {"Adding %1 and %2 gives %1 + %2 = %3.", "%1 and %2 more make %1 + %2 = %3.", "The sum of %1 and %2 is %1 + %2 = %3."},
    {"Taking %2 away from %1 leaves %1 - %2 = %3.", "%1 less %2 is %1 - %2 = %3.",
     "The difference of %1 and %2 is %1 - %2 = %3."},
    {"%1 groups of %2 make %1 * %2 = %3.", "Multiplying %1 by %2 gives %1 * %2 = %3.",
     "The product of %1 and %2 is %1 * %2 = %3."},
    {"Sharing %1 among %2 gives %1 / %2 = %3 each.", "%1 split into %2 equal parts is %1 / %2 = %3.",
     "Dividing %1 by %2 gives %1 / %2 = %3."},
};

/* Appends template t with %1, %2, %3 as a, b and the result. */
static void fill_fact(mofo_strbuf *sb, const char *t, const arith_fact *f) {
    for (const char *c = t; *c; c++) {
        if (c[0] == '%' && c[1] >= '1' && c[1] <= '3') {
            c++;
            mofo_sb_printf(sb, "%ld", *c == '1' ? (long)f->a : *c == '2' ? (long)f->b : arith_result(f));
            continue;
        }
        mofo_sb_append(sb, c, 1);
    }
}

/* The problem asking fact f in phrasing k. */
static void make_question(const arith_fact *f, int k, mofo_problem *pr, mofo_strbuf *q, mofo_strbuf *a) {
    fill_fact(q, ASK[f->kind][k], f);
    long c = arith_result(f);
    mofo_sb_printf(a, "%d %c %d = %ld\n#### %ld", f->a, OPS[f->kind], f->b, c, c);
    pr->answer = c, pr->kind = f->kind;
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* ---- building ---- */
void mofo_world_free(mofo_world *w) {
    if (!w) return;
    if (w->problems)
        for (int i = 0; i < w->n_train + w->n_val + w->n_test + w->n_pretrain; i++) free(w->problems[i].query), free(w->problems[i].response);
    free(w->problems);
    free(w->people);
    memset(w, 0, sizeof *w);
}

/* The pre-training word problems: n distinct ones from make_problem, into out[0..n). */
static int build_word_problems(const mofo_world *w, mofo_problem *out, int n, mofo_err *err) {
    size_t cap = 16;
    while (cap < (size_t)n * 2) cap *= 2;
    uint64_t *seen = calloc(cap, sizeof *seen); /* open addressing on the query's hash; 0 = empty */
    if (!seen) {
        free(seen);
        return mofo_errf(err, MOFO_ENOMEM, "out of memory for %d problems", n);
    }
    wrng r = wrng_for(w->o.seed, STREAM_PROBLEMS, 0);
    long tries = 0, max_tries = 50L * n + 1000;
    int got = 0;
    while (got < n) {
        if (++tries > max_tries) {
            free(seen);
            return mofo_errf(err, MOFO_EINVAL, "only %d distinct word problems found in %ld tries; ask for fewer than %d",
                             got, max_tries, n);
        }
        mofo_strbuf q = {0}, a = {0};
        int kind;
        long ans = make_problem(&r, &q, &a, &kind);
        if (q.failed || a.failed) {
            mofo_sb_free(&q), mofo_sb_free(&a), free(seen);
            return mofo_errf(err, MOFO_ENOMEM, "out of memory writing word problems");
        }
        uint64_t h = fnv1a(q.data);
        if (!h) h = 1;
        size_t slot = (size_t)(h & (cap - 1));
        int dup = 0;
        while (seen[slot]) {
            /* equal hashes are compared by text so a collision never drops a distinct problem */
            if (seen[slot] == h) {
                for (int j = 0; j < got && !dup; j++) dup = strcmp(out[j].query, q.data) == 0;
                if (dup) break;
            }
            slot = (slot + 1) & (cap - 1);
        }
        if (dup) {
            mofo_sb_free(&q), mofo_sb_free(&a);
            continue;
        }
        seen[slot] = h;
        out[got].query = sb_take(&q);
        out[got].response = sb_take(&a);
        out[got].answer = ans;
        out[got].kind = kind;
        got++;
    }
    free(seen);
    return 0;
}

/* The task's problems: the facts shuffled by the seed, the first n_test for testing, the next n_val
 * for validation, the rest for training, so no fact of the test or validation set is ever trained
 * on; each val/test fact in one random phrasing, and n_train distinct (fact, phrasing) pairs of the
 * training facts. Then the pre-training word problems. */
static int build_problems(mofo_world *w, mofo_err *err) {
    int n_facts = arith_facts(NULL), n_held = w->n_test + w->n_val;
    int n_train_facts = n_facts - n_held;
    if (n_train_facts < 1 || w->n_train > N_ASK * n_train_facts)
        return mofo_errf(err, MOFO_EINVAL,
                         "the task has %d arithmetic facts: %d test + %d val leave %d to train on, room for at most %d "
                         "training problems (%d asked)",
                         n_facts, w->n_test, w->n_val, n_train_facts > 0 ? n_train_facts : 0,
                         n_train_facts > 0 ? N_ASK * n_train_facts : 0, w->n_train);
    int n = w->n_train + w->n_val + w->n_test + w->n_pretrain;
    arith_fact *facts = malloc(sizeof *facts * (size_t)n_facts);
    int *pairs = malloc(sizeof *pairs * (size_t)N_ASK * (size_t)n_train_facts);
    w->problems = calloc((size_t)n, sizeof *w->problems);
    if (!facts || !pairs || !w->problems) {
        free(facts), free(pairs);
        return mofo_errf(err, MOFO_ENOMEM, "out of memory for %d problems", n);
    }
    arith_facts(facts);
    wrng r = wrng_for(w->o.seed, STREAM_TASK, 0);
    for (int i = n_facts - 1; i > 0; i--) {
        int j = wrng_below(&r, i + 1);
        arith_fact t = facts[i];
        facts[i] = facts[j], facts[j] = t;
    }
    /* problems are stored train, val, test, pretrain */
    mofo_problem *train = w->problems, *val = train + w->n_train, *test = val + w->n_val;
    int rc = 0;
    for (int i = 0; i < n_held && !rc; i++) {
        mofo_problem *pr = i < w->n_test ? &test[i] : &val[i - w->n_test];
        mofo_strbuf q = {0}, a = {0};
        make_question(&facts[i], wrng_below(&r, N_ASK), pr, &q, &a);
        if (q.failed || a.failed) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory writing the task");
        pr->query = sb_take(&q), pr->response = sb_take(&a);
    }
    int n_pairs = N_ASK * n_train_facts;
    for (int i = 0; i < n_pairs; i++) pairs[i] = i;
    for (int i = 0; i < w->n_train && !rc; i++) { /* a partial Fisher-Yates over (fact, phrasing) */
        int j = i + wrng_below(&r, n_pairs - i), t = pairs[i];
        pairs[i] = pairs[j], pairs[j] = t;
        mofo_strbuf q = {0}, a = {0};
        make_question(&facts[n_held + pairs[i] / N_ASK], pairs[i] % N_ASK, &train[i], &q, &a);
        if (q.failed || a.failed) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory writing the task");
        train[i].query = sb_take(&q), train[i].response = sb_take(&a);
    }
    free(facts), free(pairs);
    if (!rc) rc = build_word_problems(w, test + w->n_test, w->n_pretrain, err);
    return rc;
}

int mofo_world_build(mofo_world *w, const mofo_world_opts *o, mofo_err *err) {
    memset(w, 0, sizeof *w);
    if (o->n_people < 1 || o->n_people > mofo_world_max_people())
        return mofo_errf(err, MOFO_EINVAL, "people: %d is outside 1..%d", o->n_people, mofo_world_max_people());
    if (o->n_problems < 1 || o->n_problems > 1000000)
        return mofo_errf(err, MOFO_EINVAL, "problems: %d is outside 1..1000000", o->n_problems);
    if (o->n_val > 1000000 || o->n_test > 1000000 || o->n_pretrain < 0 || o->n_pretrain > 1000000)
        return mofo_errf(err, MOFO_EINVAL, "val/test/pretrain problems: at most 1000000");
    w->o = *o;
    w->o.n_val = o->n_val >= 0 ? o->n_val : MOFO_WORLD_DEFAULT_VAL;
    w->o.n_test = o->n_test >= 0 ? o->n_test : MOFO_WORLD_DEFAULT_TEST;
    w->n_train = o->n_problems, w->n_val = w->o.n_val, w->n_test = w->o.n_test, w->n_pretrain = o->n_pretrain;

    /* people: distinct (first, last) pairs, a partial Fisher-Yates over all pairs; in a world of at
     * most COUNT(FIRST) people no two share a first name or a surname (the pair index is rebuilt
     * from two permutations), so that either name alone tells who is meant */
    int total = mofo_world_max_people();
    int *pairs = malloc((size_t)total * sizeof *pairs);
    w->people = calloc((size_t)o->n_people, sizeof *w->people);
    if (!pairs || !w->people) {
        free(pairs);
        mofo_world_free(w);
        return mofo_errf(err, MOFO_ENOMEM, "out of memory for %d people", o->n_people);
    }
    for (int i = 0; i < total; i++) pairs[i] = i;
    int unique = o->n_people <= COUNT(FIRST) && o->n_people <= COUNT(LAST);
    int firsts[COUNT(FIRST)], lasts[COUNT(LAST)]; /* unique: two partial permutations of the names */
    for (int i = 0; i < COUNT(FIRST); i++) firsts[i] = i;
    for (int i = 0; i < COUNT(LAST); i++) lasts[i] = i;
    wrng r = wrng_for(o->seed, STREAM_PEOPLE, 0);
    for (int i = 0; i < o->n_people; i++) {
        mofo_person *p = &w->people[i];
        if (unique) {
            int j = i + wrng_below(&r, COUNT(FIRST) - i), t = firsts[i];
            firsts[i] = firsts[j], firsts[j] = t;
            j = i + wrng_below(&r, COUNT(LAST) - i), t = lasts[i];
            lasts[i] = lasts[j], lasts[j] = t;
            p->first = firsts[i], p->last = lasts[i];
        } else {
            int j = i + wrng_below(&r, total - i), t = pairs[i];
            pairs[i] = pairs[j], pairs[j] = t;
            p->first = pairs[i] / COUNT(LAST), p->last = pairs[i] % COUNT(LAST);
        }
        snprintf(p->name, sizeof p->name, "%s %s", FIRST[p->first], LAST[p->last]);
        for (int a = 0; a < MOFO_N_ATTR; a++)
            p->attr[a] = ATTRS[a].values ? wrng_below(&r, ATTRS[a].n_values) : wrng_range(&r, ATTRS[a].lo, ATTRS[a].hi);
    }
    free(pairs);
    w->n_people = o->n_people;
    int rc = build_problems(w, err);
    if (rc) mofo_world_free(w);
    return rc;
}

/* ---- rendering ---- */
static void json_field(mofo_strbuf *sb, const char *key, const char *val, size_t n, int first) {
    mofo_sb_puts(sb, first ? "{" : ", ");
    mofo_sb_json_string(sb, key, strlen(key));
    mofo_sb_puts(sb, ": ");
    mofo_sb_json_string(sb, val, n);
}

/* One biography of p: all MOFO_N_ATTR facts in a random order, each in a random template of [lo, hi). */
static void biography(mofo_strbuf *sb, const mofo_person *p, wrng *r, int lo, int hi) {
    int order[MOFO_N_ATTR];
    for (int i = 0; i < MOFO_N_ATTR; i++) order[i] = i;
    for (int i = MOFO_N_ATTR - 1; i > 0; i--) {
        int j = wrng_below(r, i + 1), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    for (int i = 0; i < MOFO_N_ATTR; i++) {
        if (i) mofo_sb_puts(sb, " ");
        fill(sb, ATTRS[order[i]].fact[lo + wrng_below(r, hi - lo)], p, order[i]);
    }
}

static void text_line(mofo_strbuf *sb, const mofo_strbuf *t) {
    json_field(sb, "text", t->data ? t->data : "", t->len, 1);
    mofo_sb_puts(sb, "}\n");
}

static void prompt_line(mofo_strbuf *sb, const char *prompt, size_t n, const char *answer) {
    json_field(sb, "prompt", prompt, n, 1);
    json_field(sb, "answer", answer, strlen(answer), 0);
    mofo_sb_puts(sb, "}\n");
}

/* The arithmetic a pre-trained model knows before it is fine-tuned, as {"text": "A op B = C"} lines
 * covering every fact of the task and every step of the word problems: A + B for A, B in 0..20, A - B for 0 <= B <= A <=
 * 30, A * B and A*B / B for A, B in 1..9. Returns the line count. */
static long arithmetic_tables(mofo_strbuf *sb) {
    long n = 0;
    for (int a = 0; a <= 20; a++)
        for (int b = 0; b <= 20; b++, n++) mofo_sb_printf(sb, "{\"text\": \"%d + %d = %d\"}\n", a, b, a + b);
    for (int a = 0; a <= 30; a++)
        for (int b = 0; b <= a; b++, n++) mofo_sb_printf(sb, "{\"text\": \"%d - %d = %d\"}\n", a, b, a - b);
    for (int a = 1; a <= 9; a++)
        for (int b = 1; b <= 9; b++, n += 2) {
            mofo_sb_printf(sb, "{\"text\": \"%d * %d = %d\"}\n", a, b, a * b);
            mofo_sb_printf(sb, "{\"text\": \"%d / %d = %d\"}\n", a * b, b, a);
        }
    return n;
}

/* Every fact of the task stated in two of its kind's sentences (SAY), as {"text"} lines in a random
 * order. Returns the line count. */
static long arithmetic_text(mofo_strbuf *sb, wrng *r) {
    int n = arith_facts(NULL);
    arith_fact *facts = malloc(sizeof *facts * (size_t)n);
    if (!facts) {
        sb->failed = 1;
        return 0;
    }
    arith_facts(facts);
    for (int i = n - 1; i > 0; i--) {
        int j = wrng_below(r, i + 1);
        arith_fact t = facts[i];
        facts[i] = facts[j], facts[j] = t;
    }
    mofo_strbuf t = {0};
    for (int i = 0; i < n; i++) {
        int k = wrng_below(r, N_SAY), k2 = (k + 1 + wrng_below(r, N_SAY - 1)) % N_SAY;
        for (int j = 0; j < 2; j++) {
            t.len = 0;
            fill_fact(&t, SAY[facts[i].kind][j ? k2 : k], &facts[i]);
            text_line(sb, &t);
        }
    }
    if (t.failed) sb->failed = 1;
    mofo_sb_free(&t);
    free(facts);
    return 2L * n;
}

int mofo_world_render(const mofo_world *w, mofo_world_file f, mofo_strbuf *sb, long *n_lines, mofo_err *err) {
    return mofo_world_render_kinds(w, f, ~0u, sb, n_lines, err);
}

int mofo_world_render_kinds(const mofo_world *w, mofo_world_file f, unsigned kinds, mofo_strbuf *sb, long *n_lines,
                            mofo_err *err) {
    if ((int)f < 0 || f >= MOFO_WORLD_N_FILES) return mofo_errf(err, MOFO_EINVAL, "no world file %d", (int)f);
    wrng r = wrng_for(w->o.seed, STREAM_FILE, (uint64_t)f);
    long lines = 0;
    mofo_strbuf t = {0};
    char val[64], num[32];
    for (int i = 0; f <= MOFO_WF_KNOW_MC && i < w->n_people; i++) {
        const mofo_person *p = &w->people[i];
        switch (f) {
        case MOFO_WF_PEOPLE:
            json_field(sb, "name", p->name, strlen(p->name), 1);
            for (int a = 0; a < MOFO_N_ATTR; a++) {
                mofo_world_attr_text(p, a, val, sizeof val);
                if (!ATTRS[a].values) {
                    mofo_sb_printf(sb, ", \"%s\": %s", ATTRS[a].name, val);
                } else {
                    json_field(sb, ATTRS[a].name, val, strlen(val), 0);
                }
            }
            mofo_sb_puts(sb, "}\n");
            lines++;
            break;
        case MOFO_WF_BIOS:
            for (int k = 0; k < MOFO_WORLD_BIOS_PER_PERSON; k++, lines++) {
                t.len = 0;
                biography(&t, p, &r, 0, N_TRAIN_T);
                text_line(sb, &t);
            }
            break;
        case MOFO_WF_HELDOUT:
            t.len = 0;
            biography(&t, p, &r, N_TRAIN_T, N_T);
            text_line(sb, &t);
            lines++;
            break;
        case MOFO_WF_QA:
            for (int a = 0; a < MOFO_N_ATTR; a++)
                for (int k = 0; k < N_TRAIN_Q; k++, lines++) {
                    t.len = 0;
                    mofo_sb_puts(&t, "Question: ");
                    fill(&t, ATTRS[a].question[k], p, a);
                    mofo_sb_puts(&t, "\nAnswer: ");
                    mofo_world_attr_text(p, a, val, sizeof val);
                    mofo_sb_puts(&t, val);
                    mofo_sb_puts(&t, "\n"); /* where an answer ends: packing masks the next document's first token */
                    text_line(sb, &t);
                }
            break;
        case MOFO_WF_KNOW_GEN:
            for (int a = 0; a < MOFO_N_ATTR; a++) {
                if (ATTRS[a].values) continue;
                t.len = 0;
                mofo_sb_puts(&t, "Question: ");
                fill(&t, ATTRS[a].question[N_TRAIN_Q], p, a);
                mofo_sb_puts(&t, "\nAnswer:");
                snprintf(num, sizeof num, "%d", p->attr[a]);
                if (!t.failed) prompt_line(sb, t.data, t.len, num);
                lines++;
            }
            break;
        case MOFO_WF_KNOW_MC:
            for (int a = 0; a < MOFO_N_ATTR; a++) {
                if (!ATTRS[a].values) continue;
                /* gold and three distinct distractors, in a random order */
                int n = ATTRS[a].n_values, pick[4];
                pick[0] = p->attr[a];
                for (int c = 1; c < 4; c++) {
                    int v, again;
                    do {
                        v = wrng_below(&r, n), again = 0;
                        for (int d = 0; d < c; d++) again |= pick[d] == v;
                    } while (again);
                    pick[c] = v;
                }
                for (int c = 3; c > 0; c--) {
                    int j = wrng_below(&r, c + 1), tmp = pick[c];
                    pick[c] = pick[j], pick[j] = tmp;
                }
                int gold = 0;
                for (int c = 0; c < 4; c++)
                    if (pick[c] == p->attr[a]) gold = c;
                t.len = 0;
                mofo_sb_puts(&t, "Question: ");
                fill(&t, ATTRS[a].question[N_TRAIN_Q], p, a);
                mofo_sb_puts(&t, "\nAnswer: ");
                json_field(sb, "context", t.data ? t.data : "", t.len, 1);
                mofo_sb_puts(sb, ", \"choices\": [");
                for (int c = 0; c < 4; c++) {
                    const char *v = ATTRS[a].values[pick[c]];
                    if (c) mofo_sb_puts(sb, ", ");
                    mofo_sb_json_string(sb, v, strlen(v));
                }
                mofo_sb_printf(sb, "], \"gold\": %d}\n", gold);
                lines++;
            }
            break;
        default: break;
        }
    }
    if (f >= MOFO_WF_MATH_TRAIN) {
        int from = 0, n = w->n_train; /* the problems are train, val, test, pretrain in that order */
        if (f >= MOFO_WF_MATH_VAL) from += n, n = w->n_val;
        if (f >= MOFO_WF_MATH_TEST) from += n, n = w->n_test;
        if (f >= MOFO_WF_MATH_PRETRAIN) from += n, n = w->n_pretrain;
        for (int i = from; i < from + n; i++) {
            const mofo_problem *pr = &w->problems[i];
            if (!(kinds >> pr->kind & 1)) continue;
            lines++;
            if (f == MOFO_WF_MATH_PRETRAIN) { /* plain text, in the knowledge questions' format */
                t.len = 0;
                mofo_sb_printf(&t, "Question: %s\nAnswer: %s", pr->query, pr->response);
                text_line(sb, &t);
            } else if (f == MOFO_WF_MATH_TRAIN) {
                json_field(sb, "query", pr->query, strlen(pr->query), 1);
                json_field(sb, "response", pr->response, strlen(pr->response), 0);
                mofo_sb_puts(sb, "}\n");
            } else {
                snprintf(num, sizeof num, "%ld", pr->answer);
                prompt_line(sb, pr->query, strlen(pr->query), num);
            }
        }
    }
    if (f == MOFO_WF_MATH_PRETRAIN && w->n_pretrain > 0) lines += arithmetic_tables(sb) + arithmetic_text(sb, &r);
    int failed = t.failed || sb->failed;
    mofo_sb_free(&t);
    if (failed) return mofo_errf(err, MOFO_ENOMEM, "out of memory writing %s", FILE_NAME[f]);
    if (n_lines) *n_lines = lines;
    return 0;
}

/* mkdir -p */
static int make_dirs(const char *dir, mofo_err *err) {
    size_t n = strlen(dir);
    char *p = malloc(n + 1);
    if (!p) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char c = p[i];
        p[i] = 0;
        struct stat st;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            int rc = mofo_errf(err, MOFO_EIO, "cannot create folder %s: %s", p, strerror(e));
            free(p);
            return rc;
        }
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
            int rc = mofo_errf(err, MOFO_EIO, "cannot create folder %s: %s", p,
                               stat(p, &st) != 0 ? strerror(errno) : "a file of that name exists");
            free(p);
            return rc;
        }
        p[i] = c;
    }
    free(p);
    return 0;
}

int mofo_world_write(const mofo_world *w, const char *dir, long n_lines[MOFO_WORLD_N_FILES], mofo_err *err) {
    int rc = make_dirs(dir, err);
    if (rc) return rc;
    for (int f = 0; f < MOFO_WORLD_N_FILES; f++) {
        mofo_strbuf sb = {0};
        long lines = 0;
        rc = mofo_world_render(w, (mofo_world_file)f, &sb, &lines, err);
        size_t plen = strlen(dir) + strlen(FILE_NAME[f]) + 2;
        char *path = rc ? NULL : malloc(plen);
        if (!rc && !path) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
        if (!rc) {
            snprintf(path, plen, "%s/%s", dir, FILE_NAME[f]);
            rc = mofo_write_file_atomic(path, sb.data, sb.len, err);
        }
        free(path);
        mofo_sb_free(&sb);
        if (rc) return rc;
        if (n_lines) n_lines[f] = lines;
    }
    mofo_strbuf sb = {0};
    mofo_world_opts_json(&w->o, &sb);
    char *path = malloc(strlen(dir) + 16);
    rc = !path || sb.failed ? mofo_errf(err, MOFO_ENOMEM, "out of memory") : 0;
    if (!rc) {
        sprintf(path, "%s/world.json", dir);
        rc = mofo_write_file_atomic(path, sb.data, sb.len, err);
    }
    free(path);
    mofo_sb_free(&sb);
    return rc;
}

void mofo_world_opts_json(const mofo_world_opts *o, mofo_strbuf *sb) {
    mofo_sb_printf(sb, "{\"seed\": %llu, \"people\": %d, \"problems\": %d, \"val\": %d, \"test\": %d, \"pretrain\": %d}\n",
                   (unsigned long long)o->seed, o->n_people, o->n_problems, o->n_val, o->n_test, o->n_pretrain);
}

int mofo_world_opts_read(const char *path, mofo_world_opts *o, mofo_err *err) {
    char *text = NULL;
    size_t len = 0;
    int rc = mofo_read_file(path, &text, &len, err);
    if (rc) return rc;
    mofo_json_doc *doc = mofo_json_parse(text, len, err);
    free(text);
    if (!doc) return mofo_err_prefix(err, "%s", path);
    static const char *const KEYS[] = {"seed", "people", "problems", "val", "test", "pretrain"};
    int64_t v[6];
    const mofo_json *root = mofo_json_root(doc);
    for (int i = 0; i < 6 && !rc; i++)
        if (!mofo_json_int64(mofo_json_get(root, KEYS[i]), &v[i]) || v[i] < 0 || v[i] > 1000000000)
            rc = mofo_errf(err, MOFO_EFORMAT, "%s: \"%s\" is missing or not an integer >= 0", path, KEYS[i]);
    mofo_json_free(doc);
    if (rc) return rc;
    mofo_world_opts_default(o);
    o->seed = (uint64_t)v[0], o->n_people = (int)v[1], o->n_problems = (int)v[2];
    o->n_val = (int)v[3], o->n_test = (int)v[4], o->n_pretrain = (int)v[5];
    return 0;
}

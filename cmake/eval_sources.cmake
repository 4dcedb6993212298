# Evaluation: KV-cache inference and generation (model/), eval tasks (eval/).
set(MOFO_EVAL_SOURCES
  src/model/infer.c
  src/eval/eval.c
)

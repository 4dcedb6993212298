# Evaluation: KV-cache inference and generation (model/), eval tasks and LoRA merging (eval/).
set(MOFO_EVAL_SOURCES
  src/model/infer.c
  src/eval/eval.c
  src/eval/adapter.c
)

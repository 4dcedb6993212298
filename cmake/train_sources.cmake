# train/: the fine-tuning loop, methods (MoFO, AdamW, L1/L2, HFT), schedules, checkpoints, weight diffs
set(MOFO_TRAIN_SOURCES
  src/train/methods.c
  src/train/method.c
  src/train/method/mofo.c
  src/train/method/adamw.c
  src/train/method/pull.c
  src/train/method/hft.c
  src/train/method/lora.c
  src/train/trainer.c
  src/train/lora.c
)

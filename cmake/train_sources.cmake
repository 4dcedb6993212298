# train/: the fine-tuning loop, methods (MoFO, AdamW, L1/L2, HFT), schedules, checkpoints, weight diffs
set(MOFO_TRAIN_SOURCES
  src/train/methods.c
  src/train/trainer.c
  src/train/lora.c
)

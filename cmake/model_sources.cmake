# The engine's model layer and the checkpoint format it reads and writes.
set(MOFO_MODEL_SOURCES
  src/io/checkpoint.c
  src/model/config.c
  src/model/family.c
  src/model/block.c
  src/model/model.c
  src/model/train_step.c
)

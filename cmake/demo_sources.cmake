# The synthetic world of `mofo demo`: people, biographies, questions and word problems from a seed.
set(MOFO_DEMO_SOURCES
  src/demo/world.c
  src/demo/byte_tokenizer.c
  src/demo/demo.c
  src/demo/report.c
  src/demo/matched.c
)

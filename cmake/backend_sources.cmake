# The operations boundary (src/backend/backend.h) and its CPU backend: OpenMP loops and OpenBLAS.
set(MOFO_BACKEND_SOURCES
  src/backend/blas.c
  src/backend/cpu_layers.c
  src/backend/cpu.c
)

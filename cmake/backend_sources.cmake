# The operations boundary (src/backend/backend.h): its CPU backend (OpenMP loops and OpenBLAS) and,
# where nvcc was found, its CUDA backend (kernels and cuBLAS; else a stub that refuses device cuda).
set(MOFO_BACKEND_CPU_SOURCES
  src/backend/backend.c
  src/backend/blas.c
  src/backend/cpu_layers.c
  src/backend/cpu.c
)
if(MOFO_HAVE_CUDA)
  set(MOFO_BACKEND_CUDA_SOURCES src/backend/cuda/cuda.cu src/backend/cuda/layers.cu)
else()
  set(MOFO_BACKEND_CUDA_SOURCES src/backend/cuda_stub.c)
endif()
set(MOFO_BACKEND_SOURCES ${MOFO_BACKEND_CPU_SOURCES} ${MOFO_BACKEND_CUDA_SOURCES})

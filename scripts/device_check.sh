#!/usr/bin/env bash
# The CUDA backend's check on a lent GPU machine (H100/H200), in one call of at most ~9.5 minutes:
#   run(command="bash scripts/device_check.sh", timeout_s=590)
# Builds libmofo alone (-DMOFO_LIBRARY_ONLY=ON: no engine dependencies; Release, CUDA ON, warnings as
# errors), then, most important first, each step with its own time limit inside one budget:
#   test_optim_cuda (the CUDA step against the CPU step; a skip is a failure here),
#   the benchmark and torch's fused AdamW (and the authors' topk MoFO) on GPT-2 124M fp32,
#   mofo.torch's CUDA path (python/tests/test_torch_cuda.py; a skip is a failure here) and
#   `python3 -m mofo.bench --device cuda` (torch's fused AdamW, topk MoFO, mofo.torch.MoFO),
#   compute-sanitizer memcheck on test_optim_cuda with MOFO_CUDA_TEST_QUICK=1,
#   the benchmark on 1.1B and 1.5B fp32 and on all three in bf16, torch on the same,
#   compute-sanitizer racecheck.
# Every step runs even when one before it fails; the summary gets each step's exit code and time as
# it finishes, so a call cut short still returns what ran. Files under $OUT (at most 8): summary.txt,
# build.log, test.log, memcheck.log, racecheck.log, bench.jsonl, torch.jsonl, nvidia-smi.txt.
# (test_optim_cudasim, the same test on the CPU simulation of the kernels, is left to CI.)
cd "$(dirname "$0")/.."
source scripts/device_steps.sh # note, step, $OUT, $summary
export OMP_NUM_THREADS=16 # the CPU reference of test_optim_cuda

build=build-device
step configure 90 "$OUT/build.log" cmake -S . -B $build -DCMAKE_BUILD_TYPE=Release -DMOFO_WERROR=ON -DMOFO_CUDA=ON \
    -DMOFO_LIBRARY_ONLY=ON
step build 240 "$OUT/build.log" cmake --build $build -j16 --target test_optim_cuda test_optim_nodev mofo_bench_optim_cuda \
    mofo_shared
tail -5 "$OUT/build.log" >>"$summary"
test_bin=./$build/tests/test_optim_cuda
bench=./$build/mofo_bench_optim_cuda

step test_optim_cuda 150 "$OUT/test.log" $test_bin
step test_optim_nodev 30 "$OUT/test.log" ./$build/tests/test_optim_nodev
if grep -q "skipped: no CUDA device" "$OUT/test.log"; then note "FAIL: test_optim_cuda skipped on the GPU machine"; fi
grep -E "passed, [0-9]+ failed" "$OUT/test.log" | tee -a "$summary"
grep -m 20 "check failed" "$OUT/test.log" >>"$summary"

step "bench 124M fp32" 60 "$OUT/bench.jsonl" $bench --params 124M --dtype fp32 --json
step "torch 124M fp32 + mofo" 60 "$OUT/torch.jsonl" python3 bench/torch_adamw.py --json --params 124M --dtype fp32 --mofo

# mofo.torch on the GPU (its output joins test.log; the bench rows torch.jsonl)
step "mofo.torch cuda tests" 90 "$OUT/test.log" env PYTHONPATH=python:python/tests MOFO_LIBRARY=$build/libmofo.so \
    python3 -m unittest -v test_torch_cuda
if grep -q "skipped 'no CUDA device" "$OUT/test.log"; then note "FAIL: test_torch_cuda skipped on the GPU machine"; fi
step "mofo.bench cuda" 90 "$OUT/torch.jsonl" env PYTHONPATH=python MOFO_LIBRARY=$build/libmofo.so \
    python3 -m mofo.bench --device cuda --json --steps 10 --topk-steps 5

san=compute-sanitizer
command -v $san >/dev/null || san=/usr/local/cuda/bin/compute-sanitizer
step memcheck 120 "$OUT/memcheck.log" env MOFO_CUDA_TEST_QUICK=1 $san --tool memcheck --leak-check full --error-exitcode 1 $test_bin
tail -3 "$OUT/memcheck.log" >>"$summary"

for run in "1.1B fp32" "1.5B fp32" "124M bf16" "1.1B bf16" "1.5B bf16"; do
    set -- $run
    step "bench $1 $2" 60 "$OUT/bench.jsonl" $bench --params $1 --dtype $2 --json
done
step "torch 1.1B 1.5B fp32" 90 "$OUT/torch.jsonl" python3 bench/torch_adamw.py --json --params 1.1B 1.5B --dtype fp32
step "torch bf16" 90 "$OUT/torch.jsonl" python3 bench/torch_adamw.py --json --dtype bf16

step racecheck 120 "$OUT/racecheck.log" env MOFO_CUDA_TEST_QUICK=1 $san --tool racecheck --error-exitcode 1 $test_bin
tail -3 "$OUT/racecheck.log" >>"$summary"

note "--- bench"
cat "$OUT/bench.jsonl" >>"$summary"
note "--- torch"
cat "$OUT/torch.jsonl" >>"$summary"
note "total $(($(date +%s) - start))s"

#!/usr/bin/env bash
# The engine's CUDA backend on a lent GPU machine (H100/H200), in one call of at most ~9.5 minutes:
#   run(command="bash scripts/device_check_engine.sh", timeout_s=590)
# (scripts/device_check.sh is libmofo's optimizer alone.) Builds the engine (Release, CUDA ON,
# warnings as errors; it needs OpenBLAS and PCRE2 there, which the summary reports when missing),
# then, most important first, each step with its own limit inside one budget:
#   test_ops (every operation of the CUDA backend against the CPU backend and finite differences),
#   test_trainer_device (every method trained on the GPU against the CPU; a skip is a failure here),
#   cli_ppl_cuda, cli_bench_train_cuda, test_finetune (--device cuda trains),
#   compute-sanitizer memcheck and racecheck on a 3-step `mofo finetune --device cuda` of llama-tiny,
#   `mofo bench train --device cuda`: GPT-2 124M at B16 T1024 with AdamW and MoFO, the TinyLlama-1.1B
#   shape at B4 T1024 with MoFO, all with bf16 products (--precision bf16, the issue's setting), and
#   GPT-2 MoFO once more in fp32,
#   bench/torch_train.py on the same shapes: eager and torch.compile, fused AdamW and the topk MoFO.
# Every step runs even when one before it fails; the summary gets each step's exit code and time as
# it finishes. Files under $OUT: summary.txt, build.log, test.log, sanitizer.log, bench.jsonl,
# torch.jsonl, nvidia-smi.txt.
cd "$(dirname "$0")/.."
source scripts/device_steps.sh # note, step, $OUT, $summary
for pc in openblas libpcre2-8; do pkg-config --exists $pc || note "MISSING: pkg-config $pc (the engine needs it)"; done
export OMP_NUM_THREADS=16

build=build-engine-device
step configure 90 "$OUT/build.log" cmake -S . -B $build -DCMAKE_BUILD_TYPE=Release -DMOFO_WERROR=ON -DMOFO_CUDA=ON
step build 300 "$OUT/build.log" cmake --build $build -j16 --target mofo test_ops test_trainer_device test_finetune
tail -5 "$OUT/build.log" >>"$summary"
mofo=./$build/mofo

step test_ops 60 "$OUT/test.log" ./$build/tests/test_ops
step test_trainer_device 120 "$OUT/test.log" ./$build/tests/test_trainer_device
if grep -q "skipped: no CUDA device" "$OUT/test.log"; then note "FAIL: a test skipped on the GPU machine"; fi
step "ctest cuda cli + finetune" 120 "$OUT/test.log" ctest --test-dir $build -R "cli_ppl_cuda|cli_bench_train_cuda|test_finetune" \
    --output-on-failure
grep -E "passed, [0-9]+ failed|check failed|tests passed" "$OUT/test.log" | head -20 >>"$summary"

data=$OUT/tokens.jsonl
python3 -c "
import random; random.seed(0)
for _ in range(16): print('{\"input_ids\": [%s]}' % ', '.join(str(random.randrange(1, 250)) for _ in range(32)))" >"$data"
san=compute-sanitizer
command -v $san >/dev/null || san=/usr/local/cuda/bin/compute-sanitizer
for tool in memcheck racecheck; do
    step "$tool finetune" 90 "$OUT/sanitizer.log" $san --tool $tool --error-exitcode 1 $mofo finetune \
        --model tests/fixtures/llama-tiny --data "$data" --out "$OUT/ft-$tool" --steps 3 --batch 2 --seq-len 32 \
        --device cuda --quiet
    rm -rf "$OUT/ft-$tool"
done
tail -4 "$OUT/sanitizer.log" >>"$summary"
rm -f "$data"

for run in "gpt2 124M 16 adamw bf16" "gpt2 124M 16 mofo bf16" "llama 1.1B 4 mofo bf16" "gpt2 124M 16 mofo fp32"; do
    set -- $run
    step "bench $1 $4 B$3 T1024 $5" 90 "$OUT/bench.jsonl" $mofo bench train --device cuda --arch $1 --size $2 \
        --batch $3 --seq 1024 --method $4 --precision $5 --threads 1 --steps 5 --warmup 5 --json
done
for run in "gpt2 adamw" "gpt2 adamw --compile" "gpt2 topk-mofo" "llama adamw" "llama topk-mofo"; do
    set -- $run
    step "torch $*" 120 "$OUT/torch.jsonl" python3 bench/torch_train.py --model $1 --optimizer $2 ${3:-} --json
done

note "--- bench"
cat "$OUT/bench.jsonl" >>"$summary"
note "--- torch"
cat "$OUT/torch.jsonl" >>"$summary"
note "total $(($(date +%s) - start))s"

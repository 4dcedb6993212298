#!/usr/bin/env bash
# Rebuilds the base model that `mofo demo` starts from (models/demo-base) with the documented seed:
# the world of seed 1 (128 people with 8 facts each, the arithmetic facts of the task stated in
# sentences and tables, 500 word problems as text), then `mofo pretrain` of the llama-demo preset
# (0.9M parameters, byte-level tokenizer) in two stages: 24 epochs on its biographies (once per
# epoch), its knowledge questions (twice) and its arithmetic text (once), lr 3e-3 cosine; then 16
# epochs of the same with the arithmetic text twice, lr 1e-3 cosine (`mofo finetune --pack`, AdamW on
# every parameter: pre-training continued). The shipped base knows 92.8% of its 512 exact-match and
# 99.6% of its 512 multiple-choice items (held-out phrasings).
# Deterministic for a given thread count and OpenBLAS core: the shipped model was made with
# THREADS=2 and OPENBLAS_CORETYPE=Haswell (the defaults here; Haswell's kernels run on every x86-64
# CPU with AVX2, so the bytes can be checked on any of them).
#   usage: scripts/make-demo-base.sh [OUT_DIR] [MOFO_BINARY]
set -euo pipefail
OUT=${1:-models/demo-base}
MOFO=${2:-build/mofo}
THREADS=${THREADS:-2}
LR=${LR:-3e-3}
EPOCHS=${EPOCHS:-24}
EPOCHS2=${EPOCHS2:-16}
WORK=${WORK:-$(mktemp -d)}
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}

"$MOFO" world --out "$WORK/world" --seed 1 --people 128 --problems 2000 --val 100 --test 200 --pretrain 500
w="$WORK/world"
cat "$w/knowledge_bios.jsonl" "$w/knowledge_qa.jsonl" "$w/knowledge_qa.jsonl" "$w/math_pretrain.jsonl" > "$WORK/corpus.jsonl"
"$MOFO" pretrain --config llama-demo --tokenizer byte --data "$WORK/corpus.jsonl" --out "$WORK/model" \
  --seed 1 --epochs "$EPOCHS" --pack --seq-len 256 --batch 16 --lr "$LR" --lr-schedule cosine --warmup 0.02 ${EXTRA:-} \
  --threads "$THREADS"
cat "$w/knowledge_bios.jsonl" "$w/knowledge_qa.jsonl" "$w/knowledge_qa.jsonl" "$w/math_pretrain.jsonl" \
  "$w/math_pretrain.jsonl" > "$WORK/corpus2.jsonl"
"$MOFO" finetune --model "$WORK/model" --data "$WORK/corpus2.jsonl" --out "$WORK/stage2" --method adamw --pack \
  --seq-len 256 --batch 16 --epochs "$EPOCHS2" --lr 1e-3 --lr-schedule cosine --warmup 0.02 --seed 2 --threads "$THREADS"
mkdir -p "$OUT"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json; do cp "$WORK/stage2/$f" "$OUT/$f"; done
cp "$WORK/world/world.json" "$OUT/world.json"
echo "base written to $OUT (the world and the training run stay in $WORK)"

#!/usr/bin/env bash
# Rebuilds the base model that `mofo demo` starts from (models/demo-base) with the documented seed:
# the world of seed 1 (32 people, 500 pre-training word problems and the arithmetic tables), then `mofo pretrain` of the
# llama-demo preset (0.9M parameters, byte-level tokenizer) on its biographies and knowledge
# questions (twice per epoch) and its plain-text word problems and arithmetic tables (once). Deterministic for a given
# thread count: the shipped model was made with THREADS=1 (the default here).
#   usage: scripts/make-demo-base.sh [OUT_DIR] [MOFO_BINARY]
set -euo pipefail
OUT=${1:-models/demo-base}
MOFO=${2:-build/mofo}
THREADS=${THREADS:-1}
LR=${LR:-3e-3}
WORK=${WORK:-$(mktemp -d)}

"$MOFO" world --out "$WORK/world" --seed 1 --people 32 --problems 2000 --val 50 --test 200 --pretrain 500
k="$WORK/world/knowledge_bios.jsonl $WORK/world/knowledge_qa.jsonl"
cat $k $k "$WORK/world/math_pretrain.jsonl" > "$WORK/corpus.jsonl"
"$MOFO" pretrain --config llama-demo --tokenizer byte --data "$WORK/corpus.jsonl" --out "$WORK/model" \
  --seed 1 --epochs 50 --pack --seq-len 256 --batch 16 --lr "$LR" --lr-schedule cosine --warmup 0.02 ${EXTRA:-} \
  --threads "$THREADS"
mkdir -p "$OUT"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json; do cp "$WORK/model/$f" "$OUT/$f"; done
cp "$WORK/world/world.json" "$OUT/world.json"
echo "base written to $OUT (the world and the training run stay in $WORK)"

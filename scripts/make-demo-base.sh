#!/usr/bin/env bash
# Rebuilds the base model that `mofo demo` starts from (models/demo-base) with the documented seed:
# the world of seed 1 (64 people, 1000 pre-training word problems), then `mofo pretrain` of the
# llama-demo preset (0.9M parameters, byte-level tokenizer) on its biographies, knowledge questions
# and plain-text word problems. Deterministic for a given thread count: the shipped model was made
# with --threads 2 (THREADS below); the run takes about 20 minutes on 2 cores.
#   usage: scripts/make-demo-base.sh [OUT_DIR] [MOFO_BINARY]
set -euo pipefail
OUT=${1:-models/demo-base}
MOFO=${2:-build/mofo}
THREADS=${THREADS:-2}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$MOFO" world --out "$WORK/world" --seed 1 --people 64 --problems 2000 --val 50 --test 200 --pretrain 1000
cat "$WORK/world/knowledge_bios.jsonl" "$WORK/world/knowledge_qa.jsonl" "$WORK/world/math_pretrain.jsonl" \
  > "$WORK/corpus.jsonl"
"$MOFO" pretrain --config llama-demo --tokenizer byte --data "$WORK/corpus.jsonl" --out "$WORK/model" \
  --seed 1 --epochs 40 --pack --seq-len 256 --batch 16 --lr 3e-3 --lr-schedule cosine --warmup 0.02 \
  --threads "$THREADS"
mkdir -p "$OUT"
for f in config.json model.safetensors tokenizer.json tokenizer_config.json; do cp "$WORK/model/$f" "$OUT/$f"; done
cp "$WORK/world/world.json" "$OUT/world.json"
echo "base written to $OUT"

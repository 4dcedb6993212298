#!/usr/bin/env bash
# Crash safety, shown: `mofo finetune` with a checkpoint every 2 steps is killed with SIGKILL at
# random moments (seeded; on average the delays span the whole run, and a kill that leaves a
# temporary checkpoint directory behind landed inside a checkpoint write), then resumed from its newest checkpoint, again and again until it finishes. The final
# model, the last checkpoint's optimizer state and metrics.jsonl must equal the uninterrupted run's
# byte for byte, and every checkpoint-STEP directory a kill leaves must be complete: --resume accepts
# it (the trainer refuses an incomplete one) and it holds every file.
#   usage: tests/crash_check.sh MOFO_BIN FIXTURES [KILLS]
set -euo pipefail
mofo=$1 fixtures=$2 kills=${3:-24}
tmp=$(mktemp -d)
trap 'umount "$tmp/disk" 2>/dev/null || true; rm -rf "$tmp"' EXIT
# 64 rows of 24 ids below gpt2-tiny's vocabulary of 211, drawn by a fixed LCG
awk 'BEGIN { s = 7; for (r = 0; r < 64; r++) { printf "{\"input_ids\": ["; for (t = 0; t < 24; t++) {
  s = (s * 1103515245 + 12345) % 2147483648; printf "%s%d", t ? ", " : "", int(s / 65536) % 211 } print "]}" } }' \
  > "$tmp/data.jsonl"
base=(--model "$fixtures/gpt2-tiny" --data "$tmp/data.jsonl" --batch 2 --seq-len 16 --save-every 2 --lr 1e-3
      --method mofo --seed 3 --threads 1 --quiet)
flags=("${base[@]}" --steps 200)
"$mofo" finetune "${flags[@]}" --out "$tmp/ref" >/dev/null
start=$(date +%s%N)
"$mofo" finetune "${flags[@]}" --out "$tmp/timing" >/dev/null
run_ms=$(( ($(date +%s%N) - start) / 1000000 ))
fail=0 killed=0 in_write=0 rng=12345
newest() { # the checkpoint-STEP of the highest STEP (temporary .tmp/.old names left out)
  local best= n=-1 d s
  for d in "$1"/checkpoint-*; do
    s=${d##*/checkpoint-}
    [[ $s =~ ^[0-9]+$ ]] && ((s > n)) && n=$s best=$d
  done
  echo "$best"
}
for ((i = 0; i < kills; i++)); do
  rng=$(( (rng * 1103515245 + 12345) % 2147483648 ))
  delay_ms=$(( rng / 65536 % (2 * run_ms / kills + 1) )) # on average the kills span the run
  ck=$(newest "$tmp/run")
  "$mofo" finetune "${flags[@]}" --out "$tmp/run" ${ck:+--resume "$ck"} >/dev/null 2>"$tmp/err" &
  pid=$!
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  if kill -9 "$pid" 2>/dev/null; then killed=$((killed + 1)); fi
  wait "$pid" 2>/dev/null || true
  compgen -G "$tmp/run/.checkpoint-*.tmp*" >/dev/null && in_write=$((in_write + 1))
  for d in "$tmp"/run/checkpoint-*; do
    [ -d "$d" ] || continue
    case "$d" in *.tmp* | *.old) continue ;; esac
    for f in config.json model.safetensors optimizer.safetensors trainer_state.json; do
      [ -s "$d/$f" ] || { echo "kill $i (after $delay_ms ms): $d lacks $f"; fail=1; }
    done
  done
done
ck=$(newest "$tmp/run")
"$mofo" finetune "${flags[@]}" --out "$tmp/run" ${ck:+--resume "$ck"} >/dev/null 2>"$tmp/err" ||
  { echo "the last resume (from ${ck:-nothing}) failed: $(cat "$tmp/err")"; fail=1; }
for f in model.safetensors metrics.jsonl checkpoint-200/optimizer.safetensors checkpoint-200/model.safetensors; do
  cmp -s "$tmp/ref/$f" "$tmp/run/$f" || { echo "$f differs from the uninterrupted run"; fail=1; }
done
# A full disk during a save: a tmpfs that holds the first checkpoint and not the second. The run must
# fail naming the file, leave checkpoint-2 as the uninterrupted run wrote it and no temporary files.
disk=skipped
"$mofo" finetune "${base[@]}" --steps 4 --out "$tmp/ref4" >/dev/null
if mkdir -p "$tmp/disk" && ck_kb=$(du -sk "$tmp/ref4/checkpoint-2" | cut -f1) &&
   mount -t tmpfs -o size=$((ck_kb * 3 / 2))k tmpfs "$tmp/disk" 2>/dev/null; then
  st=0
  "$mofo" finetune "${base[@]}" --steps 4 --out "$tmp/disk/out" >/dev/null 2>"$tmp/err" || st=$?
  msg=$(cat "$tmp/err")
  [ $st != 0 ] || { echo "full disk: exit status 0"; fail=1; }
  [[ $msg == *"$tmp/disk/out/"*"No space left on device"* ]] || { echo "full disk: message '$msg'"; fail=1; }
  for f in model.safetensors optimizer.safetensors; do
    cmp -s "$tmp/ref4/checkpoint-2/$f" "$tmp/disk/out/checkpoint-2/$f" || { echo "full disk: checkpoint-2/$f damaged"; fail=1; }
  done
  left=$(find "$tmp/disk/out" -name '*.tmp*' | head -3)
  [ -z "$left" ] || { echo "full disk: left behind: $left"; fail=1; }
  disk="a ${ck_kb}k-checkpoint run on a $((ck_kb * 3 / 2))k tmpfs: exit $st, '$(echo "$msg" | head -1 | cut -c1-120)...', checkpoint-2 intact"
  umount "$tmp/disk"
else
  disk="skipped: no tmpfs can be mounted here (test_finetune injects the write failure instead)"
fi
echo "full disk: $disk"
echo "$killed of $kills runs killed with SIGKILL ($in_write inside a checkpoint write; delays up to $((2 * run_ms / kills)) ms of" \
  "a $run_ms ms run), each resumed from its newest checkpoint: the same bytes as the uninterrupted run"
[ "$killed" -ge $((kills / 2)) ] || { echo "too few kills landed ($killed): the check proved little"; fail=1; }
if [ $fail = 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; exit 1; fi

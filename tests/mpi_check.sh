#!/usr/bin/env bash
# mpirun mofo finetune on gpt2-tiny: 2 processes against 1 on the same global batches of 5 rows
# (split 3 + 2).
#   - SGD-momentum, whose update is linear in the gradient: the 2-process model's update differs from
#     the 1-process one by ||w2 - w1|| / ||w1 - w0|| <= 2.4e-5. Where it can differ: each weight
#     gradient is a sum over the batch's rows, which 2 processes add as two partial sums and an
#     all-reduce (fp32, another order); measured 2.4e-6 after 8 steps, the tolerance 10x that. (Adam
#     amplifies such rounding where a gradient is near 0, m/sqrt(v) ~ its sign; MoFO may move another
#     entry where two |m| are that close, so neither gives a clean bound.)
#   - the per-step losses agree to 1e-6 relative (measured: to the 9 printed digits of 5.47510815);
#   - MoFO: every step's updated_frac and coverage (the exact counts of moved entries) are equal;
#   - the same 2 processes twice give bit-identical models; an interrupt (SIGINT on both) checkpoints
#     and a 2-process resume ends bit-identical to the uninterrupted run; a 1-process checkpoint
#     resumes with 2 processes and a 2-process one with 1, each ending within the tolerance above;
#   - each process's optimizer part (ZeRO stage 1, saved from its allocated m and v) is at most 0.65 of
#     the 1-process state; metrics.jsonl says world_size 2; a bad batch names the rank.
#   usage: tests/mpi_check.sh MOFO_BIN FIXTURES
set -euo pipefail
mofo=$1 fixtures=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
run2() { mpirun -np 2 --oversubscribe --allow-run-as-root ${MOFO_TEST_SIGINT_AT_STEP:+-x MOFO_TEST_SIGINT_AT_STEP} "$mofo" "$@"; }
awk 'BEGIN { s = 7; for (r = 0; r < 64; r++) { printf "{\"input_ids\": ["; for (t = 0; t < 24; t++) {
  s = (s * 1103515245 + 12345) % 2147483648; printf "%s%d", t ? ", " : "", int(s / 65536) % 211 } print "]}" } }' > data.jsonl
base=(--model "$fixtures/gpt2-tiny" --data data.jsonl --batch 5 --seq-len 16 --seed 3 --threads 1 --quiet --steps 8)
sgd=("${base[@]}" --lr 1e-2 --method adamw --optimizer sgdm --save-every 4)
mofo_flags=("${base[@]}" --lr 1e-3 --method mofo --save-every 4)
fail=0 pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "mpi_check: $*" >&2; fail=$((fail + 1)); }
total_l2() { "$mofo" diff --base "$1" --model "$2" --json | grep -o '"total": {[^}]*}' | grep -o '"l2": [0-9.e+-]*' | cut -d' ' -f2; }
# the update's relative difference ||b - a|| / ||a - w0||
rel() { awk -v d="$(total_l2 "$1" "$2")" -v u="$(total_l2 "$fixtures/gpt2-tiny" "$1")" 'BEGIN { printf "%.3g", d / u }'; }
within() { awk -v x="$1" -v t="$2" 'BEGIN { exit !(x <= t) }'; }

"$mofo" finetune "${sgd[@]}" --out s1 >/dev/null
run2 finetune "${sgd[@]}" --out s2 >/dev/null
r=$(rel s1 s2); within "$r" 2.4e-5 && ok || bad "sgdm: 2 processes' update differs by $r (> 2.4e-5)"
paste -d' ' <(grep -o '"loss": [0-9.e+-]*' s1/metrics.jsonl | cut -d' ' -f2) \
            <(grep -o '"loss": [0-9.e+-]*' s2/metrics.jsonl | cut -d' ' -f2) |
  awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-6 * $1) { print "loss " $1 " vs " $2; bad = 1 } } END { exit bad }' \
  && ok || bad "sgdm: losses differ beyond 1e-6"
grep -q '"world_size": 2' s2/metrics.jsonl && ! grep -q '"world_size": 1' s2/metrics.jsonl && ok || bad "world_size not 2"
[ "$(grep -c . s2/metrics.jsonl)" = 8 ] && ok || bad "2 processes wrote $(grep -c . s2/metrics.jsonl) metrics lines, not 8"

"$mofo" finetune "${mofo_flags[@]}" --out m1 >/dev/null
run2 finetune "${mofo_flags[@]}" --out m2 >/dev/null
run2 finetune "${mofo_flags[@]}" --out m2b >/dev/null
counts() { grep -o '"updated_frac": [0-9.e+-]*, "coverage": [0-9.e+-]*' "$1"; }
[ "$(counts m1/metrics.jsonl)" = "$(counts m2/metrics.jsonl)" ] && ok || bad "mofo: moved counts differ between 1 and 2 processes"
cmp -s m2/model.safetensors m2b/model.safetensors && ok || bad "mofo: two 2-process runs differ"

# interrupted at step 3 on both processes, then resumed with 2
MOFO_TEST_SIGINT_AT_STEP=3 run2 finetune "${mofo_flags[@]}" --out i2 >/dev/null 2>&1 || true
[ -f i2/checkpoint-3/optimizer-00001-of-00002.safetensors ] && ok || bad "no checkpoint-3 after the interrupt"
run2 finetune "${mofo_flags[@]}" --out i2 --resume i2/checkpoint-3 >/dev/null
cmp -s i2/model.safetensors m2/model.safetensors && ok || bad "2 -> 2 resume differs from the uninterrupted run"
cmp -s i2/metrics.jsonl m2/metrics.jsonl && ok || bad "2 -> 2 resume: metrics.jsonl differs"

# resume across process counts (sgdm: the tolerance above)
run2 finetune "${sgd[@]}" --out r12 --resume s1/checkpoint-4 >/dev/null
r=$(rel s1 r12); within "$r" 2.4e-5 && ok || bad "1 -> 2 resume: differs by $r"
"$mofo" finetune "${sgd[@]}" --out r21 --resume s2/checkpoint-4 >/dev/null
r=$(rel s1 r21); within "$r" 2.4e-5 && ok || bad "2 -> 1 resume: differs by $r"

# ZeRO stage 1: each process's part of the optimizer state
whole=$(stat -c %s m1/checkpoint-4/optimizer.safetensors)
for r in 0 1; do
  part=$(stat -c %s "m2/checkpoint-4/optimizer-0000$r-of-00002.safetensors")
  awk -v p="$part" -v w="$whole" 'BEGIN { exit !(p <= 0.65 * w) }' && ok || bad "rank $r holds $part of $whole bytes"
  echo "rank $r: optimizer state $part bytes of the whole $whole ($(awk -v p="$part" -v w="$whole" 'BEGIN { printf "%.2f", p / w }'))"
done

# an error on the processes names the rank and fails the job
if out=$(run2 finetune "${mofo_flags[@]}" --batch 1 --out e 2>&1); then bad "batch 1 on 2 processes accepted"
else echo "$out" | grep -q "rank [01] of 2: batch 1: must be at least the 2 processes" && ok || bad "message: $out"; fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]

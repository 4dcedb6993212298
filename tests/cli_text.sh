#!/usr/bin/env bash
# mofo tokenize and mofo data from the command line: outputs, exit codes and messages.
# usage: cli_text.sh MOFO FIXTURES
set -u
MOFO=$1
FIX=$2/tokenizers
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
check() { # name, expected, actual
    if [ "$2" == "$3" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); printf '%s: got\n%s\nwant\n%s\n' "$1" "$3" "$2" >&2; fi
}

check "encode json" '{"ids": [40, 69, 276, 79, 330, 277, 0]}' "$("$MOFO" tokenize --tokenizer "$FIX/gpt2-style.json" --text 'Hello world<|endoftext|>' --json)"
check "encode plain" '318,278,298,339,308,408,417' "$("$MOFO" tokenize --tokenizer "$FIX/sentencepiece-style.json" --text 'Hello world' | head -1)"
check "decode json" '{"text": "tabs\tand\nnewlines\n\n"}' "$("$MOFO" tokenize --tokenizer "$FIX/llama3-style.json" --decode 85,66,67,84,199,276,69,200,79,70,88,77,293,70,84,200,200 --json)"
printf 'Hello world' > "$TMP/in.txt"
check "encode file" '{"ids": [41, 70, 274, 80, 351, 278]}' "$("$MOFO" tokenize --tokenizer "$FIX/llama3-style.json" --file "$TMP/in.txt" --json)"
check "encode stdin" '{"ids": [41, 70, 274, 80, 351, 278]}' "$("$MOFO" tokenize --tokenizer "$FIX/llama3-style.json" --file - --json < "$TMP/in.txt")"

# a model directory: BOS/EOS from tokenizer_config.json, --special adds BOS
mkdir -p "$TMP/model"
cp "$FIX/sentencepiece-style.json" "$TMP/model/tokenizer.json"
echo '{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true}' > "$TMP/model/tokenizer_config.json"
check "special" '{"ids": [1, 381]}' "$("$MOFO" tokenize --model "$TMP/model" --text a --json --special)"
check "no special" '{"ids": [381]}' "$("$MOFO" tokenize --model "$TMP/model" --text a --json)"

# errors: exit status and message
out=$("$MOFO" tokenize --tokenizer "$FIX/gpt2-style.json" --decode 5,99999 2>&1); rc=$?
check "bad id" "1 mofo tokenize: decode: id 99999 at position 1 is outside the vocabulary (size 420)" "$rc $out"
out=$("$MOFO" tokenize --tokenizer "$FIX/gpt2-style.json" 2>&1); rc=$?
check "no input" "2 mofo tokenize: give one of --text, --file or --decode" "$rc $out"
out=$("$MOFO" tokenize --tokenizer "$TMP/none.json" --text a 2>&1); rc=$?
check "missing tokenizer" "1 mofo tokenize: $TMP/none.json: No such file or directory" "$rc $out"

# mofo data: a bad line stops the load with file:line, --skip-bad counts it
printf '{"prompt": "2+2=", "completion": "4"}\n{"prompt": "x"}\n' > "$TMP/d.jsonl"
out=$("$MOFO" data --model "$TMP/model" --data "$TMP/d.jsonl" --template plain 2>&1); rc=$?
check "data error" "1 mofo data: $TMP/d.jsonl:2: missing field \"completion\"" "$rc $out"
out=$("$MOFO" data --model "$TMP/model" --data "$TMP/d.jsonl" --template plain --skip-bad --json --show 1 2>/dev/null); rc=$?
check "data skip-bad" "0 {\"file\": \"$TMP/d.jsonl\", \"format\": \"prompt_completion\", \"template\": \"plain\", \"lines\": 2, \"examples\": 1, \"heldout\": 0, \"tokens\": 8, \"trained_tokens\": 2, \"truncated\": 0, \"no_response\": 0, \"bad_lines\": 1, \"packed_rows\": 0}
{\"example\": 0, \"line\": 1, \"input_ids\": [1, 318, 263, 46, 263, 64, 265, 2], \"labels\": [-100, -100, -100, -100, -100, -100, 265, 2], \"text\": \"<s> 2+2=4</s>\", \"trained_text\": \"4</s>\", \"runs\": [{\"text\": \"<s> 2+2=\", \"trained\": false}, {\"text\": \"4</s>\", \"trained\": true}]}" "$rc $out"
err=$("$MOFO" data --model "$TMP/model" --data "$TMP/d.jsonl" --skip-bad --max-len 5 2>&1 >/dev/null)
check "data report" "mofo data: skipped 1 malformed line(s); the first: $TMP/d.jsonl:2: missing field \"completion\"
mofo data: dropped 1 example(s) with no trained token left after truncation (the first at $TMP/d.jsonl:1)" "$err"

# the model's own chat template (tokenizer_config.json "chat_template") is the default with --model
mkdir -p "$TMP/chat" "$TMP/bad"
cp "$FIX/sentencepiece-style.json" "$TMP/chat/tokenizer.json"
cp "$FIX/sentencepiece-style.json" "$TMP/bad/tokenizer.json"
cat > "$TMP/chat/tokenizer_config.json" <<'EOF'
{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true,
 "chat_template": "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[U] {{ m.content }}\n{% else %}[A] {{ m.content }}{{ eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}[A] {% endif %}"}
EOF
echo '{"eos_token": "</s>", "chat_template": "x\n{% if true %}y"}' > "$TMP/bad/tokenizer_config.json"
printf '{"prompt": "2+2=", "completion": "4"}\n' > "$TMP/c.jsonl"
out=$("$MOFO" data --model "$TMP/chat" --data "$TMP/c.jsonl" --show 1 | grep -oE "template [a-z]+|  mask: .*")
check "data model template" "template model
  mask:    \"<s> [U] 2+2=\\n[A] \" [\"4</s>\"]" "$out"
out=$("$MOFO" data --model "$TMP/chat" --data "$TMP/c.jsonl" --template tulu | grep -o "template [a-z]*")
check "data template flag" "template tulu" "$out"
out=$("$MOFO" data --model "$TMP/model" --data "$TMP/c.jsonl" --template model 2>&1); rc=$?
check "no model template" "2 mofo data: --template model: $TMP/model has no chat template (tokenizer_config.json \"chat_template\" or chat_template.jinja)" "$rc $out"
out=$("$MOFO" data --model "$TMP/bad" --data "$TMP/c.jsonl" 2>&1); rc=$?
check "bad model template" "1 mofo data: $TMP/bad/tokenizer_config.json chat_template, line 2: 'if' is never closed ('endif' missing)" "$rc $out"
out=$("$MOFO" data --model "$TMP/chat" --data "$TMP/c.jsonl" --template nosuch 2>&1); rc=$?
check "unknown template" "2 mofo data: --template 'nosuch': use auto, model, tulu, chatml, llama2 or plain" "$rc $out"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

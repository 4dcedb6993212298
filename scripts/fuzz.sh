#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang and runs each for SECONDS (default 60) from its
# seeds: the committed corpus in fuzz/corpus/NAME (what earlier runs found, minimised) and the
# test fixtures. A crash, a leak or an abort fails the script and leaves the input in build-fuzz/.
# .ci/run runs it for 60 s a target; longer campaigns: scripts/fuzz.sh 600 (then, to keep what they
# found: build-fuzz/fuzz/NAME -merge=1 fuzz/corpus/NAME build-fuzz/new-NAME).
#   usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_tokenizer_json fuzz_jsonl fuzz_encode fuzz_safetensors fuzz_jinja fuzz_config)
command -v clang >/dev/null || { echo "scripts/fuzz.sh: clang is needed (apt-get install clang libclang-rt-14-dev)"; exit 1; }
cmake -S . -B build-fuzz -DMOFO_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug -DBUILD_TESTING=OFF -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DMOFO_CUDA=OFF >/dev/null
cmake --build build-fuzz -j2 --target "${targets[@]}" >/dev/null
# seeds beside the committed corpus
seeds() {
  case $1 in
    fuzz_tokenizer_json) echo tests/fixtures/tokenizers ;;
    fuzz_safetensors) echo tests/fixtures/optim ;;
    fuzz_config) echo tests/fixtures/configs ;;
    fuzz_jinja)
      mkdir -p build-fuzz/jinja-seeds
      python3 -c "import json; [open('build-fuzz/jinja-seeds/' + k, 'w').write(v['template']) for k, v in
        json.load(open('tests/fixtures/chat_templates/cases.json'))['templates'].items()]"
      echo build-fuzz/jinja-seeds ;;
  esac
}
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "build-fuzz/work-$t"
  dict=()
  [ "$t" = fuzz_jinja ] && dict=(-dict=fuzz/jinja.dict)
  # new inputs go to the scratch directory (the first), the committed corpus and the seeds are read
  log=build-fuzz/$t.log
  # shellcheck disable=SC2046
  if ! "build-fuzz/fuzz/$t" -max_total_time="$secs" -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="build-fuzz/$t-" "${dict[@]}" "build-fuzz/work-$t" "fuzz/corpus/$t" $(seeds "$t") >"$log" 2>&1; then
    echo "$t: FAILED, see $log"; tail -20 "$log"; exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  echo "$t: $runs runs in $secs s, no finding"
done

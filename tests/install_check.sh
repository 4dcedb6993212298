#!/usr/bin/env bash
# Installs the build in $1 into a scratch prefix and builds small programs against the installed
# headers through pkg-config, statically and shared, then runs them: a libmofo optimizer step, and
# examples/finetune.c (libmofo-engine: load a fixture model, train two steps, save, load back).
set -euo pipefail
build=${1:-build}
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig"
cat > "$prefix/use.c" <<'C'
#include <mofo/optim.h>
#include <stdio.h>
int main(void) {
    float w[4] = {1, 2, 3, 4}, g[4] = {0.4f, -0.3f, 0.2f, -0.1f};
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    mofo_err err;
    mofo_optim *opt = mofo_optim_create(&o, &err);
    if (!opt || mofo_optim_add_param(opt, "w", w, g, 2, (int64_t[]){2, 2}, MOFO_GROUP_AUTO, &err) < 0 ||
        mofo_optim_step(opt, 0.1, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    /* k = max(1, floor(0.15*4)) = 1: only the largest |m| (entry 0) moves, by lr = 0.1 */
    int ok = w[0] < 1 && w[1] == 2 && w[2] == 3 && w[3] == 4;
    mofo_optim_destroy(opt);
    printf("installed libmofo: %s\n", ok ? "ok" : "WRONG");
    return !ok;
}
C
cc -std=c11 "$prefix/use.c" -o "$prefix/use-shared" $(pkg-config --cflags --libs mofo) -Wl,-rpath,"$(pkg-config --variable=libdir mofo)"
# static: libmofo.a and what Libs.private names (libm, OpenMP, and the CUDA runtime when built with it)
static_libs=$(pkg-config --static --libs mofo)
cc -std=c11 "$prefix/use.c" -o "$prefix/use-static" $(pkg-config --cflags mofo) "$(pkg-config --variable=libdir mofo)/libmofo.a" ${static_libs//-lmofo/}
"$prefix/use-shared"
"$prefix/use-static"

# the engine: examples/finetune.c on llama-tiny (vocabulary 203) with rows of ids from a fixed LCG
src=$(cd "$(dirname "$0")/.." && pwd)
awk 'BEGIN { s = 11; for (r = 0; r < 16; r++) { printf "{\"input_ids\": ["; for (t = 0; t < 20; t++) {
  s = (s * 1103515245 + 12345) % 2147483648; printf "%s%d", t ? ", " : "", int(s / 65536) % 203 } print "]}" } }' \
  > "$prefix/data.jsonl"
cc -std=c11 "$src/examples/finetune.c" -o "$prefix/finetune-shared" $(pkg-config --cflags --libs mofo-engine) \
  -Wl,-rpath,"$(pkg-config --variable=libdir mofo-engine)"
libdir=$(pkg-config --variable=libdir mofo-engine)
engine_static=$(pkg-config --static --libs mofo-engine)
engine_static=${engine_static//-lmofo-engine/}
cc -std=c11 "$src/examples/finetune.c" -o "$prefix/finetune-static" $(pkg-config --cflags mofo-engine) \
  "$libdir/libmofo-engine.a" "$libdir/libmofo.a" ${engine_static//-lmofo /}
"$prefix/finetune-shared" "$src/tests/fixtures/llama-tiny" "$prefix/data.jsonl" "$prefix/out-shared"
"$prefix/finetune-static" "$src/tests/fixtures/llama-tiny" "$prefix/data.jsonl" "$prefix/out-static"
cmp "$prefix/out-shared/model.safetensors" "$prefix/out-static/model.safetensors"
echo "installed libmofo-engine: ok (shared and static builds wrote the same model)"
"$prefix/bin/mofo" version

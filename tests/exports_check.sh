#!/usr/bin/env bash
# A shared library (libmofo.so, libmofo-engine.so) exports exactly the functions that its public
# headers declare with MOFO_API: nothing internal (mofo_json_*, mofo_st_*, the CUDA launchers, the
# engine's layers, ...) and nothing public missing.
#   usage: tests/exports_check.sh LIBRARY_SO HEADER...
set -euo pipefail
lib=$1
shift
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ {print $3}' | sort)
declared=$(grep -ho 'MOFO_API [^(]*(' "$@" | grep -o 'mofo_[a-z0-9_]*($' | tr -d '(' | sort)
[ -n "$declared" ] || { echo "no MOFO_API declarations found in $*"; exit 1; }
extra=$(comm -23 <(echo "$exported") <(echo "$declared"))
missing=$(comm -13 <(echo "$exported") <(echo "$declared"))
[ -z "$extra" ] || echo "exported but not declared in include/mofo: $extra"
[ -z "$missing" ] || echo "declared with MOFO_API but not exported: $missing"
n=$(echo "$declared" | wc -l)
if [ -z "$extra$missing" ]; then echo "$n passed, 0 failed ($(basename "$lib") exports the $n public functions only)"; else echo "0 passed, 1 failed"; exit 1; fi

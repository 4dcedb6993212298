# Sourced by the device checks (scripts/device_check*.sh), from the repository's root: $OUT made,
# $summary emptied, the budget's clock started, and
#   note TEXT...                        a line of the summary (and of the output)
#   step NAME LIMIT_SECONDS LOG CMD...  runs CMD within its limit and what is left of $BUDGET,
#                                       output to LOG, its exit code and time to the summary
#                                       (skipped when under 10 s are left)
# and the device's name, driver and nvcc in the summary, nvidia-smi's report in $OUT.
set -u
OUT=${OUT:-/tmp/mofo-device-out}
BUDGET=${BUDGET:-560} # seconds for everything
mkdir -p "$OUT"
summary="$OUT/summary.txt"
: >"$summary"
start=$(date +%s)
note() { echo "$*" | tee -a "$summary"; }
step() {
    local name=$1 limit=$2 log=$3
    shift 3
    local left=$((BUDGET - ($(date +%s) - start)))
    if ((left < 10)); then
        note "$(printf '%-30s skipped: the budget is spent' "$name")"
        return 1
    fi
    ((limit > left)) && limit=$left
    local t0=$(date +%s)
    timeout "$limit" "$@" >>"$log" 2>&1
    local rc=$?
    note "$(printf '%-30s rc=%-4s %4ss' "$name" "$rc" "$(($(date +%s) - t0))")"
    return $rc
}

export PATH=$PATH:/usr/local/cuda/bin
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
note "device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
note "nvcc: $(nvcc --version 2>/dev/null | tail -1)"

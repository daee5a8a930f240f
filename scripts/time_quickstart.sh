#!/usr/bin/env bash
# Times every command of the README's CLI quick start (wall seconds), in a scratch directory.
# Usage: bash scripts/time_quickstart.sh [LANDSCAPE_COMMAND]   (default: .venv/bin/landscape)
set -euo pipefail
L=${1:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/landscape}
work=$(mktemp -d)
cd "$work"
echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs);" \
     "flags: $(grep -o -w -m1 'avx512_bf16\|amx_bf16\|avx512f' /proc/cpuinfo | sort -u | xargs);" \
     "load $(cut -d' ' -f1-3 /proc/loadavg); in $work"
total=0
run() {
    local start end
    start=$(date +%s.%N)
    "$L" "$@" > /dev/null
    end=$(date +%s.%N)
    total=$(echo "$total + $end - $start" | bc)
    printf '%6.1f s  landscape %s\n' "$(echo "$end - $start" | bc)" "$*"
}
ck=runs/pair/checkpoints
run train --out runs/pair --steps 600 --checkpoint-every 50 --probe-every 20 --ics-every 100 -q
run info runs/pair
run plot training runs/pair
run plot santurkar runs/pair
run probe runs/pair --batches 4 -q
run plot santurkar runs/pair/probes.h5
run slice $ck/bn/step_0000600.pt --x -1:1:21 --y -1:1:21 -q
run slice $ck/plain/step_0000600.pt --x -1:1:21 --y -1:1:21 -q
run slice $ck/bn/step_0000000.pt --to $ck/bn/step_0000600.pt -q
run plot compare runs/pair/slices/bn_step_0000600_random_plane.h5 \
    runs/pair/slices/plain_step_0000600_random_plane.h5
run hessian runs/pair --at 0,200,400,600 --top-k 3 --density -q
run plot hessian runs/pair
printf '%6.1f s  in all; load %s\n' "$total" "$(cut -d' ' -f1-3 /proc/loadavg)"

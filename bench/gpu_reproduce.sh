#!/usr/bin/env bash
# The paper's full-length runs on a GPU machine (one NVIDIA H200, 16 cores) through funcs.reproduce, the results
# packed into $OUT/results.tar.gz without weights and checkpoints (*.pt), so that they fit what comes back.
#
#   OUT=DIR bash bench/gpu_reproduce.sh [PATTERN ...]          # from the repository root
#
# PATTERN: source paths of the figures' registry (fnmatch; default: Table 5's eight semi-supervised runs).
# Environment, with defaults:
#   ROOT=gpu_runs    results root (a fresh one: simuResults/ holds shortened runs that count as finished)
#   JOBS=8           runs at a time          THREADS=1   CPU threads per run
#   DEVICE=0         GPU number (-1: the CPU)
#   DEADLINE=480     seconds; then running jobs are interrupted (each checkpoints every epoch, so a later call
#                    on the same ROOT resumes them). DEADLINE + 30 s (their grace to stop) + ~30 s (start-up,
#                    packing) must fit the machine's time limit.
#   DATA_DIR=data    holds mnist/ (and fashionMnist/): the raw IDX files, or their .gz (unpacked here). data/ is
#                    ignored by git and its raw files (106 MB) exceed what a device call carries (64 MiB): carry
#                    gzipped copies (MNIST: 12 MB) in an ignored folder and name it here.
#   PYTHON=python3
# Needs torch, numpy, scipy and matplotlib only (no optuna, umap or nbclient: a UMAP extraction is left undone).
# Writes $OUT/results.tar.gz and $OUT/gpu_reproduce.log (this output). Exit code: funcs.reproduce's (0 all
# finished, 1 a job failed, 2 bad input, 3 work left at the deadline).
set -u
export PYTHONUNBUFFERED=1  # progress lines in order with the shell's

ROOT=${ROOT:-gpu_runs}
JOBS=${JOBS:-8}
THREADS=${THREADS:-1}
DEVICE=${DEVICE:-0}
DEADLINE=${DEADLINE:-480}
DATA_DIR=${DATA_DIR:-data}
PYTHON=${PYTHON:-python3}
DEFAULT_PATTERNS="semi_bp_100 semi_bp_600 semi_bp_1000 semi_bp_3000 semi_ep_100 semi_ep_600 semi_ep_1000 semi_ep_3000"
MAX_BYTES=$((16 * 1024 * 1024))  # the most one file of $OUT may weigh to come back

machine() {
    echo "== machine"
    nvidia-smi || echo "(no nvidia-smi here)"
    "$PYTHON" -c 'import torch
cuda = torch.cuda.is_available()
print("torch", torch.__version__, "| cuda", cuda, "|", torch.cuda.get_device_name(0) if cuda else "CPU only")'
}

data() {
    echo "== data in $DATA_DIR"
    for name in mnist fashionMnist; do
        if [ -d "$DATA_DIR/$name" ]; then
            # checks the files (unpacks a .gz); the network is out of reach, hence the timeout
            timeout 300 "$PYTHON" -m funcs.data fetch "$name" --data_dir "$DATA_DIR" || return 1
        fi
    done
}

pack() {
    echo "== packing $ROOT"
    tar -czf "$OUT/results.tar.gz" --exclude='*.pt' --exclude='*.pt.tmp' \
        -C "$(dirname "$ROOT")" "$(basename "$ROOT")" || return 1
    local size
    size=$(stat -c %s "$OUT/results.tar.gz")
    echo "$OUT/results.tar.gz: $((size / 1024)) KiB, $(tar -tzf "$OUT/results.tar.gz" | wc -l) entries, no .pt files"
    [ "$size" -le "$MAX_BYTES" ] || echo "warning: over 16 MiB, it will not come back"
    # Weights stay here; say which unfinished runs could have been continued elsewhere from their checkpoint.
    find "$ROOT" -name checkpoint.pt | sort | while read -r checkpoint; do
        [ -f "$(dirname "$checkpoint")/summary.json" ] && continue
        size=$(stat -c %s "$checkpoint")
        if [ "$size" -le "$MAX_BYTES" ]; then
            echo "note: $checkpoint of an unfinished run ($((size / 1024)) KiB) would fit in \$OUT; not brought"
        else
            echo "note: $checkpoint of an unfinished run is $((size / 1048576)) MiB, over 16 MiB"
        fi
    done
}

main() {
    local patterns only=() rc
    read -r -a patterns <<< "${*:-${PATTERNS:-$DEFAULT_PATTERNS}}"  # no globbing: they are fnmatch patterns
    for p in "${patterns[@]}"; do only+=(--only "$p"); done
    machine
    data || { echo "error: the data in $DATA_DIR could not be checked"; return 2; }
    local args=(--root "$ROOT" "${only[@]}" --device "$DEVICE" --jobs "$JOBS" --threads "$THREADS"
                --data_dir "$DATA_DIR")
    echo "== plan"
    "$PYTHON" -m funcs.reproduce "${args[@]}" --dry-run || return $?
    echo "== run: $PYTHON -m funcs.reproduce ${args[*]} --deadline $DEADLINE"
    "$PYTHON" -m funcs.reproduce "${args[@]}" --deadline "$DEADLINE"
    rc=$?
    pack || rc=1
    echo "== exit code $rc"
    return $rc
}

if [ -z "${OUT:-}" ] || [ ! -d "$OUT" ]; then
    echo "error: OUT must name an existing folder (the files that come back)" >&2
    exit 2
fi
main "$@" 2>&1 | tee "$OUT/gpu_reproduce.log"
exit "${PIPESTATUS[0]}"

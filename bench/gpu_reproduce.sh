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
#   DEADLINE=480     seconds from this script's start (the data check and BENCH included); then running jobs
#                    are interrupted (each checkpoints every epoch, so a later call on the same ROOT resumes them).
#                    DEADLINE + 30 s (their grace to stop) + ~30 s (packing) must fit the machine's time limit.
#   DATA_DIR=data    holds mnist/ (and fashionMnist/): the raw IDX files, or their .gz. data/ is ignored by git
#                    and its raw files (106 MB) exceed what a device call carries (64 MiB): carry gzipped copies
#                    (MNIST: 12 MB; Fashion-MNIST: 30 MB, which with MNIST and the tree passes 64 MiB, so give
#                    it a call and a folder of its own) in an ignored folder and name it here. They are copied
#                    to SCRATCH_DATA and unpacked there, so the carried folder stays small (a test of this script
#                    on the CPU unpacking beside the .gz files would make the next device call refuse the tree).
#   SCRATCH_DATA=${TMPDIR:-/tmp}/gpu_reproduce_data   the data the runs read
#   PYTHON=python3
#   FINISHED=""     folders of simuResults/ copied into ROOT first, so that seeds which ran elsewhere count
#                    (a seeds root's seeds_summary.json then covers them all), e.g. "unsupervised_bp_cnn_mnist/S-1"
#   BENCH=""         presets timed by bench.throughput on the GPU before the runs, alone on it, into
#                    $OUT/bench_gpu.json (e.g. "unsupervised_ep/2layer unsupervised_bp/1layer"); none if empty
# Needs torch, numpy, scipy and matplotlib only (no optuna, umap or nbclient: a UMAP extraction is left undone).
# Writes $OUT/results.tar.gz and $OUT/gpu_reproduce.log (this output); the checkpoints of unfinished runs, as
# many as fit what comes back, in $OUT/checkpoints.tar.part-aa, -ab, ... (`cat` them, `tar -xf`, then resume here). Exit code: funcs.reproduce's (0 all
# finished, 1 a job failed, 2 bad input, 3 work left at the deadline).
set -u
export PYTHONUNBUFFERED=1  # progress lines in order with the shell's

ROOT=${ROOT:-gpu_runs}
JOBS=${JOBS:-8}
THREADS=${THREADS:-1}
DEVICE=${DEVICE:-0}
DEADLINE=${DEADLINE:-480}
DATA_DIR=${DATA_DIR:-data}
SCRATCH_DATA=${SCRATCH_DATA:-${TMPDIR:-/tmp}/gpu_reproduce_data}
PYTHON=${PYTHON:-python3}
FINISHED=${FINISHED:-}
BENCH=${BENCH:-}
DEFAULT_PATTERNS="semi_bp_100 semi_bp_600 semi_bp_1000 semi_bp_3000 semi_ep_100 semi_ep_600 semi_ep_1000 semi_ep_3000"
MAX_BYTES=$((16 * 1024 * 1024))  # the most one file of $OUT may weigh to come back
CHECKPOINT_BYTES=$((40 * 1024 * 1024))  # of the 64 MiB that come back: the rest for the results and logs
PART_BYTES=$((15 * 1024 * 1024))

machine() {
    echo "== machine"
    nvidia-smi || echo "(no nvidia-smi here)"
    "$PYTHON" -c 'import torch
cuda = torch.cuda.is_available()
print("torch", torch.__version__, "| cuda", cuda, "|", torch.cuda.get_device_name(0) if cuda else "CPU only")'
}

data() {
    echo "== data from $DATA_DIR in $SCRATCH_DATA"
    for name in mnist fashionMnist; do
        if [ -d "$DATA_DIR/$name" ]; then
            mkdir -p "$SCRATCH_DATA/$name" || return 1
            for file in "$DATA_DIR/$name"/*; do  # not cp -n: some coreutils versions fail when they skip a file
                [ -e "$SCRATCH_DATA/$name/${file##*/}" ] || cp "$file" "$SCRATCH_DATA/$name/" || return 1
            done
            # checks the files (unpacks a .gz); the network is out of reach, hence the timeout
            timeout 300 "$PYTHON" -m funcs.data fetch "$name" --data_dir "$SCRATCH_DATA" || return 1
        fi
    done
}

copy_finished() {
    local path
    for path in $FINISHED; do
        [ -f "simuResults/$path/summary.json" ] || { echo "error: simuResults/$path has no summary.json"; return 1; }
        mkdir -p "$ROOT/$(dirname "$path")" && cp -r "simuResults/$path" "$ROOT/$(dirname "$path")/" || return 1
        echo "copied simuResults/$path (finished) into $ROOT"
    done
}

bench() {
    [ -n "$BENCH" ] || return 0
    echo "== bench on device $DEVICE: $BENCH"
    # shellcheck disable=SC2086  # BENCH is a list of presets
    timeout 90 "$PYTHON" -m bench.throughput --device "$DEVICE" --presets $BENCH --samples 4000 \
        --eval-samples 10000 --repeats 2 --data_dir "$SCRATCH_DATA" > "$OUT/bench_gpu.json" \
        && cat "$OUT/bench_gpu.json" || echo "warning: the bench failed or ran out of time (its runs go on)"
}

bring_checkpoints() {
    # The checkpoints of unfinished runs, smallest first, while they fit: a later call (here or elsewhere)
    # resumes them; split into parts under the 16 MiB a file may weigh.
    local list=() total=0 size checkpoint summary status
    while read -r size checkpoint; do
        summary="$(dirname "$checkpoint")/summary.json"  # finished, unless it says diverged (then resumable)
        [ -f "$summary" ] && ! grep -q '"status": "diverged"' "$summary" && continue
        if [ $((total + size)) -le "$CHECKPOINT_BYTES" ]; then
            list+=("${checkpoint#"$(dirname "$ROOT")"/}"); total=$((total + size))
        else
            echo "note: $checkpoint of an unfinished run ($((size / 1048576)) MiB) does not fit what comes back"
        fi
    done < <(find "$ROOT" -name checkpoint.pt -printf '%s %p\n' | sort -n)
    [ ${#list[@]} -gt 0 ] || return 0
    tar -cf - -C "$(dirname "$ROOT")" "${list[@]}" | split -b "$PART_BYTES" - "$OUT/checkpoints.tar.part-"
    status=("${PIPESTATUS[@]}")
    [ "${status[0]}" -eq 0 ] && [ "${status[1]}" -eq 0 ] || { echo "error: packing the checkpoints failed"; return 1; }
    echo "brought the checkpoints of ${#list[@]} unfinished run(s), $((total / 1048576)) MiB: ${list[*]}"
    echo "  elsewhere: tar -xzf results.tar.gz -C P; cat checkpoints.tar.part-* | tar -xf - -C P; then"
    echo "  python -m funcs.reproduce --root P/$(basename "$ROOT") --data_dir DATA [--device -1] ... resumes them there"
}

pack() {
    echo "== packing $ROOT"
    tar -czf "$OUT/results.tar.gz" --exclude='*.pt' --exclude='*.pt.tmp' \
        -C "$(dirname "$ROOT")" "$(basename "$ROOT")" || return 1
    local size
    size=$(stat -c %s "$OUT/results.tar.gz")
    echo "$OUT/results.tar.gz: $((size / 1024)) KiB, $(tar -tzf "$OUT/results.tar.gz" | wc -l) entries, no .pt files"
    [ "$size" -le "$MAX_BYTES" ] || echo "warning: over 16 MiB, it will not come back"
    bring_checkpoints
}

main() {
    local patterns only=() rc
    read -r -a patterns <<< "${*:-${PATTERNS:-$DEFAULT_PATTERNS}}"  # no globbing: they are fnmatch patterns
    for p in "${patterns[@]}"; do only+=(--only "$p"); done
    machine
    data || { echo "error: the data in $DATA_DIR could not be checked"; return 2; }
    copy_finished || return 2
    bench
    local args=(--root "$ROOT" "${only[@]}" --device "$DEVICE" --jobs "$JOBS" --threads "$THREADS"
                --data_dir "$SCRATCH_DATA")
    echo "== plan"
    "$PYTHON" -m funcs.reproduce "${args[@]}" --dry-run || return $?
    local left=$((DEADLINE - SECONDS))  # SECONDS: since the script started
    [ "$left" -ge 1 ] || left=1
    echo "== run: $PYTHON -m funcs.reproduce ${args[*]} --deadline $left"
    "$PYTHON" -m funcs.reproduce "${args[@]}" --deadline "$left"
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

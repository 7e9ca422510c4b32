#!/usr/bin/env bash
# The GPU suite: one command, at most 8 minutes on one GPU, that writes every CUDA section of
# docs/benchmarks.md, each naming the card:
#   gpu-generator-cuda       bench_gpu.py: G at 288² and 1024 px, bf16, eager and
#                            torch.compile, TFLOP/s against the card's peak, peak memory
#   generator-vs-gatys-cuda  bench_generator.py: G against Gatys (200 L-BFGS iterations)
#   catalogue-paper-gpu      bench_catalogue.py: seconds per GAN/global/patch step at paper
#                            shapes and the projected paper schedule per style
#   restyle-gpu              bench_restyle.py: bulk restyle, one actor per GPU, 288² and 1024
#   serve-cuda               bench_serve.py: serving, one replica per GPU
#
#   benchmarks/gpu_suite.sh            # on the GPU machine, from a checkout with the venv
#   benchmarks/gpu_suite.sh --dry-run  # anywhere, seconds: G's benchmark on tiny CPU shapes,
#                                      # and every other step's flags checked against its
#                                      # --help, so the suite cannot rot (tests/test_gpu_suite.py)
#
# PYTHON picks the interpreter (default: python). A step that fails or runs past its time
# box is reported and the others still run; the exit status is 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac
FAILED=()

# check_flags SCRIPT ARGS...: every --flag of ARGS appears in SCRIPT's --help.
check_flags() {
  local script=$1 help arg
  shift
  help=$("$PY" "$script" --help) || { echo "$script --help failed" >&2; return 1; }
  for arg in "$@"; do
    if [[ $arg == --* ]] && ! grep -q -- "${arg%%=*}" <<<"$help"; then
      echo "$script has no $arg" >&2
      return 1
    fi
  done
}

# step SECONDS SCRIPT ARGS...: runs one benchmark in its time box (dry run: checks its flags).
step() {
  local budget=$1 script=$2
  shift 2
  echo "== $script $* (time box ${budget}s)"
  if ((DRY)); then
    check_flags "benchmarks/$script" "$@" || FAILED+=("$script")
  else
    timeout "$budget" "$PY" "benchmarks/$script" "$@" || FAILED+=("$script (exit $?)")
  fi
}

if ((DRY)); then
  echo "== bench_gpu.py --dry-run"
  "$PY" benchmarks/bench_gpu.py --dry-run || FAILED+=("bench_gpu.py --dry-run")
  step 0 bench_gpu.py --sizes 288:32,1024:4 --repeats 10 --write-docs
else
  "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'" || exit 2
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  step 130 bench_gpu.py --sizes 288:32,1024:4 --repeats 10 --write-docs
fi
# The time boxes add up to 7.5 minutes; each script's own model loading is inside its box.
step 50 bench_generator.py --size 288 --batch 32 --repeats 10 --gatys-iters 200 --write-docs
step 80 bench_catalogue.py --skip-concurrency --repeats 5 --write-docs
step 110 bench_restyle.py --sizes 288,1024 --images 128 --actors 1 --repeats 1 --write-docs
step 80 bench_serve.py --size 288 --requests 200 --concurrency 16 --batch 16 --cpus 8 \
  --max-seconds 60 --write-docs

if ((${#FAILED[@]})); then
  printf 'failed: %s\n' "${FAILED[@]}" >&2
  exit 1
fi
echo "gpu suite: all steps done$( ((DRY)) && echo ' (dry run)')"

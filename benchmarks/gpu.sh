#!/usr/bin/env bash
# GPU measurements (issue 9): lucent loop vs engine per FZ, engine FZs/s in fp32/tf32/bf16, M-class
# agreement fp32 vs faster precisions, extrapolated paper-bank time, natural-image pass speed.
# Fits in 10 minutes on one H100 (sections past a 540 s budget are skipped). Prints one JSON line;
# also writes it to ${OUT:-artifacts}/gpu.json. CPU check of the same code: python benchmarks/gpu.py --tiny
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >&2 || true
exec timeout 590 "$PY" benchmarks/gpu.py --out "${OUT:-artifacts}/gpu.json" "$@"

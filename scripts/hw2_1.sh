#!/usr/bin/env bash
# Course entry point, problem 1: 1,000 class-conditional digits as OUT_DIR/{digit}_{index:03d}.png.
# Usage: bash scripts/hw2_1.sh OUT_DIR
set -euo pipefail
if [ "$#" -ne 1 ]; then echo "usage: $0 OUT_DIR" >&2; exit 2; fi
exec diffadapt digits generate "$1" --per-class 100 --seed 0 --overwrite

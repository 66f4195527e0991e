#!/usr/bin/env bash
# Course entry point, problem 1: 1,000 class-conditional digits as OUT_DIR/{digit}_{index:03d}.png,
# with the shipped model and its sampling defaults (see MODEL_CARD.md).
# Usage: bash scripts/hw2_1.sh OUT_DIR [more `diffadapt digits generate` options, e.g. --device cuda]
# OUT_DIR is replaced when it holds generated digits only (an earlier run's); anything else in it is refused.
set -euo pipefail
if [ "$#" -lt 1 ]; then echo "usage: $0 OUT_DIR [digits generate options]" >&2; exit 2; fi
out="$1"; shift
if [ -d "$out" ]; then
    other="$(find "$out" -mindepth 1 -maxdepth 1 ! -regex '.*/[0-9]_[0-9][0-9]*\.png' -print -quit)"
    if [ -n "$other" ]; then
        echo "error: $out holds more than generated digits (e.g. ${other##*/}); empty it or choose another folder" | tr '\n' ' ' >&2
        echo >&2
        exit 2
    fi
fi
# "--" before the folder: a name starting with "-" is a folder, not an option
exec diffadapt digits generate --per-class 100 --seed 0 --overwrite "$@" -- "$out"

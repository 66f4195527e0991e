#!/usr/bin/env bash
# Course entry point, problem 3: predict labels of a target image folder with the shipped adaptation model,
# chosen from the folder's name (a path containing "svhn" or "usps"). Prints a label-free estimate of the
# accuracy and writes it beside OUT_CSV (OUT.estimate.json).
# --adapt: first adapt the model to the folder's own images, without labels (adapt predict --adapt; about a
# minute on 2 CPU cores, README.md says when it pays).
# Usage: bash scripts/hw2_3.sh IMAGE_DIR OUT_CSV [--adapt]
set -euo pipefail
if [ "$#" -lt 2 ] || [ "$#" -gt 3 ] || { [ "$#" -eq 3 ] && [ "$3" != "--adapt" ]; }; then
  echo "usage: $0 IMAGE_DIR OUT_CSV [--adapt]" >&2; exit 2
fi
case "$(echo "$1" | tr '[:upper:]' '[:lower:]')" in
  *svhn*) target=svhn ;;
  *usps*) target=usps ;;
  *) echo "error: $1: cannot tell the target domain from the folder name (expected svhn or usps in it)" >&2; exit 2 ;;
esac
# "--" before the paths: a name starting with "-" is a path, not an option
exec diffadapt adapt predict --shipped "$target" ${3:+"$3"} -- "$1" "$2"

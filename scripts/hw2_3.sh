#!/usr/bin/env bash
# Course entry point, problem 3: predict labels of a target image folder with the shipped DANN model,
# chosen from the folder's name (a path containing "svhn" or "usps").
# Usage: bash scripts/hw2_3.sh IMAGE_DIR OUT_CSV
set -euo pipefail
if [ "$#" -ne 2 ]; then echo "usage: $0 IMAGE_DIR OUT_CSV" >&2; exit 2; fi
case "$(echo "$1" | tr '[:upper:]' '[:lower:]')" in
  *svhn*) target=svhn ;;
  *usps*) target=usps ;;
  *) echo "error: $1: cannot tell the target domain from the folder name (expected svhn or usps in it)" >&2; exit 2 ;;
esac
exec diffadapt adapt predict "$1" "$2" --shipped "$target"

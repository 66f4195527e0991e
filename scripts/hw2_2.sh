#!/usr/bin/env bash
# Course entry point, problem 2: DDIM (eta 0, 50 steps) from each noise file with the course's UNet.
# Usage: bash scripts/hw2_2.sh NOISE_DIR OUT_DIR UNET_PATH
set -euo pipefail
if [ "$#" -ne 3 ]; then echo "usage: $0 NOISE_DIR OUT_DIR UNET_PATH" >&2; exit 2; fi
# "--" before the folders and --unet=PATH: a name starting with "-" is a path, not an option
exec diffadapt faces generate --unet="$3" --eta 0 --steps 50 --seed 0 --overwrite -- "$1" "$2"

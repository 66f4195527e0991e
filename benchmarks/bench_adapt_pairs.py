"""The adaptation table on real data: MNIST-M -> USPS, -> MNIST and -> the embedded SVHN-like domain, each
trained on source, with DANN and on target, three seeds, with the same ``diffadapt adapt`` commands a user
runs. Finished seeds are kept, so an interrupted run continues where it stopped.

    python benchmarks/bench_adapt_pairs.py --out runs/adapt_pairs [--epochs 3] [--recipes ours,report]

``--epochs`` counts passes over the 47,201 MNIST-M training images; target-only runs, which see only the
smaller target set, get as many steps (more passes), so every mode trains for the same number of steps.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from common import SHARED_DATA, machine, require

from diffadapt.cli import main as cli

PAIRS = {
    "usps": lambda: str(require("usps16_train.npz")),
    "mnist": lambda: str(require("mnist")),
    "svhn": lambda: "svhn",  # the embedded SVHN-like domain
}
TRAIN_IMAGES = {"mnistm": 47201, "usps": 5833, "mnist": 8000, "svhn": 4800}  # 80 % train splits (train_val)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/adapt_pairs")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--targets", default="usps,mnist,svhn")
    parser.add_argument("--recipes", default="ours")
    parser.add_argument("--modes", default="source,dann,target")
    args = parser.parse_args()
    out = Path(args.out)
    source = str(require("mnistm28.npz"))
    seeds = [int(s) for s in args.seeds.split(",")]
    runs, timings = [], {}
    for target_name in args.targets.split(","):
        target = PAIRS[target_name]()
        for recipe in args.recipes.split(","):
            for mode in args.modes.split(","):
                run = out / f"mnistm-to-{target_name}" / f"{mode}-{recipe}"
                epochs = args.epochs
                if mode == "target":  # the same number of steps over the smaller labelled set
                    epochs = math.ceil(args.epochs * TRAIN_IMAGES["mnistm"] / TRAIN_IMAGES[target_name])
                todo = [s for s in seeds if not (run / f"seed{s}" / "config.json").exists()]
                if todo:
                    start = time.perf_counter()
                    code = cli(["adapt", "train", "--source", source, "--target", target, "--mode", mode, "--recipe", recipe,
                                "--out", str(run), "--seeds", ",".join(map(str, todo)), "--epochs", str(epochs),
                                "--batch-size", str(args.batch_size)])
                    if code != 0:
                        raise SystemExit(code)
                    timings[str(run)] = (time.perf_counter() - start) / len(todo)
                runs.append(str(run))
    print(f"\nmachine: {machine()}; data: {SHARED_DATA}; {args.epochs} source epochs, batch {args.batch_size}, seeds {args.seeds}\n")
    cli(["adapt", "table", *runs, "--out", str(out)])
    timings_file = out / "timings.json"  # kept across invocations: a run trained earlier keeps its time
    earlier = json.loads(timings_file.read_text())["seconds_per_seed"] if timings_file.exists() else {}
    timings_file.write_text(json.dumps({"machine": machine(), "seconds_per_seed": {**earlier, **timings}}, indent=2) + "\n")


if __name__ == "__main__":
    main()

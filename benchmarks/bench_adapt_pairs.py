"""The adaptation table: MNIST-M -> USPS, -> MNIST and -> the embedded SVHN-like domain, every method beside
the source-only and target-only baselines, three seeds, with the same ``diffadapt adapt train`` commands a
user runs. Finished seeds are kept, so an interrupted run continues where it stopped.

    python benchmarks/bench_adapt_pairs.py --out runs/adapt_pairs [--epochs 3] [--methods source,dann,cdan,fixmatch,target]
    python benchmarks/bench_adapt_pairs.py --data embedded --out runs/adapt_dev ...   # the development pairs

``--data real`` (default): real MNIST-M (``mnistm28.npz``) -> real USPS (``usps16_train.npz``), real MNIST
(the IDX t10k set) and the embedded SVHN-like domain. ``--data embedded``: the embedded domains only
(mnistm -> usps, mnist, svhn), the pairs on which method settings are developed, so that the real targets'
labels choose nothing. ``--epochs`` counts passes over the source's training split; target-only runs, which
see only the smaller target set, get as many steps (more passes). ``--set KEY=VALUE`` passes any other
``adapt train`` option (e.g. ``--set confidence=0.9``) and ``--tag`` names such a variant's folder.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from common import SHARED_DATA, machine, require

from diffadapt.cli import main as cli
from diffadapt.data import read_source, train_val

REAL_TARGETS = {"usps": lambda: str(require("usps16_train.npz")), "mnist": lambda: str(require("mnist")), "svhn": lambda: "svhn"}
EMBEDDED_TARGETS = {"usps": lambda: "usps", "mnist": lambda: "mnist", "svhn": lambda: "svhn"}


def train_size(spec: str) -> int:
    return len(train_val(read_source(spec, progress=False))[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/adapt_pairs")
    parser.add_argument("--data", choices=("real", "embedded"), default="real")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--targets", default="usps,mnist,svhn")
    parser.add_argument("--recipe", default="matched")
    parser.add_argument("--methods", default="source,dann,cdan,fixmatch,target")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="another adapt train option")
    parser.add_argument("--tag", default="", help="suffix of the run folders (for --set variants)")
    args = parser.parse_args()
    out = Path(args.out)
    source = str(require("mnistm28.npz")) if args.data == "real" else "mnistm"
    targets = REAL_TARGETS if args.data == "real" else EMBEDDED_TARGETS
    source_images = train_size(source)
    extra = []
    for item in args.set:
        key, _, value = item.partition("=")
        extra += [f"--{key.replace('_', '-')}", value] if value not in ("true", "false") else [f"--{'' if value == 'true' else 'no-'}{key.replace('_', '-')}"]
    runs, timings = [], {}
    for target_name in args.targets.split(","):
        target = targets[target_name]()
        for method in args.methods.split(","):
            run = out / f"mnistm-to-{target_name}" / f"{method}-{args.recipe}{'-' + args.tag if args.tag else ''}"
            epochs = args.epochs
            if method == "target":  # the same number of steps over the smaller labelled set
                epochs = math.ceil(args.epochs * source_images / train_size(target))
            todo = [s for s in args.seeds.split(",") if not (run / f"seed{s}" / "config.json").exists()]
            if todo:
                start = time.perf_counter()
                code = cli(["adapt", "train", "--source", source, "--target", target, "--method", method, "--recipe", args.recipe,
                            "--out", str(run), "--seeds", ",".join(todo), "--epochs", str(epochs), "--batch-size", str(args.batch_size),
                            "--no-progress", *extra])
                if code != 0:
                    raise SystemExit(code)
                timings[str(run)] = (time.perf_counter() - start) / len(todo)
            runs.append(str(run))
    print(f"\nmachine: {machine()}; data: {args.data} ({SHARED_DATA}); {args.epochs} source epochs, batch {args.batch_size}, seeds {args.seeds}\n")
    cli(["adapt", "table", *runs, "--out", str(out)])
    timings_file = out / "timings.json"  # kept across invocations: a run trained earlier keeps its time
    earlier = json.loads(timings_file.read_text())["seconds_per_seed"] if timings_file.exists() else {}
    timings_file.parent.mkdir(parents=True, exist_ok=True)
    timings_file.write_text(json.dumps({"machine": machine(), "seconds_per_seed": {**earlier, **timings}}, indent=2) + "\n")


if __name__ == "__main__":
    main()

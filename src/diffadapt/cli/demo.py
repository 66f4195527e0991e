"""``diffadapt demo`` (the main job on embedded data) and ``diffadapt report`` (the same from a TOML file)."""

from __future__ import annotations

import argparse

from diffadapt.cli.common import seed_number

EXAMPLE = "examples/report.toml"


def register(families: argparse._SubParsersAction) -> None:
    text = "Run all three parts on the embedded data at a small scale; write DIR/index.html."
    p = families.add_parser("demo", help=text, description=text)
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--seed", type=seed_number, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    p.set_defaults(handler=run_demo)

    text = "Run the report from a TOML file naming real data, checkpoints and scales."
    p = families.add_parser("report", help=text, description=f"{text} A commented example is {EXAMPLE} in the repository; "
                            "every setting is optional and checked on load.")
    p.add_argument("--config", required=True, help=f"TOML file (example: {EXAMPLE})")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(handler=run_report)


def summarise(index, results_file) -> None:
    from diffadapt.io import read_json

    results = read_json(results_file)
    print(f"\nreport written: {index}  ({results['total_seconds']:.0f} s on {results['device']})")
    if "digits" in results:
        s = results["digits"]["scores"]
        line = f"  digits: judge accuracy {s['judge_accuracy']:.3f}, Fréchet distance {s['frechet']:.3f} on {s['count']} images"
        if s.get("accuracy_score"):
            line += f", accuracy score ratio {s['accuracy_score']['ratio']:.3f}"
        print(line)
    if "ddim" in results and "mean_mse" in results["ddim"]:
        print(f"  DDIM faces: mean MSE {results['ddim']['mean_mse']:.3f}")
    if "adapt" in results:
        print("  adaptation (target val accuracy):")
        for line in results["adapt"]["table_markdown"].splitlines():
            print("    " + line)


def run_demo(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from diffadapt.apps.report.config import demo_config
    from diffadapt.apps.report.pipeline import build_report

    config = replace(demo_config(), seed=args.seed, device=args.device)
    index = build_report(config, args.out, overwrite=args.overwrite, log=lambda line: print(line, flush=True))
    summarise(index, index.parent / "report.json")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from diffadapt.apps.report.config import load_report_config
    from diffadapt.apps.report.pipeline import build_report
    from diffadapt.io import check_not_an_input

    check_not_an_input(args.out, [args.config], "--out", may_lie_inside=True)  # --overwrite would delete the config with the folder
    index = build_report(load_report_config(args.config), args.out, overwrite=args.overwrite, log=lambda line: print(line, flush=True))
    summarise(index, index.parent / "report.json")
    return 0

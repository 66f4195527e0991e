"""Everything a lent GPU machine is needed for, in one call with a deadline (see benchmarks/RESULTS.md).

    PYTHONPATH=src python benchmarks/gpu/session.py --data .devdata/gpu --out "$OUT" --budget 540

Stages, in order; each is timed, logged and written to results.json as soon as it ends, and a stage that
fails is recorded and skipped so the rest still runs:
  1. diffusion: train the default digit model on real MNIST-M for 60 s (compiled, bf16, channels_last),
     measure images/s and training FLOP/s;
  2. diffusion: guidance sweep on 1,000 generated images (course LeNet accuracy, judge Fréchet distance),
     DDPM and DDIM sampling speed;
  3. DANN: the report's 100-epoch run on 44,800 MNIST-M + USPS images, timed alone;
  4. the course face UNet: ten 256x256 images, 50 DDIM steps, fp32 / tf32 / bf16, peak memory;
  5. DANN accuracy: source / DANN (report, ours) / target on three pairs x three seeds, in parallel workers,
     until the deadline;
  6. torch.compile'd sampling speed, if time is left.
With --smoke everything runs at a tiny scale on the CPU, to rehearse the script before spending GPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

START = time.perf_counter()


def elapsed() -> float:
    return time.perf_counter() - START


def log(message: str) -> None:
    print(f"[{elapsed():7.1f}s] {message}", flush=True)


class Results:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict = {"stages": {}, "errors": {}}

    def stage(self, name: str, values: dict) -> None:
        self.data["stages"][name] = values
        self.save()

    def error(self, name: str) -> None:
        self.data["errors"][name] = traceback.format_exc()[-3000:]
        self.save()

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=2, default=str))


def load_mnistm(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    from pack_data import unpack_webp

    archive = np.load(data_dir / "mnistm_train_webp.npz")
    return unpack_webp(archive["data"], archive["offsets"]), archive["y"].astype(np.int64)


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ---------------------------------------------------------------- 1. diffusion training
def stage_train(args, results: Results, images: np.ndarray, labels: np.ndarray, device: torch.device) -> Path:
    from diffadapt.data import DigitSet, TensorImages
    from diffadapt.diffusion.checkpoint import DIGITS_KIND
    from diffadapt.diffusion.schedule import ScheduleConfig
    from diffadapt.diffusion.train import DataInfo, TrainConfig, train_diffusion
    from diffadapt.diffusion.unet import ConditionalUNet, UNetConfig, count_flops, count_parameters

    run = Path(args.work) / "digits_run"
    digits = DigitSet(images, labels, "mnistm")
    data = TensorImages.from_digitset(digits, device=device)
    model_config = UNetConfig()
    train_config = TrainConfig(
        steps=10**7, time_limit=args.train_seconds, batch_size=args.batch, lr=args.lr, warmup_steps=200,
        ema_decay=0.999, seed=0, checkpoint_every=0, log_every=25, compile=args.compile, weights_dtype="float16",
    )
    info = DataInfo(source="real MNIST-M train (48,000-image subset of mnistm28.npz)", domain="mnistm", channels=3, size=28, num_images=len(data))
    log(f"training: {len(data)} images, batch {args.batch}, lr {args.lr}, {args.train_seconds} s, compile={args.compile}")
    try:
        result = train_diffusion(run, data, model_config, ScheduleConfig(), train_config, info, DIGITS_KIND, device=device, progress=False)
    except Exception:
        if not train_config.compile:
            raise
        # Compilation is an optimisation: keep the checkpoint even if it fails here.
        results.error("diffusion_compile")
        log("compiled training failed, training eager:\n" + traceback.format_exc()[-1500:])
        train_config = replace(train_config, compile=False)
        run = Path(args.work) / "digits_run_eager"
        result = train_diffusion(run, data, model_config, ScheduleConfig(), train_config, info, DIGITS_KIND, device=device, progress=False)
    rate = result.images_seen / max(result.train_seconds, 1e-9)

    _, flops_per_image = count_flops(model_config)
    values = {
        "steps": result.steps, "images_seen": result.images_seen, "train_seconds": result.train_seconds,
        "compile_seconds": result.compile_seconds, "images_per_second": rate, "final_loss": result.final_loss,
        "loss_history": result.loss_history, "train_flops_per_image": flops_per_image,
        "achieved_tflops": rate * flops_per_image / 1e12, "epochs": result.images_seen / len(data),
        "parameters": count_parameters(ConditionalUNet(model_config)), "batch": args.batch, "lr": args.lr,
    }
    results.stage("diffusion_train", values)
    log(f"trained {result.steps} steps in {result.train_seconds:.1f} s ({rate:,.0f} img/s, "
        f"{values['achieved_tflops']:.1f} TFLOP/s), compile {result.compile_seconds:.1f} s, loss {result.final_loss:.4f}")
    return run


def eager_fp32_step_time(device: torch.device, batch: int = 256, repeats: int = 20) -> dict:
    """A plain eager fp32 step of the default model against ours (bf16, channels_last), same batch."""
    import torch.nn.functional as F

    from diffadapt.diffusion.unet import ConditionalUNet, UNetConfig

    out = {}
    for name, bf16, channels_last in (("plain_fp32", False, False), ("ours_bf16_channels_last", True, True)):
        model = ConditionalUNet(UNetConfig()).to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        x = torch.randn(batch, 3, 28, 28, device=device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        t = torch.randint(0, 500, (batch,), device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        for i in range(repeats + 5):
            if i == 5:
                synchronize()
                start = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = F.mse_loss(model(x, t, y).float(), x.float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        synchronize()
        out[name + "_ms"] = (time.perf_counter() - start) / repeats * 1000
    return out


# ---------------------------------------------------------------- 2. guidance sweep and sampling speed
def generate(loaded, sampler, guidance, seed: int = 0, per_class: int = 100, batch: int = 1000):
    """per_class graded images per digit (guidance: a Guidance or a scale s), timed; (uint8 NHWC, labels, seconds)."""
    from diffadapt.diffusion.digits import graded_labels, initial_noise, sample_digits, to_images

    labels = graded_labels(per_class)
    x_T = initial_noise(len(labels), (3, 28, 28), seed)
    synchronize()
    start = time.perf_counter()
    x0 = sample_digits(loaded, labels, x_T, sampler, guidance, seed, batch_size=batch, progress=False)
    synchronize()
    seconds = time.perf_counter() - start
    return to_images(x0), labels.numpy(), seconds


def score(images: np.ndarray, labels: np.ndarray, classifier, judge) -> dict:
    from diffadapt.evaluate.generated import score_digits

    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    scores = score_digits(tensor, labels, classifier, judge)
    return {"course_accuracy": scores.overall, "per_class": scores.per_class, "judge_accuracy": scores.judge_accuracy,
            "frechet": scores.frechet, "floor_halves": scores.floor_halves, "floor_1000": scores.floor_1000}


def stage_sweep(args, results: Results, run: Path, device: torch.device) -> dict:
    from diffadapt.diffusion.models import load_model
    from diffadapt.diffusion.sampler import SamplerConfig
    from diffadapt.evaluate.judge import load_judge
    from diffadapt.evaluate.lenet import load_course_classifier

    loaded = load_model(run, device=device, precision="auto")
    classifier = load_course_classifier(Path(args.data) / "hw2_digit_classifier.pth")
    judge = load_judge()
    sweep = {}
    ddim50 = SamplerConfig("ddim", 50, clip_x0=True)
    for guidance in args.guidances:
        images, labels, seconds = generate(loaded, ddim50, guidance, per_class=args.per_class)
        sweep[f"ddim50_s{guidance:g}"] = {**score(images, labels, classifier, judge), "seconds": seconds, "guidance": guidance}
        log(f"guidance {guidance:g}: course {sweep[f'ddim50_s{guidance:g}']['course_accuracy']:.4f}, "
            f"FD {sweep[f'ddim50_s{guidance:g}']['frechet']:.4f}, {seconds:.2f} s")
        results.stage("guidance_sweep", sweep)
    # Default guidance: the lowest Fréchet distance among scales reaching 99.5% course accuracy, else the best accuracy.
    passing = [v for v in sweep.values() if v["course_accuracy"] >= 0.995]
    best = min(passing, key=lambda v: v["frechet"]) if passing else max(sweep.values(), key=lambda v: v["course_accuracy"])
    chosen = best["guidance"]
    extra = {}
    samplers = [("ddim25", SamplerConfig("ddim", 25, clip_x0=True)), ("ddim10", SamplerConfig("ddim", 10, clip_x0=True))]
    if not args.smoke:
        samplers.append(("ddpm500", SamplerConfig("ddpm", clip_x0=True)))
    for name, sampler in samplers:
        images, labels, seconds = generate(loaded, sampler, chosen, per_class=args.per_class)
        extra[f"{name}_s{chosen:g}"] = {**score(images, labels, classifier, judge), "seconds": seconds, "guidance": chosen}
        log(f"{name} at s={chosen:g}: course {extra[f'{name}_s{chosen:g}']['course_accuracy']:.4f}, FD {extra[f'{name}_s{chosen:g}']['frechet']:.4f}, {seconds:.2f} s")
        if name == "ddim25":
            from diffadapt.viz.grid import save_grid

            shown = min(10, args.per_class)
            picks = np.concatenate([images[d * args.per_class : d * args.per_class + shown] for d in range(10)])
            save_grid(Path(args.work) / "figures" / "generated_ddim25.png", picks, shown, scale=2)
    sweep.update(extra)
    results.stage("guidance_sweep", {**sweep, "chosen_guidance": chosen})
    return {"guidance": chosen, "loaded": loaded}


def stage_sampling_speed(args, results: Results, loaded, guidance: float, label: str) -> None:
    from diffadapt.diffusion.sampler import SamplerConfig
    from diffadapt.diffusion.schedule import LinearSchedule, ScheduleConfig

    timings = {}
    _, _, warm = generate(loaded, SamplerConfig("ddim", 5, clip_x0=True), guidance, per_class=args.per_class)
    for repeat in range(2):
        _, _, timings[f"ddim50_run{repeat}_s"] = generate(loaded, SamplerConfig("ddim", 50, clip_x0=True), guidance, per_class=args.per_class)
    # 400 ancestral steps: timed on a T = 400 schedule (the cost per step does not depend on the schedule).
    original = loaded.schedule
    loaded.schedule = LinearSchedule(ScheduleConfig(400))
    try:
        _, _, timings["ddpm400_s"] = generate(loaded, SamplerConfig("ddpm", clip_x0=True), guidance, per_class=args.per_class)
    finally:
        loaded.schedule = original
    timings["warmup_ddim5_s"] = warm
    timings["images"] = 10 * args.per_class
    if torch.cuda.is_available():
        timings["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    results.stage(f"sampling_speed_{label}", timings)
    log(f"sampling speed ({label}): DDIM50 {min(timings['ddim50_run0_s'], timings['ddim50_run1_s']):.2f} s, DDPM400 {timings['ddpm400_s']:.2f} s")


# ---------------------------------------------------------------- 3 and 5. DANN
def adapt_domains(args, images: np.ndarray, labels: np.ndarray, work: Path):
    """Source MNIST-M (44,800 train / 3,200 val of the carried subset) and the three targets, as tensors."""
    from diffadapt.adapt.runs import DomainData, load_domain
    from diffadapt.data import DigitSet, TensorImages

    n_train = min(44800, len(images) - len(images) // 15)
    source = DomainData("real MNIST-M (mnistm28.npz subset)", "mnistm",
                        TensorImages.from_digitset(DigitSet(images[:n_train], labels[:n_train], "mnistm")),
                        TensorImages.from_digitset(DigitSet(images[n_train:], labels[n_train:], "mnistm")))
    targets = {
        "usps": load_domain(str(Path(args.data) / "usps16_train.npz"), 3, 28),
        "mnist": load_domain(str(Path(args.data) / "mnist"), 3, 28),
        "svhn": load_domain("svhn", 3, 28),
    }
    return source, targets


def stage_dann_speed(args, results: Results, source, targets, device: torch.device) -> None:
    from diffadapt.adapt.config import preset
    from diffadapt.adapt.trainer import train_adaptation

    config = preset("report", "dann", epochs=args.dann_epochs)
    target = targets["usps"]
    result = train_adaptation(config, source.train, source.val, target.train, target.val, device, progress=False)
    values = {"seconds": result.train_seconds, "steps": result.steps, "cuda_graph": result.cuda_graph,
              "target_val_accuracy": result.target_val_accuracy, "source_val_accuracy": result.source_val_accuracy,
              "source_images": len(source.train), "target_images": len(target.train), "epochs": args.dann_epochs}
    results.stage("dann_speed", values)
    log(f"DANN report 100 epochs: {result.train_seconds:.1f} s, {result.steps} steps, graph {result.cuda_graph}, "
        f"USPS val {result.target_val_accuracy:.4f}")


def dann_jobs(args) -> list[dict]:
    jobs = []
    for pair in args.pairs:
        for seed in args.seeds:
            for recipe, mode in (("ours", "dann"), ("report", "dann"), ("report", "source"), ("report", "target")):
                jobs.append({"pair": pair, "seed": seed, "recipe": recipe, "mode": mode})
    return jobs


def stage_dann_accuracy(args, results: Results, work: Path, deadline: float) -> None:
    """Jobs run in worker processes (the GPU is far from full with one small network)."""
    import subprocess

    jobs_file = work / "dann_jobs.json"
    jobs_file.write_text(json.dumps(dann_jobs(args)))
    workers = []
    for index in range(args.workers):
        command = [sys.executable, str(Path(__file__).resolve().parent / "dann_worker.py"), "--jobs", str(jobs_file),
                   "--worker", str(index), "--workers", str(args.workers), "--work", str(work), "--epochs", str(args.dann_epochs),
                   "--deadline", str(time.time() + (deadline - elapsed())), "--device", args.device]
        if args.smoke:
            command.append("--smoke")
        workers.append(subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(REPO / "src")}))
    for worker in workers:
        worker.wait()
    finished = [json.loads(p.read_text()) for p in sorted((work / "dann_runs").glob("*/*/seed*/summary.json"))]
    results.stage("dann_accuracy", {"finished": len(finished), "jobs": len(dann_jobs(args)), "runs": finished})
    log(f"DANN accuracy: {len(finished)} of {len(dann_jobs(args))} runs finished")


# ---------------------------------------------------------------- 4. the course face UNet
def stage_faces(args, results: Results, device: torch.device) -> None:
    from diffadapt.diffusion.course_unet import CourseFaceUNet, golden_weights
    from diffadapt.diffusion.faces import COURSE_SCHEDULE, NoiseModel, ddim_faces, to_graded_images
    from diffadapt.diffusion.schedule import LinearSchedule

    model = CourseFaceUNet()
    model.load_state_dict(golden_weights(model))
    model = model.to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    size = args.face_size
    noises = torch.randn(10, 3, size, size, generator=torch.Generator().manual_seed(0))
    values = {"size": size, "images": 10, "steps": args.face_steps, "weights": "golden (deterministic random) weights"}
    outputs = {}
    for name, tf32, bf16 in (("fp32", False, False), ("tf32", True, False), ("bf16", True, True)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32

        def eps(x, t, bf16=bf16):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                return model(x, t).float()

        noise_model = NoiseModel(eps, LinearSchedule(COURSE_SCHEDULE), "course UNet", model, device, bf16)
        ddim_faces(noise_model, noises[:2], steps=2, progress=False)  # warm-up: kernels, cuDNN plans
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        synchronize()
        start = time.perf_counter()
        raw = ddim_faces(noise_model, noises, steps=args.face_steps, progress=False)
        synchronize()
        values[f"{name}_seconds"] = time.perf_counter() - start
        if device.type == "cuda":
            values[f"{name}_peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        outputs[name] = to_graded_images(raw).astype(np.float64)
        log(f"faces {name}: {values[f'{name}_seconds']:.2f} s")
    for name in ("tf32", "bf16"):
        values[f"mse_{name}_vs_fp32"] = float(np.mean((outputs[name] - outputs["fp32"]) ** 2))
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    results.stage("faces", values)


# ---------------------------------------------------------------- packaging
def package(work: Path, out: Path, run: Path) -> None:
    if (run / "config.json").exists():
        with tarfile.open(out / "digits_run.tar", "w") as tar:
            for name in ("config.json", "model.safetensors"):
                tar.add(run / name, arcname=f"digits_run/{name}")
    if (work / "figures").exists():
        with tarfile.open(out / "figures.tar", "w") as tar:
            tar.add(work / "figures", arcname="figures")
    if (work / "dann_runs").exists():
        with tarfile.open(out / "dann_runs.tar.gz", "w:gz") as tar:
            for path in sorted((work / "dann_runs").rglob("*")):
                # Every run's config and summary; weights only of the seed-0 DANN models that may ship.
                shipped = path.parent.name == "seed0" and path.parent.parent.name.startswith("dann-") and (
                    path.parts[-4].endswith("-usps") or path.parts[-4].endswith("-svhn"))
                if path.is_file() and (path.suffix == ".json" or shipped):
                    tar.add(path, arcname=str(path.relative_to(work)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=".devdata/gpu")
    parser.add_argument("--out", default=os.environ.get("OUT", "/tmp/gpu_out"))
    parser.add_argument("--work", default="/tmp/diffadapt_gpu")
    parser.add_argument("--budget", type=float, default=530.0, help="seconds for the whole script")
    parser.add_argument("--train-seconds", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=6e-4)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--guidances", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0, 4.0])
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--dann-epochs", type=int, default=100)
    parser.add_argument("--pairs", nargs="+", default=["usps", "mnist", "svhn"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--face-size", type=int, default=256)
    parser.add_argument("--face-steps", type=int, default=50)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny CPU rehearsal of every stage")
    parser.add_argument("--stages", nargs="+", default=["train", "sweep", "speed", "dann_speed", "faces", "dann", "compiled"])
    args = parser.parse_args()
    if args.smoke:
        args.device, args.train_seconds, args.batch, args.compile = "cpu", 8.0, 64, False
        args.guidances, args.per_class, args.dann_epochs, args.seeds = [3.0], 2, 1, [0]
        args.budget = 10**6
        args.workers, args.face_size, args.face_steps, args.pairs = 2, 32, 2, ["usps", "svhn"]
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    (work / "figures").mkdir(parents=True, exist_ok=True)
    results = Results(out / "results.json")
    device = torch.device(args.device)
    env = {"torch": torch.__version__, "python": sys.version.split()[0], "device": args.device, "args": vars(args)}
    if device.type == "cuda":
        env.update(gpu=torch.cuda.get_device_name(0), capability=torch.cuda.get_device_capability(0),
                   memory_gib=torch.cuda.get_device_properties(0).total_memory / 2**30)
    results.stage("environment", env)
    log(f"environment: {env.get('gpu', 'cpu')}, torch {torch.__version__}")
    deadline = args.budget

    images, labels = load_mnistm(Path(args.data))
    if args.smoke:
        images, labels = images[:2000], labels[:2000]
    log(f"decoded {len(images)} MNIST-M images")

    run = work / "digits_run"
    sweep = None
    if "train" in args.stages:
        try:
            run = stage_train(args, results, images, labels, device)
            results.stage("train_step_time", eager_fp32_step_time(device, batch=256 if not args.smoke else 16, repeats=20 if not args.smoke else 2))
        except Exception:
            results.error("diffusion_train")
            log("diffusion training failed:\n" + traceback.format_exc())
    if "sweep" in args.stages and (run / "config.json").exists():
        try:
            sweep = stage_sweep(args, results, run, device)
        except Exception:
            results.error("guidance_sweep")
            log("sweep failed:\n" + traceback.format_exc())
    if "speed" in args.stages and sweep is not None:
        try:
            stage_sampling_speed(args, results, sweep["loaded"], sweep["guidance"], "eager")
        except Exception:
            results.error("sampling_speed")
    package(work, out, run)
    source = targets = None
    if {"dann_speed", "dann"} & set(args.stages):
        try:
            source, targets = adapt_domains(args, images, labels, work)
            import pickle

            with open(work / "domains.pkl", "wb") as handle:
                pickle.dump({"source": source, "targets": targets}, handle)
        except Exception:
            results.error("adapt_data")
    if "dann_speed" in args.stages and source is not None:
        try:
            stage_dann_speed(args, results, source, targets, device)
        except Exception:
            results.error("dann_speed")
            log("DANN speed failed:\n" + traceback.format_exc())
    if "faces" in args.stages:
        try:
            stage_faces(args, results, device)
        except Exception:
            results.error("faces")
            log("faces failed:\n" + traceback.format_exc())
    if "dann" in args.stages and source is not None:
        try:
            reserve = 45.0 if "compiled" in args.stages and sweep is not None else 10.0
            stage_dann_accuracy(args, results, work, deadline - reserve)
        except Exception:
            results.error("dann_accuracy")
            log("DANN accuracy failed:\n" + traceback.format_exc())
    package(work, out, run)
    if "compiled" in args.stages and sweep is not None and deadline - elapsed() > 40 and device.type == "cuda":
        try:
            loaded = sweep["loaded"]
            loaded.model = torch.compile(loaded.model)
            stage_sampling_speed(args, results, loaded, sweep["guidance"], "compiled")
        except Exception:
            results.error("sampling_compiled")
    results.data["total_seconds"] = elapsed()
    results.save()
    log(f"done in {elapsed():.0f} s; errors: {list(results.data['errors'])}")


if __name__ == "__main__":
    main()

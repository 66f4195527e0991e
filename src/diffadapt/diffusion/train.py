"""The diffusion training loop shared by the digit (conditional) and face (unconditional) models.

What makes it fast: the whole data set sits on the device as one uint8 tensor and a batch is one gather;
the model runs under bf16 autocast on CUDA and on CPUs with native bf16 (``auto``), channels_last on CUDA
only (on the CPU it slows the convolutions), with a fused AdamW, optionally compiled (falling back from the
asked compile mode to the default mode, then to eager, if compilation fails; on the CPU compilation did not
pay, see benchmarks/RESULTS.md); the loss is read back only every ``log_every`` steps, so the GPU never
waits for the host.

What makes it exact: every random draw (data order, t, eps, label dropout) comes from generators derived
from the seed and the step, and state.pt holds everything else, so ``--resume`` continues bit-for-bit the
same run. Under ``torchrun`` each rank trains on its own part of every global batch with the global batch's
noise draws (DistributedDataParallel averages the gradients), so N ranks train as one process would, and
rank 0 alone writes.

The pieces: :func:`runtime_for` (precision, memory layout), :class:`Checkpointer` (what goes to disk),
:func:`train_step` (one optimisation step), :func:`train_diffusion` (the loop that ties them together).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn

from diffadapt.data.batches import epoch_batches
from diffadapt.data.memory import TensorImages
from diffadapt.device import Precision, bf16_autocast, resolve_precision
from diffadapt.diffusion.checkpoint import STATE_FILE, WEIGHTS_FILE, load_resume_state, save_checkpoint
from diffadapt.diffusion.models import check_sampling_fits
from diffadapt.diffusion.schedule import LinearSchedule, ScheduleConfig, epsilon_loss
from diffadapt.diffusion.unet import ConditionalUNet, UNetConfig
from diffadapt.errors import InputError
from diffadapt.images import uint8_to_model
from diffadapt.io import CONFIG_FILE, check_weight_tensors, check_weights_fit, load_state_dict_strict, read_run_config
from diffadapt.progress import progress_bar
from diffadapt.settings import SEED_BOUNDS, Settings, described, is_finite_number, is_whole_number, number
from diffadapt.viz.curves import METRICS_FILE, MetricsLog

CompileMode = Literal["default", "reduce-overhead", "max-autotune"]
LrSchedule = Literal["constant", "cosine"]
OnOffAuto = Literal["auto", "on", "off"]
WeightsDtype = Literal["float32", "float16", "bfloat16"]


@dataclass
class TrainConfig(Settings):
    """Optimisation settings. ``steps`` wins over ``epochs`` when both are set; ``time_limit`` (seconds of
    training, compilation excluded) stops earlier."""

    steps: int = number(0, at_least=0, at_most=10**9, help="optimisation steps (0: from epochs)")
    epochs: float = number(20.0, above=0.0, at_most=1e6, help="passes over the data when steps is 0")
    time_limit: float = number(0.0, at_least=0.0, help="stop after this many seconds of training (0: no limit)")
    batch_size: int = number(256, at_least=1, at_most=1 << 20, help="images per optimisation step")
    lr: float = number(2e-4, above=0.0, at_most=10.0, help="AdamW learning rate")
    weight_decay: float = number(0.0, at_least=0.0, at_most=10.0, help="AdamW weight decay")
    warmup_steps: int = number(200, at_least=0, help="linear learning-rate warm-up")
    lr_schedule: LrSchedule = described("constant", "after warm-up: constant, or cosine decay to 10%")
    ema_decay: float = number(0.999, at_least=0.0, below=1.0, help="EMA decay of the sampling weights")
    p_uncond: float = number(0.1, at_least=0.0, below=1.0, help="label dropout probability for guidance")
    grad_clip: float = number(1.0, at_least=0.0, help="gradient norm clip (0: off)")
    seed: int = number(0, **SEED_BOUNDS, help="fixes initial weights, data order and noise")
    checkpoint_every: int = number(1000, at_least=0, help="steps between checkpoints (0: only at the end)")
    log_every: int = number(50, at_least=1, help="steps per row of metrics.csv")
    precision: Precision = described("auto", "auto: bf16 autocast on CUDA and on CPUs with native bf16, fp32 elsewhere; or fp32, bf16")
    channels_last: OnOffAuto = described("auto", "channels_last memory layout (auto: on CUDA only)")
    compile: bool = described(False, "torch.compile the model (falls back to the default mode, then eager)")
    compile_mode: CompileMode = described("default", "torch.compile mode; reduce-overhead replays CUDA graphs")
    weights_dtype: WeightsDtype = described("float32", "dtype of model.safetensors (float16 halves a shipped file)")


@dataclass
class DataInfo:
    """What the model was trained on, saved in the checkpoint for the user and for sampling."""

    source: str
    domain: str
    channels: int
    size: int
    num_images: int
    normalisation: str = "x / 127.5 - 1: uint8 [0, 255] -> [-1, 1]"
    extra: dict = field(default_factory=dict)


@dataclass
class TrainResult:
    steps: int
    images_seen: int
    train_seconds: float
    compile_seconds: float
    final_loss: float
    run_dir: Path
    loss_history: list[float] = field(default_factory=list)
    model: nn.Module | None = None  # the trained (raw, not EMA) network
    compile_mode: str = "eager"  # the mode that compiled, after any fallback


def distributed_context() -> tuple[int, int, bool]:
    """(rank, world size, initialised here) from torchrun's environment; (0, 1, False) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
        return dist.get_rank(), dist.get_world_size(), True
    return dist.get_rank(), dist.get_world_size(), False


def epoch_order(num_images: int, batch_size: int, seed: int, epoch: int) -> torch.Tensor:
    """(batches, batch_size) image indices of one epoch, reproducible from (seed, epoch) alone (so resume can
    recompute it); identical on every device and rank. The incomplete last batch is dropped."""
    return epoch_batches(num_images, batch_size, torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """Linear warm-up, then constant or cosine decay to 10%."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.lr_schedule == "cosine":
        progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
        return config.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress))))
    return config.lr


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, in one fused op over all parameters."""
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1.0 - decay)


def total_steps_for(config: TrainConfig, num_images: int) -> int:
    if config.steps > 0:
        return config.steps
    per_epoch = num_images // config.batch_size
    if per_epoch == 0:
        raise InputError(f"{num_images} training images are fewer than one batch of {config.batch_size}")
    return max(1, int(round(config.epochs * per_epoch)))


@dataclass(frozen=True)
class Runtime:
    """How the arithmetic runs on a device: bf16 autocast and the channels_last layout."""

    device: torch.device
    bf16: bool
    channels_last: bool

    def autocast(self) -> torch.autocast:
        return bf16_autocast(self.device, self.bf16)

    def to_dict(self) -> dict[str, Any]:
        """The record a checkpoint keeps: device kind, precision and layout, the CPU's kernel level, torch."""
        return {"device": self.device.type, "precision": "bf16" if self.bf16 else "fp32", "channels_last": self.channels_last,
                "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}


def runtime_for(config: TrainConfig, device: torch.device) -> Runtime:
    """Precision and layout for ``device``; on CUDA also the TF32 and cuDNN autotuning switches."""
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    bf16 = resolve_precision(config.precision, device)
    channels_last = config.channels_last == "on" or (config.channels_last == "auto" and cuda)
    return Runtime(device, bf16, channels_last)


def compile_attempts(config: TrainConfig) -> list[str | None]:
    """The torch.compile modes to try in order (None: eager): the asked mode, the default mode, eager."""
    if not config.compile:
        return [None]
    modes: list[str | None] = [config.compile_mode]
    if config.compile_mode != "default":
        modes.append("default")
    return [*modes, None]


def compile_with_fallback(
    module: nn.Module, config: TrainConfig, first_step: Callable[[nn.Module], torch.Tensor], noise_generator: torch.Generator,
    optimizer: torch.optim.Optimizer,
) -> tuple[nn.Module, str, torch.Tensor]:
    """(the module to train with, its mode name, the loss of the first step) after running the first step.

    torch.compile fails lazily, at the first call, in many ways across backends; so each mode of
    :func:`compile_attempts` runs ``first_step`` in turn, and a failed attempt restores the noise stream
    and drops its gradients before the next (eager always works, or its error is raised)."""
    generator_state = noise_generator.get_state()
    for mode in compile_attempts(config):
        candidate = module if mode is None else torch.compile(module, mode=None if mode == "default" else mode)
        try:
            return candidate, mode or "eager", first_step(candidate)
        except Exception as exc:  # compilation failures surface as many types, from many backends
            if mode is None:
                raise
            warnings.warn(f"torch.compile (mode {mode}) failed, trying the next mode: {type(exc).__name__}: {exc}", stacklevel=2)
            noise_generator.set_state(generator_state)
            optimizer.zero_grad(set_to_none=True)
    raise AssertionError("compile_attempts always ends with eager")


@dataclass
class TrainState:
    """The counters of one invocation of the training loop: the step reached and the current log window.

    ``loss_sum`` stays on the device (the loss is read back to the host once per log window, not per step);
    ``tick`` is when the window's clock started; ``window_images`` the images trained on since."""

    step: int
    loss_sum: torch.Tensor
    tick: float
    loss_count: int = 0
    last_loss: float = float("nan")
    train_seconds: float = 0.0
    compile_seconds: float = 0.0
    images_seen: int = 0
    window_images: int = 0

    def add_step(self, loss: torch.Tensor, batch_size: int) -> None:
        self.loss_sum += loss
        self.loss_count += 1
        self.step += 1
        self.images_seen += batch_size
        self.window_images += batch_size

    def close_window(self) -> tuple[float, float]:
        """(mean loss, images/s) of the window now ending; starts the next."""
        self.last_loss = float(self.loss_sum / max(1, self.loss_count))  # the one host sync per window
        self.loss_sum.zero_()
        self.loss_count = 0
        now = time.perf_counter()
        self.train_seconds += now - self.tick
        rate = self.window_images / max(now - self.tick, 1e-9)
        self.tick, self.window_images = now, 0
        return self.last_loss, rate

    def open_window(self) -> tuple[float, int]:
        """(loss sum, steps) of the window not yet logged; a host sync, for checkpoints only."""
        return float(self.loss_sum), self.loss_count

    def restart_clock(self, discard_window: bool = False) -> None:
        """Time from now on counts as training; ``discard_window`` also forgets the window's images (after
        a compiling first step, whose time is compilation, not training)."""
        self.tick = time.perf_counter()
        if discard_window:
            self.window_images = 0


class Checkpointer:
    """Writes the run folder: EMA weights, resume state and config.json (rank 0 only), metrics.csv and
    curves.png.

    Each file is written atomically and config.json last, so a folder that has one is a checkpoint. A first
    checkpoint that fails part-way (a full disk, an interrupt) takes back what it wrote, and the folders it
    created, rather than leave a run folder of a metrics.csv alone.
    """

    OWN_FILES = (METRICS_FILE, WEIGHTS_FILE, STATE_FILE, CONFIG_FILE)

    def __init__(self, run_dir: Path, run_config: dict[str, Any], weights_dtype: torch.dtype, rank: int, world: int) -> None:
        self.run_dir = run_dir
        self.run_config = run_config
        self.weights_dtype = weights_dtype
        self.rank = rank
        self.world = world

    def save(self, step: int, loss: float, model: nn.Module, ema: nn.Module, optimizer: torch.optim.Optimizer,
             noise_generator: torch.Generator, metrics: MetricsLog, window: tuple[float, int] = (0.0, 0)) -> None:
        """``window``: (loss sum, steps) of the log window still open, which a resumed run goes on with, so that
        stopping and resuming writes the same metrics.csv as one run."""
        noise_states = [noise_generator.get_state()]
        if self.world > 1:
            gathered: list[Any] = [None] * self.world
            dist.all_gather_object(gathered, noise_generator.get_state())
            noise_states = gathered
        if self.rank != 0:
            return
        if not all(bool(torch.isfinite(v).all()) for net in (model, ema) for v in net.state_dict().values() if v.is_floating_point()):
            # A diverged run (or one resumed from an edited state) must not overwrite the last good checkpoint.
            raise InputError(f"training diverged by step {step}: the weights are no longer finite (last loss {loss:g}); "
                             "the run folder keeps its last checkpoint", self.run_dir)
        resume_state = {
            "step": step,
            "model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
            "ema": {k: v.detach().cpu().contiguous() for k, v in ema.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "noise_generator": noise_states,
            "log_window": {"loss_sum": float(window[0]), "loss_count": int(window[1])},
        }
        config = {**self.run_config, "step": step, "loss": loss if math.isfinite(loss) else None}
        if (self.run_dir / CONFIG_FILE).exists():  # an earlier checkpoint stands until this one is complete
            metrics.write(self.run_dir)
            save_checkpoint(self.run_dir, config, ema.state_dict(), resume_state, self.weights_dtype)
            return
        created = [folder for folder in (self.run_dir, *self.run_dir.parents) if not folder.exists()]
        before = {name: _identity(self.run_dir / name) for name in self.OWN_FILES}
        try:
            metrics.write(self.run_dir)
            save_checkpoint(self.run_dir, config, ema.state_dict(), resume_state, self.weights_dtype)
        except BaseException:
            for name, identity in before.items():
                if _identity(self.run_dir / name) != identity:
                    with contextlib.suppress(OSError):
                        (self.run_dir / name).unlink()
            for folder in created:  # innermost first; one that holds anything else stays
                try:
                    folder.rmdir()
                except OSError:
                    break
            raise


def _identity(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of a file, None when there is none: tells a file this process wrote from one that was there."""
    try:
        stats = path.stat()
    except OSError:
        return None
    return stats.st_ino, stats.st_size, stats.st_mtime_ns


def restore_resume_state(state: Any, model: nn.Module, ema: nn.Module, optimizer: torch.optim.Optimizer, noise_generator: torch.Generator,
                         rank: int, source: Path) -> int:
    """Load ``state.pt``'s contents (as ``Checkpointer.save`` wrote them) into the training objects, each part
    checked first so that a damaged or edited file is a one-line error, never a half-restored run; -> its step."""
    if not isinstance(state, dict) or not {"step", "model", "ema", "optimizer", "noise_generator"} <= state.keys():
        raise InputError("resume state must hold step, model, ema, optimizer and noise_generator", source)
    step = state["step"]
    if isinstance(step, torch.Tensor) and step.numel() == 1 and not step.is_floating_point() and step.dtype != torch.bool:
        step = int(step)
    if not is_whole_number(step) or step < 0:
        raise InputError(f"resume state's step must be a whole number >= 0, got {step!r:.40}", source)
    for name, target in (("model", model), ("ema", ema)):
        weights = state[name]
        if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
            raise InputError(f"resume state's {name} must be a state dict of tensors", source)
        check_weight_tensors(weights, source)
        check_weights_fit(target.state_dict(), weights, source)
    generators = state["noise_generator"]
    if not isinstance(generators, list) or len(generators) <= rank or not isinstance(generators[rank], torch.Tensor):
        raise InputError(f"resume state's noise_generator must list one generator state per process (this is process {rank})", source)
    model.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    try:
        optimizer.load_state_dict(state["optimizer"])
        noise_generator.set_state(generators[rank])
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as exc:
        raise InputError(f"resume state's optimizer or noise generator does not fit this run ({type(exc).__name__})", source) from None
    for group in optimizer.param_groups:  # torch loads moments of any shape and fails only at the next step
        check_adam_group(group, source)
        for param in group["params"]:
            for key, value in optimizer.state.get(param, {}).items():
                if not isinstance(value, torch.Tensor):
                    continue
                if not bool(torch.isfinite(value).all()) or (value.dim() > 0 and value.shape != param.shape):
                    raise InputError(f"resume state's optimizer {key} does not fit its parameter {tuple(param.shape)} or is not finite", source)
                if key in ("exp_avg_sq", "step") and bool((value < 0).any()):
                    raise InputError(f"resume state's optimizer {key} is negative, which AdamW never makes", source)
    return step


def resume_window(state: dict[str, Any], log_every: int, source: Path) -> tuple[float, int]:
    """The open log window a resume state carries (loss sum, steps); none in states written before it was kept."""
    window = state.get("log_window", {"loss_sum": 0.0, "loss_count": 0})
    total, count = (window.get("loss_sum"), window.get("loss_count")) if isinstance(window, dict) else (None, None)
    if not is_whole_number(count) or not 0 <= count < log_every or not is_finite_number(total) or total < 0 or (count == 0 and total != 0):
        raise InputError(f"resume state's log_window must hold a loss sum >= 0 over 0..{log_every - 1} steps", source)
    return float(total), int(count)


def check_adam_group(group: dict[str, Any], source: Path) -> None:
    """An AdamW parameter group of a resume state: lr, eps and weight decay finite and >= 0 (eps > 0), betas
    in [0, 1): an edited value would turn the next step's weights to NaN."""
    betas = group.get("betas")
    fine = (is_finite_number(group.get("lr")) and group["lr"] >= 0 and is_finite_number(group.get("eps")) and group["eps"] > 0
            and is_finite_number(group.get("weight_decay")) and group["weight_decay"] >= 0
            and isinstance(betas, (tuple, list)) and len(betas) == 2 and all(is_finite_number(b) and 0 <= b < 1 for b in betas))
    if not fine:
        raise InputError("resume state's optimizer settings (lr, betas, eps, weight_decay) are out of range", source)


def train_step(
    model: nn.Module, train_model: nn.Module, optimizer: torch.optim.Optimizer, schedule: LinearSchedule,
    x0: torch.Tensor, labels: torch.Tensor | None, generator: torch.Generator, config: TrainConfig,
    null_label: int | None, runtime: Runtime, shard: tuple[int, int],
) -> torch.Tensor:
    """One AdamW step on the epsilon loss of x0 (B, C, H, W) in [-1, 1]; returns the loss (a device scalar,
    not read back)."""
    with runtime.autocast():
        loss = epsilon_loss(train_model, schedule, x0, labels, generator, config.p_uncond if labels is not None else 0.0, null_label, shard)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip, foreach=True)
    optimizer.step()
    return loss.detach()


def seconds_per_step(model_config: UNetConfig, train_config: TrainConfig, device: torch.device, repeats: int = 2) -> float:
    """Measured seconds of one optimisation step of this network and batch on ``device`` (the best of
    ``repeats`` after a first, untimed one), on a throwaway network and random data: for the expected training
    time. The run's own random streams are untouched (train_diffusion seeds the global generator itself)."""
    runtime = runtime_for(train_config, device)
    model = ConditionalUNet(model_config).to(device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_config.lr, fused=True)
    generator = torch.Generator(device=device).manual_seed(0)
    size = (train_config.batch_size, model_config.in_channels, model_config.image_size, model_config.image_size)
    x0 = torch.rand(size, device=device, generator=generator) * 2 - 1
    labels = (torch.randint(0, model_config.num_classes, (size[0],), device=device, generator=generator)
              if model_config.num_classes is not None else None)
    schedule = LinearSchedule(ScheduleConfig())
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        train_step(model, model, optimizer, schedule, x0, labels, generator, train_config, model_config.null_label, runtime, (0, 1))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times[1:])


def train_diffusion(
    run_dir: str | Path,
    data: TensorImages,
    model_config: UNetConfig,
    schedule_config: ScheduleConfig,
    train_config: TrainConfig,
    data_info: DataInfo,
    kind: str,
    resume: bool = False,
    device: torch.device | None = None,
    progress: bool = True,
    stop_after: int = 0,
    tensorboard: str | Path | None = None,
    init_weights: dict[str, torch.Tensor] | None = None,
    sampling: dict[str, Any] | None = None,
    progress_note: str = "",
) -> TrainResult:
    """Train an eps-prediction UNet on ``data`` (uint8 images, with labels when the model is conditional).

    ``init_weights`` (a state dict of ``model_config``'s network) starts the network and its EMA from trained
    weights instead of the seed's random ones (fine-tuning); ``resume`` restores everything from state.pt.
    ``sampling`` is the checkpoint's ``sampling`` section (sampler and guidance defaults), when it has one.

    ``stop_after`` > 0 ends this invocation after that many steps (checkpointed), while the learning-rate
    schedule still aims at the full run: a later ``resume=True`` call finishes it exactly as one run would.
    The run folder gets ``metrics.csv`` (step, epoch, loss, learning rate, images/s) and ``curves.png``;
    ``tensorboard`` names a folder for the same scalars as TensorBoard events; ``progress_note`` is shown
    in the progress bar's title (e.g. when the run is expected to reach graded quality).
    """
    run_dir = Path(run_dir)
    check_sampling_fits(sampling, schedule_config)
    rank, world, initialised_here = distributed_context()
    if device is None:
        device = torch.device(f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu")
    runtime = runtime_for(train_config, device)
    if train_config.batch_size % world:
        raise InputError(f"batch size {train_config.batch_size} is not divisible by {world} processes")
    per_rank = train_config.batch_size // world
    conditional = model_config.num_classes is not None

    images = data.images.to(device)
    labels = data.labels.to(device) if conditional else None
    total_steps = total_steps_for(train_config, len(images))
    batches_per_epoch = len(images) // train_config.batch_size
    if batches_per_epoch == 0:
        raise InputError(f"{len(images)} training images are fewer than one batch of {train_config.batch_size}")

    torch.manual_seed(train_config.seed)  # identical initial weights on every rank
    model = ConditionalUNet(model_config).to(device)
    if init_weights is not None and not resume:
        load_state_dict_strict(model, {k: v.float() if v.is_floating_point() else v for k, v in init_weights.items()}, "initial weights")
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay, fused=True)
    # One noise stream for the global batch, the same on every rank (see epsilon_loss's shard).
    noise_generator = torch.Generator(device=device).manual_seed(train_config.seed * 7919)
    metrics = MetricsLog(["step", "epoch", "loss", "lr", "images_per_s"], title="diffusion training", tensorboard=tensorboard if rank == 0 else None)
    start_step, window = 0, (0.0, 0)
    if resume:
        resume_state = load_resume_state(run_dir)
        start_step = restore_resume_state(resume_state, model, ema, optimizer, noise_generator, rank, run_dir / STATE_FILE)
        window = resume_window(resume_state, train_config.log_every, run_dir / STATE_FILE)
        metrics.load(run_dir, until_step=start_step)
        if start_step >= total_steps:
            raise InputError(f"run is already at step {start_step} of {total_steps}; nothing to resume", run_dir)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
        ema = ema.to(memory_format=torch.channels_last)
    wrapped: nn.Module = model
    if world > 1:
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    schedule = LinearSchedule(schedule_config)
    run_config = {
        "kind": kind, "model": model_config.to_dict(), "schedule": asdict(schedule_config), "data": asdict(data_info),
        "train": train_config.to_dict(), "total_steps": total_steps, "world_size": world,
        # What "auto" resolved to in the invocation that wrote this checkpoint: bf16 kernels differ between CPUs
        # (AMX, AVX512-BF16) and from fp32, so the same seed gives the same weights only where these agree.
        "runtime": runtime.to_dict(),
    }
    if sampling is not None:
        run_config["sampling"] = sampling
    checkpointer = Checkpointer(run_dir, run_config, getattr(torch, train_config.weights_dtype), rank, world)

    orders: dict[int, torch.Tensor] = {}

    def batch_at(step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's part of the global batch of ``step``: x0 in [-1, 1] and labels."""
        epoch, position = divmod(step, batches_per_epoch)
        if epoch not in orders:
            orders.clear()
            orders[epoch] = epoch_order(len(images), train_config.batch_size, train_config.seed, epoch).to(device)
        index = orders[epoch][position, rank * per_rank : (rank + 1) * per_rank]
        x0 = uint8_to_model(images[index])
        if runtime.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        return x0, labels[index] if labels is not None else None

    def run_step(train_model: nn.Module, step: int) -> torch.Tensor:
        lr = learning_rate(train_config, step, total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x0, batch_labels = batch_at(step)
        loss = train_step(model, train_model, optimizer, schedule, x0, batch_labels, noise_generator, train_config,
                          model_config.null_label, runtime, (rank, world))
        update_ema(ema, model, min(train_config.ema_decay, (1 + step) / (10 + step)))
        return loss

    bar = progress_bar(total_steps, f"training ({progress_note})" if progress_note else "training", "step", enabled=progress and rank == 0, leave=True)
    bar.update(start_step)
    end_step = min(total_steps, start_step + stop_after) if stop_after > 0 else total_steps
    state = TrainState(step=start_step, loss_sum=torch.full((), window[0], device=device), tick=time.perf_counter(), loss_count=window[1])

    def log_window() -> None:
        loss, rate = state.close_window()
        metrics.add(step=state.step, epoch=round(state.step / batches_per_epoch, 3), loss=loss,
                    lr=learning_rate(train_config, state.step - 1, total_steps), images_per_s=round(rate, 1))
        bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{rate:,.0f}")

    train_model, compiled_mode = None, "eager"
    stop = False
    while True:
        if train_model is None:  # the first step: it also finds the module that compiles (see compile_with_fallback)
            train_model, compiled_mode, loss = compile_with_fallback(wrapped, train_config, lambda m: run_step(m, state.step),
                                                                     noise_generator, optimizer)
            state.add_step(loss, train_config.batch_size)
            if train_config.compile:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                state.compile_seconds = time.perf_counter() - state.tick  # a compiled model's first step is mostly compilation
                state.restart_clock(discard_window=True)
        else:
            state.add_step(run_step(train_model, state.step), train_config.batch_size)
        bar.update(1)
        step = state.step
        if step % train_config.log_every == 0 or step == total_steps:
            log_window()
            if train_config.time_limit > 0:
                stop_flag = torch.tensor([state.train_seconds >= train_config.time_limit], device=device)
                if world > 1:
                    dist.broadcast(stop_flag, 0)
                stop = bool(stop_flag.item())
        if train_config.checkpoint_every > 0 and step % train_config.checkpoint_every == 0 and step < end_step and not stop:
            checkpointer.save(step, state.last_loss, model, ema, optimizer, noise_generator, metrics, state.open_window())
            state.restart_clock()  # writing is not training
        if step >= end_step or stop:
            break
    if state.loss_count and (state.step >= total_steps or stop):
        log_window()
    elif state.loss_count:  # stopped by --stop-after: the window stays open for the resumed run (see Checkpointer.save)
        total, count = state.open_window()
        state.last_loss = total / count
    bar.close()
    checkpointer.save(state.step, state.last_loss, model, ema, optimizer, noise_generator, metrics, state.open_window())
    if rank == 0:
        metrics.plot(run_dir / "curves.png", x="step", series=("loss", "lr", "images_per_s"))
    metrics.close()
    if world > 1:
        dist.barrier()
    if initialised_here:
        dist.destroy_process_group()
    return TrainResult(state.step, state.images_seen, state.train_seconds, state.compile_seconds, state.last_loss, run_dir,
                       metrics.column("loss"), model, compiled_mode)


def refuse_resume_overrides(*settings: dict[str, Any] | None) -> None:
    """A resumed run keeps the settings it started with (so that stopping and resuming changes nothing); a
    setting given beside --resume would be ignored, so it is refused, named."""
    names = sorted(name for given in settings if given for name in given)
    if names:
        raise InputError(f"--resume continues the run with the settings it started with; drop the settings given beside it ({', '.join(names)})")


def resume_configs(run_dir: Path) -> tuple[dict[str, Any], UNetConfig, ScheduleConfig, TrainConfig]:
    """The configs a run was started with, so that --resume needs no other flag."""
    config = read_run_config(run_dir)
    if not (run_dir / STATE_FILE).is_file():
        raise InputError("--resume needs state.pt from an earlier run here", run_dir)
    source = run_dir / "config.json"
    for section in ("model", "schedule", "train"):
        if section not in config:
            raise InputError(f"config has no {section!r} section", source)
    return (config, UNetConfig.from_dict(config["model"], source, "model"), ScheduleConfig.from_dict(config["schedule"], source, "schedule"),
            TrainConfig.from_dict(config["train"], source, "train"))


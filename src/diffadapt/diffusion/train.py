"""The diffusion training loop shared by the digit (conditional) and face (unconditional) models.

What makes it fast: the whole data set sits on the device as one uint8 tensor and a batch is one gather;
on CUDA the model runs channels_last under bf16 autocast with a fused AdamW, optionally compiled; the loss
is read back only every ``log_every`` steps, so the GPU never waits for the host.

What makes it exact: every random draw (data order, t, eps, label dropout) comes from generators derived
from the seed and the step, and state.pt holds everything else, so ``--resume`` continues bit-for-bit the
same run. Under ``torchrun`` each rank trains on its own shard of every global batch
(DistributedDataParallel averages the gradients) and rank 0 alone writes.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from diffadapt.data.memory import TensorImages
from diffadapt.diffusion.checkpoint import STATE_FILE, load_resume_state, read_config, save_checkpoint
from diffadapt.diffusion.schedule import LinearSchedule, ScheduleConfig, epsilon_loss
from diffadapt.diffusion.unet import ConditionalUNet, UNetConfig
from diffadapt.errors import InputError
from diffadapt.viz.images import uint8_to_model


@dataclass
class TrainConfig:
    """Optimisation settings. ``steps`` wins over ``epochs`` when both are set; ``time_limit`` (seconds of
    training, compilation excluded) stops earlier."""

    steps: int = 0
    epochs: float = 20.0
    time_limit: float = 0.0
    batch_size: int = 256
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    lr_schedule: str = "constant"  # or "cosine"
    ema_decay: float = 0.999
    p_uncond: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 1000
    log_every: int = 50
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 elsewhere; or fp32, bf16
    channels_last: str = "auto"  # auto: on CUDA only
    compile: bool = False
    compile_mode: str = "default"  # torch.compile mode: default, reduce-overhead (CUDA graphs), max-autotune
    weights_dtype: str = "float32"  # dtype of model.safetensors (float16 halves a shipped file)

    def to_dict(self) -> dict:
        return asdict(self)


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
    """(batches, batch_size) image indices of one epoch; from a CPU generator, so identical on every device
    and every rank, and reproducible from (seed, epoch) alone. The incomplete last batch is dropped."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(num_images, generator=generator)
    batches = num_images // batch_size
    return order[: batches * batch_size].view(batches, batch_size)


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
    ema_params = [p for p in ema.parameters()]
    model_params = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(ema_params, model_params, 1.0 - decay)


def total_steps_for(config: TrainConfig, num_images: int) -> int:
    if config.steps > 0:
        return config.steps
    per_epoch = num_images // config.batch_size
    if per_epoch == 0:
        raise InputError(f"{num_images} training images are fewer than one batch of {config.batch_size}")
    return max(1, int(round(config.epochs * per_epoch)))


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
    extra_config: dict[str, Any] | None = None,
    stop_after: int = 0,
) -> TrainResult:
    """Train an eps-prediction UNet on ``data`` (uint8 images, with labels when the model is conditional).

    ``stop_after`` > 0 ends this invocation after that many steps (checkpointed), while the learning-rate
    schedule still aims at the full run: a later ``resume=True`` call finishes it exactly as one run would.
    """
    run_dir = Path(run_dir)
    rank, world, initialised_here = distributed_context()
    if device is None:
        device = torch.device(f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    use_bf16 = train_config.precision == "bf16" or (train_config.precision == "auto" and cuda)
    channels_last = train_config.channels_last == "on" or (train_config.channels_last == "auto" and cuda)
    if train_config.batch_size % world:
        raise InputError(f"batch size {train_config.batch_size} is not divisible by {world} processes")
    per_rank = train_config.batch_size // world
    conditional = model_config.num_classes is not None

    images = data.images.to(device)
    labels = data.labels.to(device) if conditional else None
    total_steps = total_steps_for(train_config, len(images))
    batches_per_epoch = len(images) // train_config.batch_size

    torch.manual_seed(train_config.seed)  # identical initial weights on every rank
    model = ConditionalUNet(model_config).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=train_config.lr, weight_decay=train_config.weight_decay, fused=cuda or None
    )
    noise_generator = torch.Generator(device=device).manual_seed(train_config.seed * 7919 + rank)
    start_step = 0
    if resume:
        state = load_resume_state(run_dir)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        noise_generator.set_state(state["noise_generator"][rank])
        start_step = int(state["step"])
        if start_step >= total_steps:
            raise InputError(f"run is already at step {start_step} of {total_steps}; nothing to resume", run_dir)

    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        ema = ema.to(memory_format=torch.channels_last)
    train_model: nn.Module = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
    if train_config.compile:
        train_model = torch.compile(train_model, mode=None if train_config.compile_mode == "default" else train_config.compile_mode)

    schedule = LinearSchedule(schedule_config)
    run_config = {
        "kind": kind,
        "model": model_config.to_dict(),
        "schedule": asdict(schedule_config),
        "data": asdict(data_info),
        "train": train_config.to_dict(),
        "total_steps": total_steps,
        "world_size": world,
        **(extra_config or {}),
    }

    def checkpoint(step: int, loss_value: float) -> None:
        noise_states = [noise_generator.get_state()]
        if world > 1:
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, noise_generator.get_state())
            noise_states = gathered
        if rank != 0:
            return
        resume_state = {
            "step": step,
            "model": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
            "ema": {k: v.detach().cpu().contiguous() for k, v in ema.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "noise_generator": noise_states,
        }
        config = {**run_config, "step": step, "loss": loss_value}
        weights_dtype = getattr(torch, train_config.weights_dtype)
        save_checkpoint(run_dir, config, ema.state_dict(), resume_state, weights_dtype)

    from tqdm import tqdm

    bar = tqdm(total=total_steps, initial=start_step, desc="training", unit="step", disable=not progress or rank != 0, dynamic_ncols=True)
    loss_sum = torch.zeros((), device=device)
    loss_count = 0
    last_loss = float("nan")
    train_seconds = 0.0
    compile_seconds = 0.0
    images_seen = 0
    step = start_step
    order = None
    order_epoch = -1
    tick = time.perf_counter()
    window_images = 0
    stop = False
    loss_history: list[float] = []
    end_step = min(total_steps, start_step + stop_after) if stop_after > 0 else total_steps
    while step < end_step and not stop:
        epoch, position = divmod(step, batches_per_epoch)
        if epoch != order_epoch:
            order = epoch_order(len(images), train_config.batch_size, train_config.seed, epoch).to(device)
            order_epoch = epoch
        index = order[position, rank * per_rank : (rank + 1) * per_rank]  # type: ignore[index]
        x0 = uint8_to_model(images[index])
        if channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        batch_labels = labels[index] if labels is not None else None

        lr = learning_rate(train_config, step, total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = epsilon_loss(
                train_model, schedule, x0, batch_labels, noise_generator,
                train_config.p_uncond if conditional else 0.0, model_config.null_label,
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if train_config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), train_config.grad_clip, foreach=True)
        optimizer.step()
        update_ema(ema, model, min(train_config.ema_decay, (1 + step) / (10 + step)))
        loss_sum += loss.detach()
        loss_count += 1
        step += 1
        images_seen += train_config.batch_size
        window_images += train_config.batch_size
        bar.update(1)

        if step == start_step + 1 and train_config.compile:
            # The first step of a compiled model includes compilation: keep it out of the throughput.
            if cuda:
                torch.cuda.synchronize(device)
            compile_seconds = time.perf_counter() - tick
            tick = time.perf_counter()
            window_images = 0
        if step % train_config.log_every == 0 or step == total_steps:
            last_loss = float(loss_sum / max(1, loss_count))  # the one host sync per window
            loss_history.append(last_loss)
            loss_sum.zero_()
            loss_count = 0
            now = time.perf_counter()
            train_seconds += now - tick
            rate = window_images / max(now - tick, 1e-9)
            tick, window_images = now, 0
            bar.set_postfix(loss=f"{last_loss:.4f}", img_s=f"{rate:,.0f}")
            if train_config.time_limit > 0:
                stop_flag = torch.tensor([train_seconds >= train_config.time_limit], device=device)
                if world > 1:
                    dist.broadcast(stop_flag, 0)
                stop = bool(stop_flag.item())
        if train_config.checkpoint_every > 0 and step % train_config.checkpoint_every == 0 and step < end_step and not stop:
            checkpoint(step, last_loss)
            tick = time.perf_counter()  # writing is not training
    if step % train_config.log_every != 0 and loss_count:
        last_loss = float(loss_sum / loss_count)
        train_seconds += time.perf_counter() - tick
    bar.close()
    checkpoint(step, last_loss)
    if world > 1:
        dist.barrier()
    if initialised_here:
        dist.destroy_process_group()
    return TrainResult(step, images_seen, train_seconds, compile_seconds, last_loss, run_dir, loss_history, model)


def resume_configs(run_dir: Path) -> tuple[dict[str, Any], UNetConfig, ScheduleConfig, TrainConfig]:
    """The configs a run was started with, so that --resume needs no other flag."""
    config = read_config(run_dir)
    if not (run_dir / STATE_FILE).is_file():
        raise InputError("--resume needs state.pt from an earlier run here", run_dir)
    train = TrainConfig(**{k: v for k, v in config["train"].items() if k in TrainConfig.__dataclass_fields__})
    return config, UNetConfig.from_dict(config["model"]), ScheduleConfig(**config["schedule"]), train

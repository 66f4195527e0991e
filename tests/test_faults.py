"""Faults from outside the input: a full disk while writing, and a training process killed outright.

A full disk is bad input like any other (one line naming the file, exit status 2, nothing half-written);
a ``digits train`` or ``adapt train`` killed with SIGKILL leaves a run folder that ``--resume`` either
finishes exactly as an uninterrupted run would, or refuses with one line.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from diffadapt.diffusion.checkpoint import DIGITS_KIND, load_checkpoint
from diffadapt.errors import InputError
from diffadapt.io import atomic_dir, atomic_path, save_weights

REPO = Path(__file__).resolve().parents[1]
# The smallest network the options allow, on the embedded MNIST: a step takes milliseconds.
TINY_TRAIN = ("--data", "mnist", "--batch-size", "8", "--base-channels", "8", "--channel-mults", "1", "--res-blocks", "1",
              "--attention-levels", "", "--timesteps", "10", "--warmup-steps", "1", "--log-every", "10", "--no-progress")
FULL_DISK = "no space left on device"


def no_space(filename: str | None = None) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)


def assert_one_line_error(code: int, stderr: str, *fragments: str) -> str:
    message = stderr.strip()
    assert code == 2, stderr
    assert message.startswith("error: ") and "\n" not in message and "Traceback" not in message, stderr
    for fragment in fragments:
        assert fragment in message, message
    return message


def litter(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".tmp-part" in p.name)


@pytest.fixture
def one_thread():
    """Two shared cores: torch's default thread pool makes tiny steps ten times slower than one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- a full disk, simulated: the mapping is tested on every machine --------------------------------------


def test_atomic_path_on_a_full_disk_names_the_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "table.csv"
    with pytest.raises(InputError, match=f"table.csv: {FULL_DISK}"), atomic_path(target):
        raise no_space()
    assert not target.exists() and litter(tmp_path) == []


def test_a_wrapped_no_space_error_is_recognised(tmp_path):
    # torch.save to a file object raises RuntimeError("... unexpected pos ...") from the OSError.
    target = tmp_path / "state.pt"
    with pytest.raises(InputError, match=FULL_DISK), atomic_path(target):
        try:
            raise no_space()
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534") from None
    assert litter(tmp_path) == []


def test_a_runtime_error_counts_as_a_full_disk_only_when_the_disk_is_full(tmp_path, monkeypatch):
    # torch.save to a path says only "unexpected pos": the free space decides.
    import diffadapt.io as io_module

    target = tmp_path / "state.pt"
    monkeypatch.setattr(io_module, "free_bytes", lambda folder: 4096)
    with pytest.raises(InputError, match=FULL_DISK), atomic_path(target):
        raise RuntimeError("unexpected pos 576 vs 534")
    monkeypatch.setattr(io_module, "free_bytes", lambda folder: 10 << 30)
    with pytest.raises(RuntimeError, match="unexpected pos"), atomic_path(target):
        raise RuntimeError("unexpected pos 576 vs 534")
    assert not target.exists() and litter(tmp_path) == []


def test_save_weights_maps_write_errors(tmp_path, monkeypatch):
    real_write = Path.write_bytes

    def full(self, data):
        real_write(self, b"partial")
        raise no_space(str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    target = tmp_path / "model.safetensors"
    with pytest.raises(InputError, match=f"model.safetensors: {FULL_DISK}"):
        save_weights(target, {"w": torch.ones(2)}, {})

    def broken(self, data):
        raise OSError(errno.EIO, "Input/output error", str(self))

    monkeypatch.setattr(Path, "write_bytes", broken)
    with pytest.raises(InputError, match="cannot write weights .Input/output error"):
        save_weights(target, {"w": torch.ones(2)}, {})
    monkeypatch.setattr(Path, "write_bytes", real_write)
    assert not target.exists() and litter(tmp_path) == []


def test_atomic_dir_on_a_full_disk_names_the_folder(tmp_path, monkeypatch):
    out = tmp_path / "gen"
    written = []

    def full_after_two(path, image):
        if len(written) == 2:
            raise no_space(str(path))
        Path(path).write_bytes(b"png")
        written.append(path)

    with pytest.raises(InputError, match=f"gen: {FULL_DISK}"), atomic_dir(out) as tmp:
        for i in range(5):
            full_after_two(tmp / f"{i}.png", np.zeros((2, 2, 1), np.uint8))
    assert not out.exists() and litter(tmp_path) == []


def test_an_error_inside_atomic_dir_names_the_output_not_the_temporary(tmp_path):
    out = tmp_path / "export"
    with pytest.raises(InputError) as raised, atomic_dir(out) as tmp:
        with atomic_path(tmp / "unet" / "model.safetensors"):
            raise no_space()
    assert str(raised.value).startswith(f"{out}/unet/model.safetensors: {FULL_DISK}"), raised.value
    assert ".tmp-part" not in str(raised.value)


def test_cli_last_resort_for_a_full_disk(run_cli, tmp_path, monkeypatch):
    import diffadapt.apps.digits.training as training

    def full(*args, **kwargs):
        raise no_space(str(tmp_path / "run" / "somefile"))

    monkeypatch.setattr(training, "train_digits", full)
    code, _, stderr = run_cli("digits", "train", "--out", tmp_path / "run")
    assert_one_line_error(code, stderr, "somefile", FULL_DISK)


def test_cli_other_os_errors_still_crash(run_cli, tmp_path, monkeypatch):
    import diffadapt.apps.digits.training as training

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(training, "train_digits", broken)
    with pytest.raises(OSError, match="Input/output error"):
        run_cli("digits", "train", "--out", tmp_path / "run")


def test_train_whose_first_checkpoint_fails_leaves_no_run_folder(run_cli, tmp_path, monkeypatch, one_thread):
    real_write = Path.write_bytes

    def full(self, data):  # the weights' write only: metrics.csv is written (and must be taken back) first
        if "model.safetensors" in self.name:
            raise no_space(str(self))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    out = tmp_path / "runs" / "tiny"
    code, _, stderr = run_cli("digits", "train", "--out", out, "--steps", "3", *TINY_TRAIN)
    assert_one_line_error(code, stderr, str(out / "model.safetensors"), FULL_DISK)
    assert not (tmp_path / "runs").exists(), "metrics.csv written before the failed checkpoint must go too"


def test_train_whose_later_checkpoint_fails_keeps_the_earlier_one(run_cli, tmp_path, monkeypatch, one_thread):
    import diffadapt.diffusion.checkpoint as checkpoint

    saves = []
    real_save = torch.save

    def full_on_second(obj, handle, *args, **kwargs):  # the state is saved to an open file
        saves.append(handle)
        if len(saves) == 2:
            handle.write(b"partial")
            raise no_space(handle.name)
        real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", full_on_second)
    out = tmp_path / "run"
    code, _, stderr = run_cli("digits", "train", "--out", out, "--steps", "20", "--checkpoint-every", "10", *TINY_TRAIN)
    assert_one_line_error(code, stderr, str(out / "state.pt"), FULL_DISK)
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    assert litter(tmp_path) == []
    config, _ = load_checkpoint(out, DIGITS_KIND)
    assert config["step"] == 10
    code, stdout, stderr = run_cli("digits", "train", "--out", out, "--resume", "--no-progress")
    assert code == 0 and "trained to step 20" in stdout, stderr


# --- a full disk, for real: a small tmpfs (needs root) ---------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs at tmp_path/disk, unmounted afterwards; skipped where it cannot be mounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the simulated full-disk tests above still run")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "--lazy", str(disk)], check=False)  # lazy: an fd the in-process CLI still holds must not keep it mounted


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` up to ``leave`` bytes free."""
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    (disk / "filler").write_bytes(b"\0" * max(0, free - leave))


def test_full_tmpfs_export(run_cli, small_disk):
    code, _, stderr = run_cli("digits", "export", small_disk / "exp")
    assert_one_line_error(code, stderr, str(small_disk / "exp"), FULL_DISK)
    assert sorted(p.name for p in small_disk.iterdir()) == []


def test_full_tmpfs_generate(run_cli, small_disk, one_thread):
    fill(small_disk, 40 << 10)
    code, _, stderr = run_cli("digits", "generate", small_disk / "gen", "--per-class", "20", "--steps", "1", "--method", "ddim")
    assert_one_line_error(code, stderr, str(small_disk / "gen"), FULL_DISK)
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


@pytest.mark.parametrize("leave", [100 << 10, 420 << 10], ids=["first-checkpoint", "second-checkpoint"])
def test_full_tmpfs_train(run_cli, small_disk, leave, one_thread):
    fill(small_disk, leave)
    out = small_disk / "tr"
    code, _, stderr = run_cli("digits", "train", "--out", out, "--steps", "20", "--checkpoint-every", "10", *TINY_TRAIN)
    assert_one_line_error(code, stderr, str(out), FULL_DISK)
    assert litter(small_disk) == []
    if not out.exists():
        return  # the first checkpoint did not fit: nothing of the run is left
    config, _ = load_checkpoint(out, DIGITS_KIND)  # an earlier checkpoint stands, whole
    assert config["step"] == 10
    (small_disk / "filler").unlink()
    code, stdout, stderr = run_cli("digits", "train", "--out", out, "--resume", "--no-progress")
    assert code == 0 and "trained to step 20" in stdout, stderr


# --- kill -9, then --resume ------------------------------------------------------------------------------


def diffadapt(*args: str | Path, wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "-m", "diffadapt", *map(str, args)]
    if wait:
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)


def kill_when(process: subprocess.Popen, ready, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, f"training ended before it could be killed: {process.stderr.read()}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


def weights_and_state(run: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    _, weights = load_checkpoint(run, DIGITS_KIND)
    state = torch.load(run / "state.pt", weights_only=True)
    return weights, state["model"]


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path):
    settings = ("--steps", "60", "--checkpoint-every", "10", *TINY_TRAIN)
    straight = diffadapt("digits", "train", "--out", tmp_path / "straight", *settings)
    assert straight.returncode == 0, straight.stderr

    # Killed between checkpoints: as soon as the first one is committed (config.json is written last).
    killed = tmp_path / "killed"
    kill_when(diffadapt("digits", "train", "--out", killed, *settings, wait=False), lambda: (killed / "config.json").exists())
    config, _ = load_checkpoint(killed, DIGITS_KIND)  # what it left loads
    assert 10 <= config["step"] < 60
    resumed = diffadapt("digits", "train", "--out", killed, "--resume", "--no-progress")
    assert resumed.returncode == 0 and "trained to step 60" in resumed.stdout, resumed.stderr
    assert litter(killed) == [], "the resumed run removes the temporaries of the killed one"

    expected_weights, expected_state = weights_and_state(tmp_path / "straight")
    weights, state = weights_and_state(killed)
    assert expected_weights.keys() == weights.keys() and expected_state.keys() == state.keys()
    for key in expected_weights:
        assert torch.equal(expected_weights[key], weights[key]), key
    for key in expected_state:
        assert torch.equal(expected_state[key], state[key]), key


def test_kill_9_during_the_first_checkpoint_leaves_a_folder_resume_refuses(tmp_path):
    # Killed as soon as the run folder appears: before config.json, the commit point, in all likelihood.
    early = tmp_path / "early"
    kill_when(diffadapt("digits", "train", "--out", early, "--steps", "60", "--checkpoint-every", "10", *TINY_TRAIN, wait=False),
              early.exists)
    resumed = diffadapt("digits", "train", "--out", early, "--resume", "--no-progress")
    if (early / "config.json").exists():  # the kill came after the commit: the run loads and finishes
        load_checkpoint(early, DIGITS_KIND)
        assert resumed.returncode == 0, resumed.stderr
    else:
        assert_one_line_error(resumed.returncode, resumed.stderr, str(early))
        # ... and a new run may start there.
        fresh = diffadapt("digits", "train", "--out", early, "--steps", "10", *TINY_TRAIN)
        assert fresh.returncode == 0, fresh.stderr
        load_checkpoint(early, DIGITS_KIND)


# adapt train: seeds are the unit of resumption (a seed folder is complete once its config.json is written).
TINY_ADAPT = ("adapt", "train", "--source", "mnistm", "--target", "usps", "--method", "source", "--epochs", "1", "--batch-size", "512",
              "--no-progress")


def adapt_weights(run: Path, seed: int) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run / f"seed{seed}" / "model.safetensors")


@pytest.fixture(scope="module")
def straight_adapt_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("adapt") / "straight"
    straight = diffadapt(*TINY_ADAPT, "--seeds", "0,1", "--out", run)
    assert straight.returncode == 0, straight.stderr
    return run


@pytest.mark.parametrize("delay", [0.0, 0.5])
def test_kill_9_of_adapt_train_then_resume_matches_an_uninterrupted_run(tmp_path, delay, straight_adapt_run):
    from diffadapt.apps.adaptation.runs import load_run

    # Killed once seed 0 is saved: at once (seed 1 not begun) or part-way into seed 1 (a seed of these settings
    # trains for several seconds on one thread, so 0.5 s falls inside it).
    killed = tmp_path / "killed"
    seed0 = killed / "seed0" / "config.json"
    process = diffadapt(*TINY_ADAPT, "--seeds", "0,1", "--out", killed, wait=False)

    def ready() -> bool:
        if not seed0.exists():
            return False
        time.sleep(delay)
        return True

    kill_when(process, ready)
    load_run(killed / "seed0")  # what it left loads
    assert not (killed / "seed1" / "config.json").exists() or delay > 0

    again = diffadapt(*TINY_ADAPT, "--seeds", "0,1", "--out", killed)
    assert again.returncode == 2 and "--resume" in again.stderr, "without --resume a trained seed is never overwritten"
    resumed = diffadapt(*TINY_ADAPT, "--seeds", "0,1", "--out", killed, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "seed 0: already trained" in resumed.stdout
    assert litter(killed) == [], "no temporaries of the killed run are left"
    for seed in (0, 1):
        expected, weights = adapt_weights(straight_adapt_run, seed), adapt_weights(killed, seed)
        assert expected.keys() == weights.keys()
        for key in expected:
            assert torch.equal(expected[key], weights[key]), (seed, key)


def test_adapt_resume_refuses_another_run_in_the_folder(tmp_path):
    run = tmp_path / "run"
    first = diffadapt(*TINY_ADAPT, "--seeds", "0", "--out", run)
    assert first.returncode == 0, first.stderr
    other = diffadapt(*TINY_ADAPT[:-1], "--lr", "0.003", "--no-progress", "--seeds", "0,1", "--out", run, "--resume")
    assert_one_line_error(other.returncode, other.stderr, str(run / "seed0" / "config.json"), "lr", "--resume")
    assert not (run / "seed1").exists()
    other_target = diffadapt(*TINY_ADAPT[:5], "mnist", *TINY_ADAPT[6:], "--seeds", "0", "--out", run, "--resume")
    assert_one_line_error(other_target.returncode, other_target.stderr, "target.spec")

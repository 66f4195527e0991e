"""Files in and out, in one place: atomic writes, safetensors weights, strict state dicts, safe torch.load,
JSON configs.

Atomic output: every file and folder the toolkit writes appears whole or not at all. Work is written to a
temporary sibling (same folder, so the final ``os.replace`` is a rename on one file system) and renamed into
place only when complete; on any exception, and on SIGTERM (see :func:`terminate_as_interrupt`), the
temporary is removed. Temporaries are named ``.NAME.*.tmp-part``; a later write of the same NAME removes
stale ones left by a process that was killed outright (SIGKILL, power loss).

A full disk (ENOSPC, or a quota: EDQUOT) while writing is bad input too, not a crash: the temporary is
removed and the writer raises :class:`~diffadapt.errors.InputError` "no space left on device" naming the
file it was writing (:func:`no_space_error`), whatever library did the writing.

Reading: every reader raises :class:`~diffadapt.errors.InputError` naming the file, never a library's own
exception type.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import signal
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save

from diffadapt.errors import InputError

TMP_SUFFIX = ".tmp-part"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp and mkdtemp create private (0600 / 0700) entries; outputs get the usual permissions instead.
FILE_MODE = 0o666 & ~_current_umask()
DIR_MODE = 0o777 & ~_current_umask()


def terminate_as_interrupt() -> None:
    """Make SIGTERM raise KeyboardInterrupt, as SIGINT does, so ``finally`` blocks remove temporaries.

    Called once by the CLI's entry point (only from the main thread; a no-op elsewhere).
    """

    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt(f"signal {signum}")

    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, handler)


def _temporary_name(path: Path) -> str:
    # The owner's pid is in the name, so a later run can tell litter (dead owner) from a concurrent write.
    return f".{path.name}.{os.getpid()}."


def remove_stale_temporaries(path: Path) -> int:
    """Remove ``.NAME.PID.*.tmp-part`` siblings of ``path`` whose process is gone; returns how many."""
    removed = 0
    if not path.parent.is_dir():
        return 0
    for entry in path.parent.glob(f".{glob_escape(path.name)}.*{TMP_SUFFIX}"):
        pid_text = entry.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid_text.isdigit() and _process_alive(int(pid_text)):
            continue  # a write in progress
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
        removed += 1
    return removed


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# How libraries that wrap the OS error in their own type word it (safetensors: "... (os error 28)").
NO_SPACE_WORDS = ("no space left on device", "disk quota exceeded", f"os error {errno.ENOSPC})", f"os error {errno.EDQUOT})")
NEARLY_FULL_BYTES = 1 << 20


# A path the system refuses for reasons the user can fix (a name over 255 bytes, a folder they may not enter, a
# link loop, a file where a folder was meant, a read-only place): bad input, reported in one line like the rest.
PATH_PROBLEM_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EACCES, errno.EPERM, errno.ELOOP, errno.ENOTDIR, errno.EISDIR,
                                 errno.EROFS, errno.ENOENT, errno.ENXIO})


def path_problem(exc: BaseException) -> InputError | None:
    """The one-line InputError for an OSError about a path the user gave (see PATH_PROBLEM_ERRNOS), else None."""
    if not isinstance(exc, OSError) or exc.errno not in PATH_PROBLEM_ERRNOS:
        return None
    name = exc.filename if exc.filename is not None else None
    shown = os.fsdecode(name) if isinstance(name, (str, bytes)) else name
    if isinstance(shown, str) and len(shown) > 120:
        shown = shown[:60] + "..." + shown[-40:]
    return InputError((exc.strerror or os.strerror(exc.errno)).lower(), shown)


def is_no_space(exc: BaseException) -> bool:
    """``exc``, or an exception it was raised from or while handling, says the disk (or a quota) is full."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in NO_SPACE_ERRNOS:
            return True
        if any(words in str(current).lower() for words in NO_SPACE_WORDS):
            return True
        current = current.__cause__ or current.__context__
    return False


def free_bytes(folder: str | Path) -> int | None:
    """Bytes an unprivileged writer may still use on ``folder``'s file system (None if it cannot be asked)."""
    try:
        stats = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return stats.f_bavail * stats.f_frsize


def no_space_error(exc: BaseException, path: Path, tmp: Path | None = None) -> InputError | None:
    """The one-line error for a write of ``path`` that failed on a full disk; None for any other failure.

    Besides the OS's own ENOSPC and EDQUOT (however wrapped), a RuntimeError without an errno (torch.save to
    a path says only "unexpected pos ...") counts as a full disk when it happens while the file system
    holding the temporary ``tmp`` has less than a MiB left: a write that fails part-way leaves it full.
    """
    if isinstance(exc, InputError):
        return None
    full = is_no_space(exc)
    if not full and tmp is not None and isinstance(exc, RuntimeError):
        left = free_bytes(tmp.parent)
        full = left is not None and left < NEARLY_FULL_BYTES
    if not full:
        return None
    return InputError("no space left on device (or over the disk quota) while writing; free some space or write elsewhere", path)


def _prepare_parent(path: Path) -> None:
    """Create the parent folder, with a one-line error when a regular file stands in the way."""
    for parent in [path.parent, *path.parent.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"cannot write here: {parent} is a file, not a folder", path)
            break
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the output folder ({exc.strerror or exc})", path.parent) from None


def check_png_name(path: str | Path, what: str = "the output") -> None:
    """A figure's output: a file name ending in .png (the bytes written are PNG whatever the name; ``g.jpg`` or
    ``x.png/``, meant as a folder, would be wrong names for them)."""
    text = os.fspath(path)
    if text.endswith(("/", os.sep)) or Path(text).suffix.lower() != ".png":
        raise InputError(f"{what} is a PNG file: its name must end in .png", path)


def check_output_files(*paths: str | Path) -> None:
    """Each path can take a new file: it is absent or a regular file. A command that writes several files
    checks them all first, so that a bad last one does not leave the first ones written."""
    for path in map(Path, paths):
        if path.is_dir():
            raise InputError("is a folder; expected a file name", path)
        if path.exists() and not path.is_file():
            # A rename would put a regular file where a device, pipe or socket was (as root, even /dev/null).
            raise InputError("is a device, pipe or socket, not a file; expected a file name", path)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    >>> with atomic_path("out.png") as tmp:
    ...     image.save(tmp, format="PNG")  # doctest: +SKIP
    """
    path = Path(path)
    check_output_files(path)
    _prepare_parent(path)
    remove_stale_temporaries(path)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=_temporary_name(path), suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise no_space_error(exc, path) or InputError(f"cannot write ({exc.strerror or exc})", path) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except Exception as exc:
        full = no_space_error(exc, path, tmp)
        if full is None:
            raise
        raise full from None
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, document: Any) -> None:
    """``document`` as indented JSON; NaN and infinity are refused (they are not JSON)."""
    write_text_atomic(path, json.dumps(document, indent=2, allow_nan=False, default=str) + "\n")


def overlaps(a: str | Path, b: str | Path) -> bool:
    """Whether two paths are the same or one lies inside the other (after resolving links and ``..``)."""
    a, b = Path(a).resolve(), Path(b).resolve()
    return a == b or a in b.parents or b in a.parents


def check_not_an_input(output: str | Path, inputs: list[str | Path], option: str, read_suffixes: set[str] | None = None,
                       may_lie_inside: bool = False) -> None:
    """Refuse, before any work, an output that would overwrite or change what the command reads.

    The output may never be an input or hold one (``--overwrite`` would delete it). Lying inside an input folder
    is refused too, unless ``may_lie_inside`` (the command reads named files there, which a new subfolder does
    not change) or, for a file output, its suffix is not in ``read_suffixes`` (a CSV beside the images is fine,
    a ``.png`` among them is not). Inputs that are not paths here (an embedded domain's name) are skipped."""
    target = Path(output).resolve()
    for source in inputs:
        if not Path(source).exists() or not overlaps(target, source):
            continue
        inside = Path(source).resolve() in target.parents
        if not inside or (not may_lie_inside and (read_suffixes is None or target.suffix.lower() in read_suffixes)):
            raise InputError(f"{option} would overwrite or change the input {source}; write elsewhere", output)


def check_output_folder(path: str | Path, overwrite: bool = False) -> None:
    """The checks :func:`atomic_dir` makes, for a command to run before its work: ``path`` is absent, an
    empty folder, or (with ``overwrite``) a folder to replace; no file stands where a parent folder must be;
    it is not the current folder or one holding it (which a rename cannot replace)."""
    path = Path(path)
    cwd = Path.cwd().resolve()
    if path.resolve() in (cwd, *cwd.parents):
        raise InputError("is the current folder or holds it; name a new folder for the output", path)
    if path.exists() and not path.is_dir():
        raise InputError("exists and is not a folder", path)
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise InputError("output folder is not empty (pass --overwrite to replace it)", path)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"cannot write here: {parent} is a file, not a folder", path)
            break


@contextlib.contextmanager
def atomic_dir(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; move it onto ``path`` if the block succeeds.

    ``path`` may already exist as an empty folder (course scripts create their output folder first).
    A non-empty ``path`` is an error unless ``overwrite`` is set, in which case it is replaced whole.
    """
    path = Path(path)
    check_output_folder(path, overwrite)
    _prepare_parent(path)
    remove_stale_temporaries(path)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=_temporary_name(path), suffix=TMP_SUFFIX, dir=path.parent))
    except OSError as exc:
        raise no_space_error(exc, path) or InputError(f"cannot write ({exc.strerror or exc})", path) from None
    try:
        yield tmp
        os.chmod(tmp, DIR_MODE)
        if not overwrite:
            # Checked again at the end, by the rename itself (which fails onto a folder that is not empty): a folder
            # that appeared or filled while the command ran (a second command on the same path) is not ours to replace.
            try:
                os.replace(tmp, path)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                    raise
                raise InputError("was filled by something else while this command ran; it is left as it is and this "
                                 "command's output was not kept (pass --overwrite to replace it)", path) from None
        elif path.is_dir():
            old = Path(tempfile.mkdtemp(prefix=_temporary_name(path), suffix=TMP_SUFFIX, dir=path.parent))
            try:
                os.replace(path, old / "x")
                try:
                    os.replace(tmp, path)
                except BaseException:
                    os.replace(old / "x", path)  # the old output back where it was
                    raise
            finally:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except InputError as exc:
        if str(tmp) not in str(exc):
            raise
        raise InputError(str(exc).replace(str(tmp), str(path))) from None  # the temporary is gone: name the output
    except Exception as exc:
        full = no_space_error(exc, path, tmp)
        if full is None:
            raise
        raise full from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write one (H, W, C) or (H, W) uint8 image as PNG, without a temporary of its own: for files inside
    a folder that is itself written atomically (:func:`atomic_dir`)."""
    if image.dtype != np.uint8:
        raise TypeError(f"expected uint8 image, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    Image.fromarray(image).save(path, format="PNG")


# --- weights -------------------------------------------------------------------------------------------


def save_weights(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str], dtype: torch.dtype | None = None) -> None:
    """A state dict as safetensors (floating tensors cast to ``dtype`` when given), atomically."""
    tensors = {k: (v.detach().to(dtype) if dtype is not None and v.is_floating_point() else v.detach()).cpu().contiguous() for k, v in state.items()}
    blob = _sorted_metadata(save(tensors, metadata=metadata))
    with atomic_path(path) as tmp:
        try:
            tmp.write_bytes(blob)
        except OSError as exc:
            if is_no_space(exc) or exc.errno != errno.EIO:
                raise  # a full disk: atomic_path says so; anything else is not the user's input
            raise InputError(f"cannot write weights ({exc.strerror})", path) from None


def _sorted_metadata(blob: bytes) -> bytes:
    """A safetensors file with its ``__metadata__`` keys in sorted order. safetensors writes them from a hash
    map whose order changes from process to process, so two runs of one seed gave files that differ in bytes;
    the header keeps its length (the same keys and values, padded with spaces as safetensors pads it)."""
    length = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + length])
    if not isinstance(header.get("__metadata__"), dict):
        return blob
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(text) > length:
        return blob  # not the compact form expected; keep safetensors' own bytes
    return blob[:8] + text.ljust(length, b" ") + blob[8 + length:]


# The largest weights we read are the course's face UNet (under 0.5 GiB in float32); a header declaring more
# than this is refused before any tensor is read, as a decoded array is (data/formats/checks.py).
MAX_WEIGHTS_BYTES = 4 * 2**30
# safetensors dtype names -> bytes per value; anything else is read and then refused by check_weight_tensors.
_DECLARED_ITEMSIZE = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2}


def load_weights(path: Path, expected: Mapping[str, torch.Tensor] | None = None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a safetensors file; non-finite floating values are refused.

    The header is checked before any tensor is read: the bytes it declares (at most MAX_WEIGHTS_BYTES) and,
    when ``expected`` (a model's state dict, a meta-device one will do) is given, its keys and shapes, so a
    file declaring a tensor of the wrong shape is refused without reading it."""
    path = Path(path)
    require_file(path, "a weights file", "weights file not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            slices = {key: handle.get_slice(key) for key in handle.keys()}
            declared = {key: (tuple(part.get_shape()), part.get_dtype()) for key, part in slices.items()}
            total = sum(math.prod(shape) * _DECLARED_ITEMSIZE.get(dtype, 1) for shape, dtype in declared.values())
            if total > MAX_WEIGHTS_BYTES:
                raise InputError(f"header declares {total / 2**30:.1f} GiB of tensors, over the {MAX_WEIGHTS_BYTES / 2**30:.0f} GiB "
                                 "of any model this reads", path)
            if expected is not None:
                with torch.device("meta"):
                    check_weights_fit(expected, {key: torch.empty(shape, dtype=torch.int64 if dtype[0] in "IU" else torch.float32)
                                                 for key, (shape, dtype) in declared.items()}, path)
            tensors = {key: handle.get_tensor(key) for key in declared}
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors' own error type has moved between releases
        raise InputError(f"not a readable safetensors file ({type(exc).__name__}: {exc})", path) from None
    check_weight_tensors(tensors, path)
    return tensors, metadata


WEIGHT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int64)  # int64: batch-norm step counts


def check_weight_tensors(tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    """Refuse what no model's weights are: a sparse or quantised tensor, a dtype outside ``WEIGHT_DTYPES``
    (float8, complex, bool, int32 ...: torch would cast them silently or fail deep inside), NaN or infinity."""
    allowed = ", ".join(str(dtype).removeprefix("torch.") for dtype in WEIGHT_DTYPES)
    for key, value in tensors.items():
        if value.layout != torch.strided or value.is_quantized or value.is_meta or value.dtype not in WEIGHT_DTYPES:
            kind = f"{value.layout}" if value.layout != torch.strided else "a meta tensor (no values)" if value.is_meta else f"{value.dtype}"
            raise InputError(f"tensor {key!r} is {kind.removeprefix('torch.')}; weights must be dense {allowed}", path)
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise InputError(f"tensor {key!r} holds NaN or infinite values", path)


def load_state_dict_strict(module: torch.nn.Module, weights: dict[str, torch.Tensor], source: Path | str) -> None:
    """load_state_dict(strict) with a one-line error naming the file and the first mismatches."""
    check_weights_fit(module.state_dict(), weights, source)
    module.load_state_dict(weights, strict=True)


# The shipped classifiers' largest |value| in any floating tensor is 190 (an adaptation run's batch-norm
# running_var; weights and biases stay below 20; the judge's below 3). A tensor beyond MAX_WEIGHT (over 5,000
# times that) is a damaged or forged file: a bias or running_mean of 1e30 is finite, so it loads, and then
# gives every image the same label or a Fréchet distance of 1e35.
MAX_WEIGHT = 1e6


def check_weight_magnitudes(weights: dict[str, torch.Tensor], source: Path) -> None:
    """Every floating tensor of a classifier within +-MAX_WEIGHT (load_weights already refused NaN and infinity)."""
    for key, value in weights.items():
        if value.is_floating_point() and value.numel():
            largest = float(value.detach().abs().max())
            if largest > MAX_WEIGHT:
                raise InputError(f"tensor {key!r} holds a value of magnitude {largest:.3g}, beyond the {MAX_WEIGHT:.0e} of any "
                                 f"trained classifier's weights and batch-norm statistics", source)


def check_weights_fit(expected: dict[str, torch.Tensor], weights: dict[str, torch.Tensor], source: Path | str) -> None:
    """The keys, shapes and kinds (float or integer) of ``weights`` are those of ``expected``, a model's
    state dict (a meta-device one will do: a config declaring a huge network is refused before it is built)."""
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    wrong_shape = [k for k in expected if k in weights and tuple(weights[k].shape) != tuple(expected[k].shape)]
    # load_state_dict would cast an integer tensor into a float parameter (and back) without a word.
    wrong_kind = [k for k in expected if k in weights and weights[k].is_floating_point() != expected[k].is_floating_point()]
    if missing or unexpected or wrong_shape or wrong_kind:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if wrong_shape:
            k = wrong_shape[0]
            parts.append(f"{len(wrong_shape)} keys of the wrong shape (e.g. {k}: {tuple(weights[k].shape)} vs {tuple(expected[k].shape)})")
        if wrong_kind:
            k = wrong_kind[0]
            parts.append(f"{len(wrong_kind)} keys of the wrong type (e.g. {k}: {weights[k].dtype} vs {expected[k].dtype})")
        raise InputError("weights do not fit this model: " + "; ".join(parts), source)


def torch_file_bytes(path: Path) -> int:
    """The bytes a PyTorch file's tensors take once loaded: the members' declared sizes for the zip format
    (whose storages may be deflated: a few MB on disk can declare gigabytes), the file's size for the legacy
    format, which stores them raw."""
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        return path.stat().st_size
    except (OSError, ValueError, EOFError) as exc:  # a damaged central directory
        raise InputError(f"not a loadable PyTorch file ({type(exc).__name__})", path) from None


def safe_torch_load(path: str | Path, what: str, max_bytes: int | None = None) -> Any:
    """torch.load with weights_only=True: tensors and plain containers only, so a file can never run code;
    a file whose tensors would take more than ``max_bytes`` (default MAX_WEIGHTS_BYTES) is refused before any is read."""
    path = Path(path)
    max_bytes = MAX_WEIGHTS_BYTES if max_bytes is None else max_bytes
    require_file(path, f"a {what}", f"{what} not found")
    declared = torch_file_bytes(path)
    if declared > max_bytes:
        raise InputError(f"its data would take {declared / 2**20:,.0f} MiB in memory, more than a {what} may ({max_bytes / 2**20:,.0f} MiB)", path)
    try:
        # torch warns about odd files (an unusual pickle protocol) before failing on them: the one-line
        # error below is the whole report, so its warnings are held back.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for damaged files and for pickles that would run code
        raise InputError(f"not a loadable PyTorch file ({type(exc).__name__})", path) from None


def file_budget(module: torch.nn.Module) -> int:
    """The most bytes a file of ``module``'s weights may load: four float32 copies of its state (float64
    weights, or weights beside an Adam optimizer's two moments) and a MiB of records."""
    return 4 * sum(4 * t.numel() for t in module.state_dict().values()) + (1 << 20)


def load_state_dict_file(path: str | Path, what: str, max_bytes: int | None = None) -> dict[str, torch.Tensor]:
    """A plain state dict, or one wrapped as ``{'state_dict': ...}`` (the course's checkpoints)."""
    state = safe_torch_load(path, what, max_bytes)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError("expected a state dict of tensors (or {'state_dict': ...})", path)
    check_weight_tensors(state, path)
    return state


# --- configs -------------------------------------------------------------------------------------------

CONFIG_FILE = "config.json"
SHIPPED = "default"  # written where a run folder is expected, it names the shipped checkpoint or judge
MAX_CONFIG_BYTES = 16 * 1024 * 1024


def require_file(path: Path, what: str, missing: str, missing_at: Path | None = None) -> None:
    """``path`` is a regular file (or a link to one); otherwise a one-line error that says what stands there
    instead of ``what`` ("a config file"), ``missing`` when nothing does (naming ``missing_at``, default ``path``)."""
    try:
        if path.is_file():
            return
        if path.is_dir():
            raise InputError(f"is a folder, but {what} is expected here", path)
        if path.exists() or path.is_symlink():
            raise InputError(f"is a device, pipe, socket or broken link, but {what} is expected here", path)
    except OSError as exc:  # a link loop, a name too long
        raise InputError(f"cannot be read as {what} ({exc.strerror or exc})", path) from None
    raise InputError(missing, missing_at or path)


def run_folder(path: Path, own_files: tuple[str, ...], what: str) -> Path:
    """The run folder ``path`` names: itself, or the folder of one of its own files (``own_files``, e.g. its
    config.json); any other file is refused, naming it, rather than standing for its folder."""
    if not path.is_file():
        return path
    if path.name not in own_files:
        raise InputError(f"is a file, but {what} is expected", path)
    return path.parent


def read_bytes_limited(path: str | Path, what: str, limit: int) -> bytes:
    """A file's bytes, refusing a folder, a missing or unreadable file and one over ``limit`` bytes (read no
    further than that) with a one-line error naming the file and what it should be."""
    path = Path(path)
    require_file(path, f"a {what} file", f"{what} file not found")
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror or exc})", path) from None
    if len(data) > limit:
        raise InputError(f"{what} file is larger than {limit // 2**20} MiB", path)
    return data


def decode_utf8(data: bytes, path: str | Path, advice: str = "") -> str:
    """``data`` as UTF-8 text, a leading byte-order mark dropped; a byte that is not UTF-8 is a one-line error
    naming the file, the byte and its row, followed by ``advice``."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = data[: exc.start].count(b"\n") + 1
        raise InputError(f"not UTF-8 text (byte {data[exc.start]:#04x}){advice}", path, row=row) from None


def read_json(path: str | Path) -> Any:
    """A JSON file; a missing, huge, undecodable or invalid file is a one-line error naming it."""
    path = Path(path)
    text = decode_utf8(read_bytes_limited(path, "config", MAX_CONFIG_BYTES), path, advice="; a JSON config is UTF-8")
    try:
        document = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise InputError(f"config is not valid JSON ({type(exc).__name__}: {exc})", path) from None
    try:  # an escaped lone surrogate ("\ud800") decodes to a str that no file or terminal can take later
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("config holds an escaped lone surrogate (\\ud800-\\udfff), which is no character", path) from None
    return document


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Python keeps the last of two equal keys; a reader that checks the first would be checking another file.
    document = dict(pairs)
    if len(document) < len(pairs):
        seen: set[str] = set()
        repeated = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ValueError(f"key {repeated!r:.60} appears twice in one object")
    return document


def _finite_float(text: str) -> float:
    # NaN and Infinity are refused as words (above) and as numbers too large for a float (1e999 -> inf).
    value = float(text)
    if not np.isfinite(value):
        raise ValueError(f"{text[:20]} is too large for a number")
    return value


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """A run folder's ``config.json`` as a dict (an object at the top level, not a list or a number)."""
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    require_file(path, f"a run's {CONFIG_FILE}", f"no {CONFIG_FILE} here: not a diffadapt run folder", run_dir)
    document = read_json(path)
    if not isinstance(document, dict):
        raise InputError(f"config must be a JSON object, found a {type(document).__name__}", path)
    return document

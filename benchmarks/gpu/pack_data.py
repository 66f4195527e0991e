"""Pack the real data a lent GPU machine needs into one folder under 64 MiB (the tool's working-tree limit).

MNIST-M images travel as lossless WebP (1.2 KB per 28x28 image against 1.6 KB for xz), so 48,000 training
images fit beside USPS, the MNIST test set, the course classifier and the code.

    python benchmarks/gpu/pack_data.py --out .devdata/gpu   # .devdata/ is git-ignored; carry it
"""

from __future__ import annotations

import argparse
import io
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def encode(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="WEBP", lossless=True, quality=100, method=4)
    return buffer.getvalue()


def pack_webp(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with ThreadPoolExecutor(4) as pool:
        blobs = list(pool.map(encode, images, chunksize=512))
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    return np.frombuffer(b"".join(blobs), dtype=np.uint8), offsets


def unpack_webp(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    raw = data.tobytes()

    def decode(i: int) -> np.ndarray:
        with Image.open(io.BytesIO(raw[offsets[i] : offsets[i + 1]])) as image:
            return np.asarray(image.convert("RGB"))

    with ThreadPoolExecutor(16) as pool:
        return np.stack(list(pool.map(decode, range(len(offsets) - 1), chunksize=512)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=".devdata/gpu")
    parser.add_argument("--mnistm-train", type=int, default=48000)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mnistm = np.load(SHARED / "mnistm28.npz")
    order = np.random.default_rng(0).permutation(len(mnistm["y_train"]))[: args.mnistm_train]
    data, offsets = pack_webp(mnistm["x_train"][order])
    np.savez(out / "mnistm_train_webp.npz", data=data, offsets=offsets, y=mnistm["y_train"][order], index=order)
    restored = unpack_webp(data, offsets)
    assert np.array_equal(restored, mnistm["x_train"][order]), "WebP packing must be lossless"
    for name in ("usps16_train.npz", "hw2_digit_classifier.pth"):
        shutil.copy(SHARED / name, out / name)
    (out / "mnist").mkdir(exist_ok=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(SHARED / "mnist" / name, out / "mnist" / name)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"packed {len(order)} MNIST-M images ({data.nbytes / 1e6:.1f} MB WebP); folder {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()

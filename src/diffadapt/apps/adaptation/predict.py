"""Predicting labels for a folder of target images: the graded ``image_name,label`` CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Literal

from diffadapt.adapt.stats import DomainStats
from diffadapt.adapt.trainer import predict
from diffadapt.apps.adaptation.runs import load_run
from diffadapt.data.formats.folders import read_unlabelled_folder
from diffadapt.data.memory import TensorImages
from diffadapt.io import write_text_atomic

Normalisation = Literal["target", "folder"]


def predict_folder(image_dir: str | Path, out_csv: str | Path, ckpt: str | Path, normalisation: Normalisation = "target") -> int:
    """Write ``image_name,label`` (header, one row per image, sorted by name); returns the row count.

    normalisation: ``target`` uses the target domain's training statistics stored in the checkpoint;
    ``folder`` uses the statistics of the images being predicted (for a domain the run never saw).
    """
    run = load_run(ckpt)
    digits = read_unlabelled_folder(image_dir, domain=run.document["target"]["domain"])
    data = TensorImages.from_digitset(digits, channels=run.config.channels, size=run.config.size, box=run.config.target_box)
    stats = run.target_stats if normalisation == "target" else DomainStats.of(data)
    labels = predict(run.model, data.images, stats).tolist()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image_name", "label"])
    writer.writerows(sorted(zip(digits.names or [], labels)))
    write_text_atomic(out_csv, buffer.getvalue())
    return len(labels)

"""Domain names: the canonical name of each known digit domain, guessing it from a path, and naming a folder
after it."""

from __future__ import annotations

import re
from pathlib import Path

KNOWN_DOMAINS = {
    "mnistm": "mnistm",
    "mnist_m": "mnistm",
    "mnist-m": "mnistm",
    "mnistm28": "mnistm",
    "svhn": "svhn",
    "usps": "usps",
    "usps16": "usps",
    "usps16_train": "usps",
    "mnist": "mnist",
}


def guess_domain(path: str | Path) -> str:
    """The domain a path holds, from its own name or its parents' (``.../digits/svhn/data`` -> svhn)."""
    path = Path(path)
    for part in [path.stem.lower(), *(p.name.lower() for p in path.parents)]:
        if part in KNOWN_DOMAINS:
            return KNOWN_DOMAINS[part]
        for prefix, domain in KNOWN_DOMAINS.items():
            if part.startswith(prefix + "_") or part.startswith(prefix + "-"):
                return domain
    return path.stem.lower() or "images"

DISPLAY_NAMES = {"mnistm": "MNIST-M", "mnist": "MNIST", "usps": "USPS", "svhn": "SVHN"}


def display_name(domain: str) -> str:
    """How tables and figures write a domain ("mnistm" -> "MNIST-M"); unknown names as they are."""
    return DISPLAY_NAMES.get(domain, domain)


def folder_name(domain: str) -> str:
    """The domain's name as one folder name that stays inside its parent: every character but letters, digits,
    ``_``, ``-`` and ``.`` becomes ``_`` and leading dots are dropped. A name comes from files a user may not
    have written (``domain.txt``, a run's config.json), so ``../../x`` must not become a path."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", domain).lstrip(".") or "images"

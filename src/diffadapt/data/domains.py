"""Domain names: the canonical name of each known digit domain and guessing it from a path."""

from __future__ import annotations

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

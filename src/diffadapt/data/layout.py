"""Where a domain's digits sit in the frame, and the boxes that bring two domains' digits to one height.

MNIST (and MNIST-M, made from it) size-normalises every digit into a 20x20 box centred in its 28x28 frame;
USPS scans are normalised to fill their 16x16 frame (measured on ../shared/data: mean digit height 19.8 of
28 for MNIST, 15.8 of 16 for USPS). Stretched to one frame size, a USPS digit is 1.4x as tall as an MNIST
digit. That alone separates the domains more than colour does: a classifier trained 2 epochs on MNIST-M
scores 0.740 on USPS val with USPS stretched to 28x28 and 0.960 with USPS put in the 20-pixel box
(2 CPU cores, see benchmarks/RESULTS.md). SVHN crops and unknown domains have no fixed layout and are left
as they are (shrinking the SVHN-like domain lowered that classifier's accuracy, 0.565 -> 0.355).
"""

from __future__ import annotations

# Fraction of the frame height that a domain's digits are normalised to fill.
DIGIT_HEIGHT_FRACTION: dict[str, float] = {"mnist": 20 / 28, "mnistm": 20 / 28, "usps": 1.0}


def matching_boxes(source_domain: str, target_domain: str, size: int) -> tuple[int, int]:
    """(source_box, target_box) in pixels for a size x size frame; 0 means "fill the frame as read".

    The domain whose digits fill more of their frame is shrunk into a centred box so that both domains'
    digits have one height; when either layout is unknown, or both agree, nothing changes.
    """
    source, target = DIGIT_HEIGHT_FRACTION.get(source_domain), DIGIT_HEIGHT_FRACTION.get(target_domain)
    if source is None or target is None or abs(source - target) < 1e-6:
        return 0, 0
    if target > source:
        return 0, round(size * source / target)
    return round(size * target / source), 0

"""Readers of the digit formats our users hold. Each returns ``{split: DigitSet}``."""

"""Digit generation: the graded images, the grid and reverse-process figures, diffusers export."""

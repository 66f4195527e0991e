"""Figures: labelled image grids and training curves."""

"""Adaptation runs: train-and-save for every seed, load, predict a folder, the table, t-SNE."""

"""Unsupervised domain adaptation: DANN with source-only and target-only baselines.

Layout after Transfer-Learning-Library: ``modules/`` holds the building blocks (the gradient reversal
layer, the networks), ``alignment/`` the adaptation method, and the trainer, prediction, table and t-SNE
sit beside them.
"""

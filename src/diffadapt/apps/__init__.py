"""Applications: the course's three problems built from the core packages.

- ``digits``: class-conditional generation of digit images, the report's digit figures, diffusers export;
- ``faces``: DDIM with pretrained face UNets (the course's, diffusers folders, our runs), the eta grid and
  interpolation figures;
- ``adaptation``: adaptation run folders (train and save, load), prediction CSVs, the table, t-SNE;
- ``report``: every part run from one config into a static HTML page (the demo is its embedded-data config).

Applications import the core (``data``, ``diffusion``, ``adapt``, ``evaluate``, ``viz``, ``io``) and, for the
report only, the other applications; the core never imports an application.
"""

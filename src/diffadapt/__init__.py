"""diffadapt: class-conditional diffusion, DDIM sampling and domain adaptation on small images."""

__version__ = "0.1.0"

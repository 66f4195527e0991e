"""DDIM on face UNets: loading the course UNet, diffusers folders and our runs; noise files; the figures."""

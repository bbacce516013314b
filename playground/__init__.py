"""Diffusion Playground: see how denoising diffusion models work, and make one of your own."""

__version__ = "0.1.0"

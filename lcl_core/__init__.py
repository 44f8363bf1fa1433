"""Latent Compression Learning: vision pre-training on interleaved image-text data."""

__version__ = "0.1.0"

"""pixelgate: a self-hosted image-generation gateway."""

__version__ = "0.1.0"

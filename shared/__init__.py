"""autotune: keep a fine-tuned chat model trained, deployed and served without anyone babysitting it."""

__version__ = "0.1.0"

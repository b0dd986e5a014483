"""fngw: a function gateway for Jupyter kernels."""

__version__ = "0.1.0"

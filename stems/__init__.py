"""stems: map spiking neural networks onto SNN accelerators and price every mapping."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("stems")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

"""An example third-party plugin for ome-arrow-core (test fixture)."""

__version__ = "0.0.1"

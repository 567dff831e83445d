"""Sampan: the Docker architecture, layer for layer, in Python."""

__version__ = "0.1.0"

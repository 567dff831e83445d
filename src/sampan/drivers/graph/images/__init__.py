"""The image store: images over G1's layer store and content store.

Public interface: :class:`ImageStore` (load, save, import, commit, tag, untag, remove,
history, inspect, list, prune, disk usage, resolve) and the reference helpers.
"""

from .reference import Reference, familiar, parse_normalized, parse_tagged
from .store import ExternalLayer, ImageStore, chain_id_of

__all__ = [
    "ExternalLayer",
    "ImageStore",
    "Reference",
    "chain_id_of",
    "familiar",
    "parse_normalized",
    "parse_tagged",
]

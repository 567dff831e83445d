"""Graph drivers: the content store, the layer store and the overlay and vfs drivers.

The image store (``sampan.drivers.graph.images``) builds on :class:`ContentStore` and
:class:`LayerStore`; the runtime only sees the :class:`Mount` list a read-write layer describes.
"""

from sampan.drivers.graph.content import ContentStore
from sampan.drivers.graph.driver import CHANGE_ADD, CHANGE_DELETE, CHANGE_MODIFY
from sampan.drivers.graph.layers import Change, Layer, LayerStore, Mount, chain_id_of

__all__ = [
    "CHANGE_ADD",
    "CHANGE_DELETE",
    "CHANGE_MODIFY",
    "Change",
    "ContentStore",
    "Layer",
    "LayerStore",
    "Mount",
    "chain_id_of",
]

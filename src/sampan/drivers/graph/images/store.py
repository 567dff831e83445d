"""The image store: images as configs over chains of layers, with names.

``ImageStore(root, layers, content)`` keeps its metadata in ``<root>/images.db`` (SQLite,
WAL; see ``metadata``), configs and manifests in the content store, and the layers in the
layer store. The daemon calls it from worker threads; every public method is safe to call
concurrently (writes serialise on one lock; unpacking layers happens outside it).

Image identity is Docker's: the ID is the sha256 of the config bytes; layers are chained
(``chain_id = diff_id`` for the bottom layer, ``sha256(parent_chain + " " + diff_id)``
above). Names are normalised references (``docker.io/library/busybox:latest``) and shown
in familiar form (``busybox:latest``).

Crash safety: an image appears in one transaction after its layers and config exist; layer
references taken by an unfinished operation are journalled and given back by
:meth:`recover` (run on open), unreferenced owned blobs are collected, and spool directories
are removed. A crash can at worst leak one layer reference (the instant between taking it
and journalling it), never publish a half image or release a layer twice.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import json
import os
import shutil
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from sampan import errdefs

from . import timestamps
from .archive_load import LayerSource, PlannedImage, host_platform, parse_config, read_archive
from .archive_save import ChunkStream, SaveItem, write_archive
from .archive_source import ArchiveFiles
from .backends import Blobs, LayerInfo, Layers
from .compression import Compression, DigestingReader, decompressed, detect
from .config_changes import apply_changes
from .filters import LIST_KEYS, PRUNE_KEYS, parse_filters
from .metadata import ImageRow, MetadataDB
from .reference import (
    Reference,
    full_id,
    is_full_id,
    is_id_prefix,
    parse_normalized,
    parse_tagged,
)
from .shapes import ImageFacts, history_shape, inspect_shape, summary_shape

DOCKER_VERSION = "sampan"
# Digest of an empty layer: Go's tar writer closes with 2 zero blocks (1024 bytes); Python's
# tarfile pads the end to a 10 KiB record.
EMPTY_LAYER_DIFF_IDS = frozenset(
    "sha256:" + hashlib.sha256(b"\0" * size).hexdigest() for size in (1024, 10240)
)

Progress = Callable[[str, str], None]  # (short id or "", status text)
InUse = Callable[[str], bool]


def chain_id_of(parent_chain: str | None, diff_id: str) -> str:
    """Docker's ChainID: ``diff_id`` at the bottom, ``sha256(parent + " " + diff_id)`` above."""
    if parent_chain is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent_chain} {diff_id}".encode()).hexdigest()


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12]


def _never(_: str) -> bool:
    return False


@dataclass
class _LayerFeed:
    """A layer to add: how to open its (possibly compressed) bytes, and what to expect."""

    open: Callable[[], BinaryIO]
    diff_id: str | None  # None when unknown (import, commit): taken from the layer store
    blob_digest: str | None = None
    label: str = "layer"
    # The bytes are in a file only we write (a spooled archive member, a container's diff
    # spooled by the layer store): nobody can change it while the layer store reads it twice
    # (once to unpack, once to keep a copy), so an uncompressed one is handed over as the file.
    private_file: bool = False


@dataclass(frozen=True)
class ExternalLayer:
    """A layer :meth:`ImageStore.add_image` takes from outside: how to open its (possibly
    compressed) bytes, its diff id and, when known, the digest of those bytes."""

    open: Callable[[], BinaryIO]
    diff_id: str
    blob_digest: str | None = None


@dataclass
class _Prepared:
    image_id: str
    config_bytes: bytes
    config: dict[str, Any]
    chain: list[tuple[str, str]]  # (chain_id, diff_id) bottom to top
    tags: list[Reference]
    manifest_bytes: bytes | None
    parent: str | None
    set_tag_time: bool


class ImageStore:
    """Images, their names and their history over a layer store and a content store."""

    def __init__(self, root: str, layers: Layers, content: Blobs) -> None:
        self._root = root
        self._layers = layers
        self._content = content
        self._spool = os.path.join(root, "tmp")
        os.makedirs(self._spool, exist_ok=True)
        self._db = MetadataDB(os.path.join(root, "images.db"))
        self._lock = threading.RLock()
        self._configs: dict[str, dict[str, Any]] = {}
        self.recover()

    def close(self) -> None:
        self._db.close()

    # ----------------------------------------------------------------- recovery, GC

    def recover(self) -> None:
        """Undo what a crashed operation left: spool dirs, journalled layer refs, blobs."""
        with self._lock:
            for entry in os.listdir(self._spool):
                path = os.path.join(self._spool, entry)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
            for seq, _operation, chain_id in self._db.pending_layers():
                self._release_journalled(seq, chain_id)
            self.collect_garbage()

    def _release_journalled(self, seq: int, chain_id: str) -> builtins.list[LayerInfo]:
        # Forget the journal row first: a crash between the two steps leaks a reference
        # instead of releasing it twice.
        with self._db.transaction() as tx:
            tx.delete_pending(seq)
        try:
            return self._layers.release(chain_id)
        except errdefs.NotFound:
            return []

    def collect_garbage(self) -> builtins.list[str]:
        """Delete owned blobs (configs, manifests) no image references; returns them."""
        removed = []
        with self._lock:
            for digest in self._db.unreferenced_blobs():
                with contextlib.suppress(errdefs.NotFound, FileNotFoundError):
                    self._content.delete(digest)
                with self._db.transaction() as tx:
                    tx.disown_blob(digest)
                self._configs.pop(digest, None)
                removed.append(digest)
        return removed

    # ----------------------------------------------------------------- names

    def resolve(self, name: str) -> str:
        """The image ID for a name, a ``name@digest``, a full ID or a unique ID prefix.

        Order as in Docker: a full ID; then the name as a reference (``:latest`` added when
        there is neither tag nor digest); then a short ID prefix. ``errdefs.NotFound`` if
        nothing matches, ``errdefs.InvalidParameter`` if a prefix is ambiguous.
        """
        if is_full_id(name):
            image_id = full_id(name)
            if self._db.image(image_id) is not None:
                return image_id
            raise errdefs.NotFound(f"no such image: {name}")
        try:
            ref = parse_tagged(name)
        except errdefs.InvalidParameter:
            ref = None
        if ref is not None:
            row = self._db.ref(str(ref))
            if row is not None:
                return row.image_id
        if is_id_prefix(name):
            hex_prefix = name.removeprefix("sha256:")
            matches = self._db.ids_with_prefix(hex_prefix)
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise errdefs.InvalidParameter(f"ambiguous image id prefix: {name}")
        raise errdefs.NotFound(f"no such image: {name}")

    def _refs(self, image_id: str) -> builtins.list[Reference]:
        return [parse_normalized(row.name) for row in self._db.refs(image_id=image_id)]

    def tag(self, source: str, target: str) -> str:
        """Point ``target`` (``:latest`` by default) at the image ``source`` names.

        Returns the full target reference. A target with a digest is refused, as by Docker.
        """
        ref = parse_tagged(target)
        if ref.digest is not None:
            raise errdefs.InvalidParameter("refusing to create a tag with a digest reference")
        with self._lock:
            image_id = self.resolve(source)
            with self._db.transaction() as tx:
                tx.set_ref(str(ref), ref.name, "tag", image_id)
                tx.set_last_tag_time(image_id, timestamps.now())
        return str(ref)

    def untag(self, name: str) -> str:
        """Remove one tag or digest reference; the image stays (even if now dangling)."""
        ref = parse_tagged(name)
        with self._lock, self._db.transaction() as tx:
            if not tx.delete_ref(str(ref)):
                raise errdefs.NotFound(f"no such image: {name}")
        return ref.familiar()

    def add_repo_digest(self, name_with_digest: str, image_id: str) -> None:
        """Record ``repo@sha256:...`` for an image (used by pull)."""
        ref = parse_normalized(name_with_digest)
        if ref.digest is None:
            raise errdefs.InvalidParameter(f"not a digest reference: {name_with_digest}")
        plain = Reference(ref.domain, ref.path, None, ref.digest)
        with self._lock:
            if self._db.image(image_id) is None:
                raise errdefs.NotFound(f"no such image: {image_id}")
            with self._db.transaction() as tx:
                tx.set_ref(str(plain), ref.name, "digest", image_id)

    # ----------------------------------------------------------------- reading

    def config_bytes(self, image_id: str) -> bytes:
        try:
            with self._content.open(image_id) as handle:
                return handle.read()
        except errdefs.NotFound as exc:
            raise errdefs.NotFound(f"no such image: {image_id}") from exc

    def config(self, image_id: str) -> dict[str, Any]:
        """The image's parsed config (OCI/Docker image JSON). Do not modify the result."""
        cached = self._configs.get(image_id)
        if cached is None:
            if self._db.image(image_id) is None:
                raise errdefs.NotFound(f"no such image: {image_id}")
            cached = parse_config(self.config_bytes(image_id), f"config {image_id}")
            self._configs[image_id] = cached
        return cached

    def top_chain_id(self, image_id: str) -> str | None:
        """The chain ID of the image's top layer (the container layer's parent), or None."""
        if self._db.image(image_id) is None:
            raise errdefs.NotFound(f"no such image: {image_id}")
        layers = self._db.layers(image_id)
        return layers[-1][0] if layers else None

    def chain_ids(self, image_id: str) -> builtins.list[str]:
        return [chain for chain, _ in self._db.layers(image_id)]

    def _facts(self, row: ImageRow) -> ImageFacts:
        return ImageFacts(
            id=row.id,
            config=self.config(row.id),
            refs=self._refs(row.id),
            parent=row.parent,
            size=row.size,
            created_ns=row.created_ns,
            last_tag_time=row.last_tag_time,
        )

    def _row(self, image_id: str) -> ImageRow:
        row = self._db.image(image_id)
        if row is None:
            raise errdefs.NotFound(f"no such image: {image_id}")
        return row

    def inspect(self, name: str) -> dict[str, Any]:
        """Docker's ImageInspect for the image ``name`` resolves to."""
        row = self._row(self.resolve(name))
        return inspect_shape(self._facts(row), self._layers.driver_name, None)

    def history(self, name: str) -> builtins.list[dict[str, Any]]:
        """Docker's image history, newest entry first."""
        row = self._row(self.resolve(name))
        chain = [self._facts(row)]
        parent = row.parent
        while parent is not None and len(chain) < 1000:
            parent_row = self._db.image(parent)
            if parent_row is None:
                break
            chain.append(self._facts(parent_row))
            parent = parent_row.parent
        sizes = [self._layer_size(c) for c, _ in self._db.layers(row.id)]
        return history_shape(chain, sizes)

    def _layer_size(self, chain_id: str) -> int:
        try:
            return self._layers.layer_size(chain_id)
        except errdefs.NotFound:
            return 0

    def list(
        self,
        filters: Mapping[str, Iterable[str]] | None = None,
        all: bool = False,
        shared_size: bool = False,
    ) -> builtins.list[dict[str, Any]]:
        """Docker's ImageSummary list, newest first.

        Without ``all``, untagged images that have children (intermediate images) are hidden.
        ``filters``: see ``filters.py``. ``shared_size`` fills ``SharedSize``.
        """
        parsed = parse_filters(filters, LIST_KEYS, self._created_of)
        rows = self._db.images()
        with_children = {row.parent for row in rows if row.parent}
        counts = self._db.chain_use_counts() if shared_size else {}
        result = []
        for row in rows:
            facts = self._facts(row)
            if not parsed.matches(row.created_ns, facts.refs, facts.labels):
                continue
            if not all and not facts.refs and row.id in with_children:
                continue
            shared = self._shared_size(row.id, counts) if shared_size else -1
            result.append(summary_shape(facts, shared_size=shared))
        return result

    def _created_of(self, name: str) -> int:
        return self._row(self.resolve(name)).created_ns

    def _shared_size(self, image_id: str, counts: Mapping[str, int]) -> int:
        return sum(
            self._layer_size(chain)
            for chain, _ in self._db.layers(image_id)
            if counts.get(chain, 0) > 1
        )

    def disk_usage(
        self, in_use: InUse = _never, container_count: Callable[[str], int] | None = None
    ) -> dict[str, Any]:
        """``LayersSize`` (every layer images hold, once) and ``Images`` (summaries with
        ``SharedSize``: bytes in layers other images share; unique = Size - SharedSize;
        ``Containers``: ``container_count(id)`` or 1/0 from ``in_use``)."""
        counts = self._db.chain_use_counts()
        layers_size = sum(self._layer_size(chain) for chain in counts)
        images = []
        for row in self._db.images():
            facts = self._facts(row)
            used = container_count(row.id) if container_count else int(in_use(row.id))
            images.append(
                summary_shape(facts, self._shared_size(row.id, counts), containers=used)
            )
        return {"LayersSize": layers_size, "Images": images}

    # ----------------------------------------------------------------- creating images

    def _acquire_layer(self, feed: _LayerFeed, parent: str | None) -> LayerInfo:
        """One reference on the layer ``feed`` describes, unpacking it only if needed."""
        if feed.diff_id is not None:
            expected = chain_id_of(parent, feed.diff_id)
            if self._layers.exists(expected):
                with contextlib.suppress(errdefs.NotFound):
                    return self._layers.retain(expected)
        raw = feed.open()
        try:
            if feed.private_file and _is_plain_file(raw):
                # An uncompressed blob's digest is the digest of the tar: its diff id.
                layer = self._register(raw, parent, feed)
                blob_digest = layer.diff_id
            else:
                digesting = DigestingReader(raw)
                tar, _ = decompressed(digesting, feed.label)  # type: ignore[arg-type]
                layer = self._register(tar, parent, feed)
                try:
                    digesting.drain()
                except OSError as exc:  # pragma: no cover - the source file vanished
                    self._layers.release(layer.chain_id)
                    raise errdefs.InvalidParameter(f"{feed.label}: {exc}") from exc
                blob_digest = digesting.digest
        finally:
            raw.close()
        problem = None
        if feed.blob_digest is not None and blob_digest != feed.blob_digest:
            problem = (
                f"{feed.label}: digest mismatch: expected {feed.blob_digest}, got {blob_digest}"
            )
        elif feed.diff_id is not None and layer.diff_id != feed.diff_id:
            problem = (
                f"{feed.label}: diff_id mismatch: expected {feed.diff_id}, got {layer.diff_id}"
            )
        if problem is not None:
            self._layers.release(layer.chain_id)
            raise errdefs.InvalidParameter(problem)
        return layer

    def _register(self, tar: BinaryIO, parent: str | None, feed: _LayerFeed) -> LayerInfo:
        try:
            return self._layers.register(tar, parent, feed.diff_id)
        except errdefs.SampanError:
            raise
        except (EOFError, ValueError, OSError) as exc:
            raise errdefs.InvalidParameter(f"{feed.label}: {exc}") from exc

    def _acquire_chain(
        self,
        operation: str,
        feeds: Sequence[_LayerFeed],
        parent: str | None,
        progress: Progress | None,
    ) -> builtins.list[LayerInfo]:
        acquired = []
        for feed in feeds:
            if progress is not None and feed.diff_id is not None:
                progress(_short(feed.diff_id), "Loading layer")
            layer = self._acquire_layer(feed, parent)
            with self._db.transaction() as tx:
                tx.add_pending_layer(operation, layer.chain_id)
            acquired.append(layer)
            parent = layer.chain_id
        return acquired

    def _rollback(self, operation: str) -> None:
        for seq, op, chain_id in self._db.pending_layers():
            if op == operation:
                self._release_journalled(seq, chain_id)
        self.collect_garbage()

    def _publish(self, operation: str, images: Sequence[_Prepared]) -> None:
        """Store configs/manifests and insert the images and their names in one transaction."""
        with self._lock:
            with self._db.transaction() as tx:
                for item in images:
                    tx.own_blob(item.image_id)
                    if item.manifest_bytes is not None:
                        tx.own_blob("sha256:" + hashlib.sha256(item.manifest_bytes).hexdigest())
            manifest_digests = {}
            for item in images:
                self._content.ingest_bytes(item.config_bytes, expected=item.image_id)
                if item.manifest_bytes is not None:
                    manifest_digests[item.image_id] = self._content.ingest_bytes(
                        item.manifest_bytes
                    )
            now_text = timestamps.now()
            extra_refs: builtins.list[str] = []  # layer refs of images that already existed
            with self._db.transaction() as tx:
                for item in images:
                    if self._db.image(item.image_id) is None:
                        created = timestamps.parse_ns(item.config.get("created")) or 0
                        size = sum(self._layer_size(chain) for chain, _ in item.chain)
                        row = ImageRow(
                            item.image_id, item.parent, created, size, None, time.time_ns()
                        )
                        tx.insert_image(row, item.chain)
                        tx.add_blob_ref(item.image_id, item.image_id, "config")
                        if item.image_id in manifest_digests:
                            tx.add_blob_ref(
                                item.image_id, manifest_digests[item.image_id], "manifest"
                            )
                    else:
                        extra_refs.extend(chain for chain, _ in item.chain)
                    for ref in item.tags:
                        tx.set_ref(str(ref), ref.name, "tag", item.image_id)
                    if item.set_tag_time and item.tags:
                        tx.set_last_tag_time(item.image_id, now_text)
                tx.clear_pending(operation)
                for chain in reversed(extra_refs):
                    tx.add_pending_layer(operation + "-dup", chain)
            if extra_refs:
                self._rollback(operation + "-dup")

    def _create(
        self,
        planned: Sequence[tuple[PlannedImage, Sequence[_LayerFeed]]],
        parent: str | None = None,
        set_tag_time: bool = False,
        progress: Progress | None = None,
    ) -> builtins.list[str]:
        operation = uuid.uuid4().hex
        prepared = []
        try:
            for image, feeds in planned:
                parent_chain = self.top_chain_id(parent) if parent else None
                if self._db.image(image.id) is not None:
                    prepared.append(
                        _Prepared(image.id, image.config_bytes, image.config, [], image.tags,
                                  image.manifest_bytes, parent, set_tag_time)
                    )
                    continue
                layers = self._acquire_chain(operation, feeds, parent_chain, progress)
                chain = [(layer.chain_id, layer.diff_id) for layer in layers]
                prepared.append(
                    _Prepared(image.id, image.config_bytes, image.config, chain, image.tags,
                              image.manifest_bytes, parent, set_tag_time)
                )
            self._publish(operation, prepared)
        except BaseException:
            self._rollback(operation)
            raise
        return [item.image_id for item in prepared]

    # ----------------------------------------------------------------- load

    def load(
        self, source: BinaryIO | str | os.PathLike[str], progress: Progress | None = None
    ) -> builtins.list[str]:
        """Load every image of a docker-archive or OCI layout; all or nothing.

        ``source``: a binary stream (tar, optionally gzip/zstd/bzip2/xz compressed), or a
        path to such a file or to an OCI layout directory. Returns what was loaded as Docker
        prints it: familiar tags (``busybox:latest``) and, for untagged images, the ID.
        ``progress(id, status)`` is called per layer and per loaded image.
        """
        files = self._open_archive(source)
        with files:
            planned = read_archive(files)
            work = [(image, self._load_feeds(files, image)) for image in planned]
            ids = self._create(work, progress=progress)
        loaded = []
        for image, image_id in zip(planned, ids, strict=True):
            names = [ref.familiar() for ref in image.tags] or [image_id]
            for name in names:
                if progress is not None:
                    kind = "Loaded image ID" if name == image_id else "Loaded image"
                    progress("", f"{kind}: {name}")
                loaded.append(name)
        return loaded

    def _open_archive(self, source: BinaryIO | str | os.PathLike[str]) -> ArchiveFiles:
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            if os.path.isdir(path):
                return ArchiveFiles.from_directory(path)
            try:
                with open(path, "rb") as handle:
                    return self._spool_stream(handle)
            except FileNotFoundError as exc:
                raise errdefs.NotFound(f"no such file: {path}") from exc
        return self._spool_stream(source)

    def _spool_stream(self, stream: BinaryIO) -> ArchiveFiles:
        plain, _ = decompressed(stream, "image archive")
        return ArchiveFiles.from_tar_stream(plain, self._spool)

    @staticmethod
    def _load_feeds(files: ArchiveFiles, image: PlannedImage) -> builtins.list[_LayerFeed]:
        def opener(source: LayerSource) -> Callable[[], BinaryIO]:
            return lambda: files.open(source.name)

        return [
            _LayerFeed(
                open=opener(source),
                diff_id=source.diff_id,
                blob_digest=source.blob_digest,
                label=f"layer {source.diff_id}",
                private_file=files.spooled,
            )
            for source in image.layers
        ]

    # ----------------------------------------------------------------- add (registry pull)

    def add_image(
        self,
        config_bytes: bytes,
        layers: Sequence[ExternalLayer],
        *,
        manifest_bytes: bytes | None = None,
        tags: Sequence[str] = (),
    ) -> str:
        """Add an image whose layers come from outside (a registry pull); all or nothing.

        ``layers`` bottom to top, one per ``rootfs.diff_ids`` entry. A layer whose chain
        already exists is reused without calling its ``open``; the others are opened in order,
        decompressed, unpacked and checked against ``blob_digest`` and ``diff_id``. ``tags``
        (``name:tag``) point at the image once it exists. Returns the image ID.
        """
        config = parse_config(config_bytes, "image config")
        diff_ids = config["rootfs"]["diff_ids"]
        if [layer.diff_id for layer in layers] != diff_ids:
            raise errdefs.InvalidParameter(
                "image layers do not match the diff_ids of the image config"
            )
        planned = PlannedImage(
            config_bytes, config, [], [parse_tagged(tag) for tag in tags], manifest_bytes
        )
        feeds = [
            _LayerFeed(
                open=layer.open,
                diff_id=layer.diff_id,
                blob_digest=layer.blob_digest,
                label=f"layer {layer.blob_digest or layer.diff_id}",
            )
            for layer in layers
        ]
        return self._create([(planned, feeds)])[0]

    # ----------------------------------------------------------------- import, commit

    def import_rootfs(
        self,
        stream: BinaryIO | str | os.PathLike[str],
        ref: str | None = None,
        changes: Iterable[str] = (),
        message: str = "",
        source_name: str = "-",
    ) -> str:
        """``docker import``: a rootfs tar (any compression) as a one-layer image.

        ``changes`` are Dockerfile instructions (see ``config_changes``); ``message`` becomes
        the comment (default ``Imported from <source_name>``). Returns the image ID.
        """
        target = parse_tagged(ref) if ref else None
        if target is not None and target.digest is not None:
            raise errdefs.InvalidParameter("refusing to create a tag with a digest reference")
        runtime = apply_changes({}, changes)
        operation = uuid.uuid4().hex
        owned_handle: BinaryIO | None = None
        if isinstance(stream, (str, os.PathLike)):
            try:
                owned_handle = open(os.fspath(stream), "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError as exc:
                raise errdefs.NotFound(f"no such file: {os.fspath(stream)}") from exc
            stream = owned_handle
        source = stream
        feed = _LayerFeed(
            open=lambda: cast(BinaryIO, _Unclosable(source)), diff_id=None, label="rootfs tar"
        )
        try:
            layer = self._acquire_chain(operation, [feed], None, None)[0]
            created = timestamps.now()
            os_name, arch = host_platform()
            comment = message or f"Imported from {source_name}"
            config: dict[str, Any] = {
                "architecture": arch,
                "comment": message or None,
                "config": runtime or None,
                "created": created,
                "docker_version": DOCKER_VERSION,
                "history": [{"created": created, "comment": comment}],
                "os": os_name,
                "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
            }
            config = {key: value for key, value in config.items() if value is not None}
            config_bytes = json.dumps(config, separators=(",", ":")).encode()
            image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
            prepared = _Prepared(
                image_id, config_bytes, config, [(layer.chain_id, layer.diff_id)],
                [target] if target else [], None, None, set_tag_time=True,
            )
            self._publish(operation, [prepared])
        except BaseException:
            self._rollback(operation)
            raise
        finally:
            if owned_handle is not None:
                owned_handle.close()
        return image_id

    def commit(
        self,
        container_id: str,
        parent_image: str | None,
        container_config: dict[str, Any] | None = None,
        changes: Iterable[str] = (),
        author: str = "",
        comment: str = "",
        ref: str | None = None,
    ) -> str:
        """``docker commit``: the container's rw layer (``layers.diff_rw``) as a new layer on
        ``parent_image`` and a new image whose runtime config is ``container_config`` (the
        container's Config; the parent's when None) with ``changes`` applied. An empty diff
        adds no layer (history entry with ``empty_layer``). Returns the new image ID."""
        target = parse_tagged(ref) if ref else None
        if target is not None and target.digest is not None:
            raise errdefs.InvalidParameter("refusing to create a tag with a digest reference")
        parent_id = self.resolve(parent_image) if parent_image else None
        parent_config = self.config(parent_id) if parent_id else {}
        base_runtime = container_config if container_config is not None else (
            parent_config.get("config") or {}
        )
        runtime = apply_changes(base_runtime, changes)
        parent_chain = self.top_chain_id(parent_id) if parent_id else None
        parent_layers = self._db.layers(parent_id) if parent_id else []
        operation = uuid.uuid4().hex
        feed = _LayerFeed(
            open=lambda: self._layers.diff_rw(container_id), diff_id=None,
            label=f"container {container_id[:12]} changes", private_file=True,
        )
        try:
            layer = self._acquire_chain(operation, [feed], parent_chain, None)[0]
            empty = layer.diff_id in EMPTY_LAYER_DIFF_IDS
            chain = list(parent_layers)
            if empty:
                self._rollback(operation)
            else:
                chain.append((layer.chain_id, layer.diff_id))
            # The new image holds its own reference on every parent layer too.
            for chain_id, _ in parent_layers:
                retained = self._retain_existing(chain_id)
                with self._db.transaction() as tx:
                    tx.add_pending_layer(operation, retained)
            created = timestamps.now()
            os_name, arch = host_platform()
            history = list(parent_config.get("history") or [])
            entry: dict[str, Any] = {"created": created}
            if author:
                entry["author"] = author
            created_by = " ".join((container_config or {}).get("Cmd") or [])
            if created_by:
                entry["created_by"] = created_by
            if comment:
                entry["comment"] = comment
            if empty:
                entry["empty_layer"] = True
            history.append(entry)
            config: dict[str, Any] = {
                "architecture": parent_config.get("architecture") or arch,
                "author": author or None,
                "comment": comment or None,
                "config": runtime,
                "container": container_id,
                "container_config": container_config or {},
                "created": created,
                "docker_version": DOCKER_VERSION,
                "history": history,
                "os": parent_config.get("os") or os_name,
                "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in chain]},
            }
            if parent_config.get("variant"):
                config["variant"] = parent_config["variant"]
            config = {key: value for key, value in config.items() if value is not None}
            config_bytes = json.dumps(config, separators=(",", ":")).encode()
            image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
            prepared = _Prepared(
                image_id, config_bytes, config, chain, [target] if target else [], None,
                parent_id, set_tag_time=True,
            )
            self._publish(operation, [prepared])
        except BaseException:
            self._rollback(operation)
            raise
        return image_id

    def _retain_existing(self, chain_id: str) -> str:
        """Take one more reference on an existing layer."""
        return self._layers.retain(chain_id).chain_id

    # ----------------------------------------------------------------- save

    def save(self, names: Sequence[str]) -> BinaryIO:
        """A docker-archive (Docker 25+ layout, see ``archive_save``) of the named images.

        Names as ``docker save`` takes them: ``name:tag`` (that tag), a bare ``name`` (every
        tag of that repository), an ID or ID prefix (no tags). The stream is produced while
        it is read; closing it early stops the work.
        """
        items: dict[str, SaveItem] = {}
        for name in names:
            for image_id, ref in self._save_targets(name):
                item = items.get(image_id)
                if item is None:
                    layers = self._db.layers(image_id)
                    item = SaveItem(
                        image_id=image_id,
                        config_bytes=self.config_bytes(image_id),
                        diff_ids=[diff for _, diff in layers],
                        chain_ids=[chain for chain, _ in layers],
                    )
                    items[image_id] = item
                if ref is not None and ref not in item.refs:
                    item.refs.append(ref)
        if not items:
            raise errdefs.InvalidParameter("no images to save")
        chunks = write_archive(list(items.values()), self._layers.diff_tar, self._spool)
        return cast(BinaryIO, io.BufferedReader(ChunkStream(chunks), 1 << 20))

    def _save_targets(self, name: str) -> builtins.list[tuple[str, Reference | None]]:
        if is_full_id(name):
            return [(self.resolve(name), None)]
        try:
            ref = parse_normalized(name)
        except errdefs.InvalidParameter:
            return [(self.resolve(name), None)]
        if ref.is_name_only:
            rows = [row for row in self._db.refs(repo=ref.name) if row.kind == "tag"]
            if rows:
                return [(row.image_id, parse_normalized(row.name)) for row in rows]
            return [(self.resolve(name), None)]
        row = self._db.ref(str(ref))
        if row is None:
            if ref.digest is None and is_id_prefix(name):
                return [(self.resolve(name), None)]
            raise errdefs.NotFound(f"no such image: {name}")
        return [(row.image_id, ref if ref.tag is not None else None)]

    # ----------------------------------------------------------------- remove, prune

    def remove(
        self,
        name: str,
        force: bool = False,
        prune_parents: bool = True,
        in_use: InUse = _never,
        in_use_running: InUse = _never,
    ) -> builtins.list[dict[str, str]]:
        """``docker rmi`` with Docker's rules; returns ``[{"Untagged": ..}, {"Deleted": ..}]``.

        * A name (tag or digest) untags; the image is deleted only when that was its last
          reference. A last reference is kept (Conflict) while a container uses the image,
          unless ``force``.
        * An ID deletes the image. With several references in different repositories it is
          a Conflict unless ``force``; used by a container (``in_use``) it is a Conflict
          unless ``force``; used by a running container (``in_use_running``) or having child
          images it is a Conflict even with ``force``.
        * ``prune_parents`` then deletes the image's parent if it became an unused, untagged
          leaf, and so on up.
        Deleted layers are reported as ``{"Deleted": <chain id>}`` after the image.
        """
        with self._lock:
            image_id = self.resolve(name)
            records: builtins.list[dict[str, str]] = []
            refs = self._db.refs(image_id=image_id)
            by_id = self._names_id(name, image_id)
            removed_by_name = False
            if not by_id:
                ref = parse_tagged(name)
                if not force and _single_repository(refs) and in_use(image_id):
                    raise errdefs.Conflict(
                        f"conflict: unable to remove repository reference {name!r} (must force)"
                        f" - container is using its referenced image {_short(image_id)}"
                    )
                with self._db.transaction() as tx:
                    tx.delete_ref(str(ref))
                records.append({"Untagged": ref.familiar()})
                remaining = self._db.refs(image_id=image_id)
                if ref.digest is None and not any(
                    r.kind == "tag" and r.repo == ref.name for r in remaining
                ):
                    for row in [r for r in remaining if r.kind == "digest" and r.repo == ref.name]:
                        with self._db.transaction() as tx:
                            tx.delete_ref(row.name)
                        records.append({"Untagged": parse_normalized(row.name).familiar()})
                if self._db.refs(image_id=image_id):
                    return records
                removed_by_name = True
            elif _single_repository(refs):
                self._check_conflicts(image_id, force, in_use, in_use_running, ignore_refs=True)
                for row in refs:
                    with self._db.transaction() as tx:
                        tx.delete_ref(row.name)
                    records.append({"Untagged": parse_normalized(row.name).familiar()})
            self._delete_helper(
                image_id, records, force, prune_parents, removed_by_name, in_use, in_use_running
            )
            return records

    def _names_id(self, name: str, image_id: str) -> bool:
        """True if ``name`` was an ID (or ID prefix) rather than a reference."""
        if is_full_id(name):
            return True
        with contextlib.suppress(errdefs.InvalidParameter):
            if self._db.ref(str(parse_tagged(name))) is not None:
                return False
        return is_id_prefix(name) and image_id.removeprefix("sha256:").startswith(
            name.removeprefix("sha256:")
        )

    def _check_conflicts(
        self,
        image_id: str,
        force: bool,
        in_use: InUse,
        in_use_running: InUse,
        ignore_refs: bool = False,
    ) -> None:
        short = _short(image_id)
        if self._db.children(image_id):
            raise errdefs.Conflict(
                f"conflict: unable to delete {short} (cannot be forced) - image has dependent"
                " child images"
            )
        if in_use_running(image_id):
            raise errdefs.Conflict(
                f"conflict: unable to delete {short} (cannot be forced) - image is being used"
                " by running container"
            )
        if force:
            return
        if not ignore_refs and self._db.refs(image_id=image_id):
            raise errdefs.Conflict(
                f"conflict: unable to delete {short} (must be forced) - image is referenced in"
                " multiple repositories"
            )
        if in_use(image_id):
            raise errdefs.Conflict(
                f"conflict: unable to delete {short} (must be forced) - image is being used by"
                " stopped container"
            )

    def _delete_helper(
        self,
        image_id: str,
        records: builtins.list[dict[str, str]],
        force: bool,
        prune: bool,
        quiet: bool,
        in_use: InUse,
        in_use_running: InUse,
    ) -> None:
        try:
            self._check_conflicts(image_id, force, in_use, in_use_running)
        except errdefs.Conflict:
            if quiet:
                return
            raise
        row = self._row(image_id)
        for ref_row in self._db.refs(image_id=image_id):
            records.append({"Untagged": parse_normalized(ref_row.name).familiar()})
        removed_layers = self._delete_image(image_id)
        records.append({"Deleted": image_id})
        records.extend({"Deleted": layer.chain_id} for layer in removed_layers)
        parent = row.parent
        if prune and parent and self._db.image(parent) and not self._db.refs(image_id=parent):
            self._delete_helper(parent, records, False, True, True, in_use, in_use_running)

    def _delete_image(self, image_id: str) -> builtins.list[LayerInfo]:
        operation = "delete-" + image_id
        chain = self._db.layers(image_id)
        with self._db.transaction() as tx:
            tx.delete_image(image_id)
            for chain_id, _ in chain:
                tx.add_pending_layer(operation, chain_id)
        self._configs.pop(image_id, None)
        removed: builtins.list[LayerInfo] = []
        for seq, op, chain_id in self._db.pending_layers():  # newest (top layer) first
            if op == operation:
                removed.extend(self._release_journalled(seq, chain_id))
        self.collect_garbage()
        return removed

    def prune(
        self,
        all: bool = False,
        in_use: InUse = _never,
        filters: Mapping[str, Iterable[str]] | None = None,
    ) -> dict[str, Any]:
        """``docker image prune``: dangling images (untagged leaves), or with ``all`` every
        image no container uses. Returns ``{"ImagesDeleted": [...], "SpaceReclaimed": n}``."""
        parsed = parse_filters(filters, PRUNE_KEYS, self._created_of)
        if parsed.dangling is False:
            all = True  # Docker: "dangling=false" prunes every unused image
        with self._lock:
            rows = self._db.images()
            with_children = {row.parent for row in rows if row.parent}
            candidates = []
            for row in rows:
                if not all and row.id in with_children:
                    continue
                facts = self._facts(row)
                if parsed.until_ns is not None and row.created_ns >= parsed.until_ns:
                    continue
                if not parsed.matches_labels(facts.labels):
                    continue
                candidates.append(row.id)
            sizes = {chain: self._layer_size(chain) for chain in self._db.chain_use_counts()}
            deleted: builtins.list[dict[str, str]] = []
            for image_id in candidates:
                if self._db.image(image_id) is None or in_use(image_id):
                    continue
                refs = self._db.refs(image_id=image_id)
                try:
                    if refs:
                        if not all and any(r.kind == "tag" for r in refs):
                            continue
                        for ref_row in refs:
                            if self._db.ref(ref_row.name) is None:
                                continue
                            deleted.extend(
                                self.remove(ref_row.name, False, True, in_use)
                            )
                    else:
                        deleted.extend(self.remove(image_id, False, True, in_use))
                except errdefs.Conflict:
                    continue
            reclaimed = sum(
                sizes.get(item["Deleted"], 0) for item in deleted if "Deleted" in item
            )
            return {"ImagesDeleted": deleted, "SpaceReclaimed": reclaimed}


def _is_plain_file(stream: BinaryIO) -> bool:
    """Is ``stream`` a regular file (at its start) holding an uncompressed tar?"""
    try:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode) or not stream.seekable():
            return False
        position = stream.tell()
        head = stream.read(6)
        stream.seek(position)
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        return False
    return detect(head) is Compression.NONE


def _single_repository(refs: Sequence[Any]) -> bool:
    """Docker's ``isSingleReference``: at most one tag, and all references in one repo."""
    tags = [row for row in refs if row.kind == "tag"]
    if len(tags) > 1:
        return False
    return len({row.repo for row in refs}) <= 1


class _Unclosable(io.RawIOBase):
    """Hands a caller's stream to code that closes what it opened, without closing it."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._inner.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

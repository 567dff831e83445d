"""``sampan cp CONTAINER:SRC DEST`` and ``sampan cp SRC CONTAINER:DEST`` (``-`` = a tar
stream on stdin/stdout), through ``GET``/``PUT /containers/{id}/archive``."""

from __future__ import annotations

import argparse
import io
import os
import sys
import tarfile

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.errors import StatusError, UsageError
from sampan.client.api import quote

SUMMARY = "Copy files/folders between a container and the local filesystem"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-", SUMMARY)
    parser.add_argument("-a", "--archive", action="store_true",
                        help="Archive mode (copy all uid/gid information)")
    parser.add_argument("-L", "--follow-link", action="store_true",
                        help="Always follow symbol link in SRC_PATH")
    parser.add_argument("-q", "--quiet", action="store_true", help="Suppress progress output")
    parser.add_argument("source", metavar="SRC")
    parser.add_argument("destination", metavar="DEST")
    return parser.parse_args(argv)


def _split(spec: str) -> tuple[str, str] | None:
    """``name:/path`` -> (name, path); a local path (``./a:b``, ``/x``) -> None."""
    if spec.startswith(("/", ".")) or ":" not in spec:
        return None
    container, _, path = spec.partition(":")
    return container, path


def _safe_members(archive: tarfile.TarFile, root: str) -> list[tarfile.TarInfo]:
    members = []
    base = os.path.realpath(root)
    for member in archive.getmembers():
        target = os.path.realpath(os.path.join(base, member.name))
        if target != base and not target.startswith(base + os.sep):
            raise StatusError(1, f"invalid archive entry outside the destination: {member.name}")
        if member.issym() or member.islnk():
            link = os.path.realpath(os.path.join(os.path.dirname(target), member.linkname))
            if member.islnk() and not link.startswith(base + os.sep):
                raise StatusError(1, f"invalid hard link in archive: {member.name}")
        if member.isdev():
            continue
        members.append(member)
    return members


def _copy_from(ctx: Context, container: str, path: str, destination: str) -> None:
    response = ctx.client.request("GET", f"/containers/{quote(container)}/archive",
                                  {"path": path})
    try:
        data = response.read()
    finally:
        response.close()
    if destination == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        return
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        names = archive.getnames()
        if os.path.isdir(destination):
            archive.extractall(destination, members=_safe_members(archive, destination))
            return
        parent = os.path.dirname(os.path.abspath(destination))
        staging = os.path.join(parent, f".sampan-cp-{os.getpid()}")
        os.mkdir(staging)
        try:
            archive.extractall(staging, members=_safe_members(archive, staging))
            top = names[0].split("/")[0] if names else ""
            os.replace(os.path.join(staging, top), destination)
        finally:
            import shutil

            shutil.rmtree(staging, ignore_errors=True)


def _copy_to(ctx: Context, source: str, container: str, path: str) -> None:
    if source == "-":
        data = sys.stdin.buffer.read()
        target_dir = path
    else:
        if not os.path.exists(source):
            raise StatusError(1, f"lstat {source}: no such file or directory")
        buffer = io.BytesIO()
        inside_dir = path.endswith("/")
        name = os.path.basename(source.rstrip("/")) if inside_dir else os.path.basename(path)
        target_dir = path if inside_dir else (os.path.dirname(path) or "/")
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            archive.add(source, arcname=name)
        data = buffer.getvalue()
    ctx.client.call("PUT", f"/containers/{quote(container)}/archive", {"path": target_dir},
                    data=data, headers={"Content-Type": "application/x-tar"})


def run(ctx: Context, args: argparse.Namespace) -> int:
    source = _split(args.source)
    destination = _split(args.destination)
    if source and destination:
        raise UsageError("copying between containers is not supported")
    if not source and not destination:
        raise UsageError("must specify at least one container source")
    if source:
        _copy_from(ctx, source[0], source[1], args.destination)
    elif destination:
        _copy_to(ctx, args.source, destination[0], destination[1])
    return 0

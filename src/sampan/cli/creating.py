"""Creating a container for ``run`` and ``create``: pull when the image is missing,
print the daemon's warnings, write ``--cidfile``."""

from __future__ import annotations

import argparse
import os

from sampan.cli.container_options import create_body
from sampan.cli.context import Context
from sampan.cli.errors import StatusError
from sampan.cli.images import pull
from sampan.client.errors import DaemonError


def _is_missing_image(error: DaemonError) -> bool:
    return error.status == 404 and "image" in error.message.lower()


def create_container(ctx: Context, args: argparse.Namespace, image: str,
                     command: list[str]) -> str:
    """Returns the new container's id. Daemon errors become ``StatusError(125, ...)``."""
    if args.cidfile and os.path.exists(args.cidfile):
        raise StatusError(125, f"sampan: container ID file found, make sure the other "
                          f"container isn't running or delete {args.cidfile}")
    body = create_body(args, image, command)
    params = {"name": args.name or None, "platform": args.platform or None}
    if args.pull == "always":
        _pull(ctx, args, image)
    try:
        try:
            created = ctx.client.post("/containers/create", params, body)
        except DaemonError as error:
            if not _is_missing_image(error) or args.pull == "never":
                raise
            reference = image if (":" in image.rsplit("/", 1)[-1] or "@" in image) \
                else image + ":latest"
            ctx.err(f"Unable to find image '{reference}' locally")
            _pull(ctx, args, image)
            created = ctx.client.post("/containers/create", params, body)
    except DaemonError as error:
        raise StatusError(125, f"sampan: Error response from daemon: {error.message}\n\n"
                          f"Run 'sampan {_verb(args)} --help' for more information") \
            from error
    for warning in created.get("Warnings") or []:
        ctx.err(f"WARNING: {warning}")
    identifier = str(created["Id"])
    if args.cidfile:
        with open(args.cidfile, "w") as handle:
            handle.write(identifier)
    return identifier


def _verb(args: argparse.Namespace) -> str:
    return "run" if hasattr(args, "detach") else "create"


def _pull(ctx: Context, args: argparse.Namespace, image: str) -> None:
    try:
        pull(ctx, image, platform=args.platform, quiet=args.quiet)
    except DaemonError as error:
        raise StatusError(125, f"sampan: Error response from daemon: {error.message}\n\n"
                          f"Run 'sampan {_verb(args)} --help' for more information") \
            from error


def start_error_status(message: str) -> int:
    """Docker's run exit codes: 127 command not found, 126 cannot execute, 125 otherwise."""
    lowered = message.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered \
            or ("not found" in lowered and "exec" in lowered):
        return 127
    if "permission denied" in lowered or "cannot execute" in lowered \
            or "exec format error" in lowered:
        return 126
    return 125

"""Noticing dockerd's ``DOCKER-USER`` chain when it appears after the engine started.

dockerd (iptables on) makes its filter chains when it starts and sets the FORWARD policy to
DROP; the engine's ACCEPT rules for its bridges belong in ``DOCKER-USER`` (see
:mod:`.firewall`). A dockerd started after sampand would otherwise drop the engine's
forwarded traffic until the next network change. ``nft monitor new chains`` prints one line
per chain created in the namespace (iptables-nft makes its chains through nf_tables, so
they are seen too: ``create chain ip filter DOCKER-USER``); on such a line the callback
runs. With iptables-legacy nothing is printed, and the rules follow at the next change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence

log = logging.getLogger("sampand.networks")

DOCKER_USER_CREATED = re.compile(r"^(?:add|create) chain ip filter DOCKER-USER\b")
MONITOR_ARGV = ("nft", "monitor", "new", "chains")


class DockerChainWatch:
    """One ``nft monitor`` child for the daemon's lifetime (stopped by its PID in
    :meth:`stop`)."""

    def __init__(self, argv: Sequence[str] = MONITOR_ARGV) -> None:
        self._argv = list(argv)
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, on_created: Callable[[], Awaitable[None]]) -> None:
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self._argv, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            log.warning("not watching for dockerd's chains (%s): %s", self._argv[0], exc)
            return
        self._task = asyncio.create_task(self._read(self._process, on_created))

    async def _read(self, process: asyncio.subprocess.Process,
                    on_created: Callable[[], Awaitable[None]]) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            if DOCKER_USER_CREATED.match(line.decode(errors="replace")):
                log.info("dockerd's DOCKER-USER chain appeared: adding the bridges' rules")
                try:
                    await on_created()
                except Exception:  # the watch goes on; the next change retries
                    log.exception("adding rules to DOCKER-USER")

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.terminate()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._process.wait(), 5)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

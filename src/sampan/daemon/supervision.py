"""What the daemon needs from the supervisor (``sampan.supervisor.client.SupervisorClient``
implements it; tests pass a fake). See docs/daemon-architecture.md for the protocol."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol


class Supervisor(Protocol):
    async def create(self, id: str, bundle: str, *, runtime: str = ..., runtime_root: str,
                     terminal: bool = False, open_stdin: bool = False,
                     log_path: str | None = None, log_max_size: int = 0,
                     log_max_files: int = 1) -> int: ...

    async def start(self, id: str) -> int: ...

    async def exec(self, id: str, exec_id: str, process: dict[str, Any], *,
                   terminal: bool = False, open_stdin: bool = False,
                   detach: bool = False) -> int: ...

    async def kill(self, id: str, signal: int | str, *, exec_id: str | None = None,
                   all: bool = False) -> None: ...

    async def resize(self, id: str, height: int, width: int, *,
                     exec_id: str | None = None) -> None: ...

    async def delete(self, id: str, *, force: bool = False) -> Any: ...

    async def pause(self, id: str) -> None: ...

    async def resume(self, id: str) -> None: ...

    async def update(self, id: str, resources: dict[str, Any]) -> None: ...

    async def pids(self, id: str) -> list[int]: ...

    async def list(self) -> list[dict[str, Any]]: ...

    def events(self) -> AsyncIterator[dict[str, Any]]: ...

    async def attach(self, id: str, *, exec_id: str | None = None, stdin: bool = False,
                     stdout: bool = True, stderr: bool = True, keep_stdin: bool = False,
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...

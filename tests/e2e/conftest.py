"""Fixtures for end-to-end tests: real reference engines on private sockets and roots.

The runtime under test defaults to the repo's ``bin/sampan-runc``; set ``SAMPAN_RUNC`` to
another runc-compatible binary (e.g. ``/usr/sbin/runc``) to check the tests themselves.
Nothing here skips: CI installs dockerd, containerd and the docker CLI, so a missing program
is a failure with a message that says what to install.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dockerd_harness import (
    DockerdOptions,
    EngineStack,
    HarnessError,
    docker_cli,
    require_program,
)

REPO = Path(__file__).resolve().parents[2]
SAMPAN_RUNC_LAUNCHER = REPO / "bin" / "sampan-runc"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def sampan_runc_path() -> str:
    """Absolute path of the OCI runtime under test (``SAMPAN_RUNC`` overrides it)."""
    path = Path(os.environ.get("SAMPAN_RUNC", str(SAMPAN_RUNC_LAUNCHER)))
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"OCI runtime under test not executable: {path}")
    return str(path.resolve())


@pytest.fixture(scope="session")
def reference_engines() -> None:
    """Fail loudly (never skip) unless we are root and the reference engines are installed."""
    if os.geteuid() != 0:
        pytest.fail("e2e tests need root: they start dockerd and containerd")
    try:
        for program in ("dockerd", "containerd", "containerd-shim-runc-v2"):
            require_program(program)
        docker_cli()
    except HarnessError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def dockerd_with_sampan(reference_engines: None, sampan_runc_path: str) -> Iterator[EngineStack]:
    """containerd + dockerd with ``--add-runtime sampan=<runtime under test>``, busybox loaded."""
    try:
        stack = EngineStack({"sampan": sampan_runc_path})
        stack.__enter__()
    except HarnessError as error:
        pytest.fail(str(error))
    try:
        yield stack
    finally:
        stack.close()
        assert not stack.cleanup_report, f"engine teardown left traces: {stack.cleanup_report}"


@pytest.fixture
def engine_stack_factory(reference_engines: None) -> Iterator[Callable[..., EngineStack]]:
    """Start extra stacks with custom options (live restore, registry...); closed afterwards."""
    stacks: list[EngineStack] = []

    def start(
        runtimes: dict[str, str] | None = None,
        options: DockerdOptions | None = None,
        registry: bool = False,
    ) -> EngineStack:
        stack = EngineStack(runtimes, options=options, registry=registry)
        stacks.append(stack)
        stack.start()
        return stack

    try:
        yield start
    finally:
        for stack in reversed(stacks):
            stack.close()

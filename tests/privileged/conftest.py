"""Fixtures of the privileged tier: root, the real kernel, cleanup pass or fail."""

from collections.abc import Iterator

import pytest
from tests.runtime_harness import RuntimeHarness, remove_rootfs_cache


@pytest.fixture
def runtime() -> Iterator[RuntimeHarness]:
    harness = RuntimeHarness()
    try:
        yield harness
    finally:
        harness.cleanup()


@pytest.fixture(scope="session", autouse=True)
def _rootfs_cache() -> Iterator[None]:
    yield
    remove_rootfs_cache()


"""The C library, loaded once, and the errno discipline every wrapper follows.

Each wrapper in ``sampan.kernel`` calls :func:`check` so that a failing syscall raises
``OSError(errno, "<call>: <strerror>", <path>)``: the call and the path travel with the error
from deep inside a container's init back to the caller. EINTR is retried by :func:`retry`.
"""


from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable

# the soname directly: ctypes.util.find_library would import subprocess, shutil and tempfile
LIBC = ctypes.CDLL("libc.so.6", use_errno=True)

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeVar

    _T = TypeVar("_T")


def raise_errno(call: str, path: str | None = None, err: int | None = None) -> None:
    """Raise the current ``errno`` as an ``OSError`` naming ``call`` (and ``path``)."""
    code = ctypes.get_errno() if err is None else err
    message = f"{call}: {os.strerror(code)}"
    if path is None:
        raise OSError(code, message)
    raise OSError(code, message, path)


def check(result: int, call: str, path: str | None = None) -> int:
    """Return ``result`` or raise ``OSError`` if the C call returned -1."""
    if result == -1:
        raise_errno(call, path)
    return result


def retry(fn: Callable[[], _T]) -> _T:
    """Call ``fn`` again while it fails with EINTR (a signal interrupted a slow syscall)."""
    while True:
        try:
            return fn()
        except InterruptedError:
            continue
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise


def cstr(value: str | bytes | None) -> bytes | None:
    """Encode a Python path or string for a ``char *`` argument."""
    if value is None:
        return None
    return value if isinstance(value, bytes) else os.fsencode(value)

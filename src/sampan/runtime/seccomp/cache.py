"""A directory of compiled BPF programs, one file per profile, named by the profile's digest.

The key is the sha256 of the profile's canonical JSON (sorted keys, no spaces), so the same
profile written with its keys in another order hits the same entry. The file name also
carries the machine and a format version: the compiled bytes depend on the native
architecture and on how this package plans a filter. Writes are atomic (temp file, fsync,
rename), so a reader sees a whole program or none; a file that is not a whole number of
instructions is treated as a miss and rewritten.
"""


from __future__ import annotations

import json
import os
from collections.abc import Mapping

from sampan.kernel.seccomp import BPF_MAXINSNS, SOCK_FILTER_SIZE

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_FORMAT = "v1"


def profile_digest(profile: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of ``profile``."""
    import hashlib  # not at module level: only needed when there is a cache

    canonical = json.dumps(profile, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ProgramCache:
    def __init__(self, directory: str) -> None:
        self.directory = directory

    def path_for(self, digest: str) -> str:
        return os.path.join(self.directory, f"{digest}.{os.uname().machine}.{_FORMAT}.bpf")

    def read(self, digest: str) -> bytes | None:
        """The cached program, or None on a miss (absent, or not a whole program)."""
        try:
            with open(self.path_for(digest), "rb") as file:
                program = file.read(BPF_MAXINSNS * SOCK_FILTER_SIZE + 1)
        except FileNotFoundError:
            return None
        count, rest = divmod(len(program), SOCK_FILTER_SIZE)
        if rest or not 0 < count <= BPF_MAXINSNS:
            return None
        return program

    def write(self, digest: str, program: bytes) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        final = self.path_for(digest)
        temporary = f"{final}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            try:
                view = memoryview(program)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temporary, final)
        except BaseException:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass
            raise

"""features: what this runtime supports, in the OCI runtime-spec features.md shape."""


from __future__ import annotations

import json
import sys

from sampan.kernel.namespaces import NAMESPACES
from sampan.runtime.cli.context import Context
from sampan.runtime.cli.flags import FlagSpec
from sampan.runtime.hooks import HOOK_KINDS
from sampan.runtime.mountopts import _FLAGS, _PROPAGATION
from sampan.runtime.state import OCI_VERSION

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAGS: FlagSpec = {}


def features() -> dict[str, Any]:
    from sampan.runtime.capabilities import ALL_CAPABILITIES

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": sorted([*_FLAGS, *_PROPAGATION]),
        "linux": {
            "namespaces": sorted(NAMESPACES),
            "capabilities": sorted(ALL_CAPABILITIES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False,
                       "rdma": False},
            "seccomp": {
                "enabled": True,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
                            "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",
                            "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE",
                              "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
                "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                               "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                   "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            },
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
        },
        "annotations": {"org.opencontainers.runtime-spec.features.runtime": "sampan-runc"},
    }


def run(ctx: Context, values: dict[str, Any], positionals: list[str]) -> int:
    sys.stdout.write(json.dumps(features(), indent=4) + "\n")
    return 0

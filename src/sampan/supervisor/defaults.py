"""What Docker gives a container by default, as data (the exec driver's inputs).

Kept here as plain data rather than imported from the runtime: the supervisor runs the
runtime as a program and never imports it (an import-linter contract). The values are those
of dockerd's generated config.json for a default ``docker run`` (see
``/work/shared/reference/RUNC_CALLS.md`` section 5).
"""

from __future__ import annotations

from typing import Any, Final

OCI_VERSION: Final = "1.0.2-dev"

DEFAULT_PATH_ENV: Final = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Docker's 14 default capabilities, in Docker's order.
DEFAULT_CAPABILITIES: Final[tuple[str, ...]] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)

# Every capability Linux knows (capability.h, through 6.x), by number.
ALL_CAPABILITIES: Final[tuple[str, ...]] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

# The mounts every container gets, in dockerd's order; /dev/shm's size is added per container.
DEFAULT_MOUNTS: Final[tuple[dict[str, Any], ...]] = (
    {"destination": "/proc", "type": "proc", "source": "proc",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["ro", "nosuid", "noexec", "nodev"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777"]},
)

DEFAULT_SHM_SIZE: Final = 64 << 20

# Files of the container's directory bound over the image's, in dockerd's order.
ETC_FILES: Final[tuple[tuple[str, str], ...]] = (
    ("resolv.conf", "/etc/resolv.conf"), ("hostname", "/etc/hostname"), ("hosts", "/etc/hosts"),
)

MASKED_PATHS: Final[tuple[str, ...]] = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
)

READONLY_PATHS: Final[tuple[str, ...]] = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)

# Device cgroup: deny everything, then allow the standard character devices; tun stays denied.
DEFAULT_DEVICE_RULES: Final[tuple[dict[str, Any], ...]] = (
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},  # /dev/zero
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},  # /dev/null
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},  # /dev/urandom
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},  # /dev/random
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},  # /dev/tty
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},  # /dev/console
    {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},  # /dev/net/tun
)

# Set in a container with its own network namespace (both are per network namespace).
NETWORK_SYSCTLS: Final[dict[str, str]] = {
    "net.ipv4.ip_unprivileged_port_start": "0",
    "net.ipv4.ping_group_range": "0 2147483647",
}

# Namespaces of a default container, in dockerd's order.
NAMESPACE_ORDER: Final[tuple[str, ...]] = ("mount", "network", "uts", "pid", "ipc")

# Options of a --tmpfs mount before the user's own.
TMPFS_DEFAULT_OPTIONS: Final[tuple[str, ...]] = ("noexec", "nosuid", "nodev")

CGROUP_PARENT: Final = "/sampan"

RLIMITS: Final[dict[str, str]] = {
    name: f"RLIMIT_{name.upper()}"
    for name in ("as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
                 "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")
}

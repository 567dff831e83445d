"""bpf(2): just what cgroup v2 device control needs.

cgroup v2 has no ``devices.allow`` file. Device access is decided by an eBPF program of type
``BPF_PROG_TYPE_CGROUP_DEVICE`` attached to the cgroup directory (see
Documentation/admin-guide/cgroup-v2.rst, "Device controller", and include/uapi/linux/bpf.h).
glibc has no wrapper for bpf(2), so every call goes through syscall(2) with a ``union bpf_attr``
laid out by hand below (only the members each command reads; the kernel requires the rest of
the union to be zero, which ctypes guarantees for a fresh structure).
"""

import ctypes
import os

from sampan.kernel.libc import LIBC, check

_SYS_BPF = 321  # x86_64

# enum bpf_cmd
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16

BPF_PROG_TYPE_CGROUP_DEVICE = 15  # enum bpf_prog_type
BPF_CGROUP_DEVICE = 6  # enum bpf_attach_type

# Several programs may be attached to one cgroup; a device access is allowed only if every
# program allows it. Attaching the new program before detaching the old one means there is
# never a moment where the cgroup has no filter at all.
BPF_F_ALLOW_MULTI = 1 << 1

_LOG_SIZE = 64 * 1024


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", ctypes.c_uint32),
        ("expected_attach_type", ctypes.c_uint32),
        ("_pad", ctypes.c_uint8 * 64),
    ]


class _AttachAttr(ctypes.Structure):
    _fields_ = [
        ("target_fd", ctypes.c_uint32),
        ("attach_bpf_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("attach_flags", ctypes.c_uint32),
        ("replace_bpf_fd", ctypes.c_uint32),
        ("_pad", ctypes.c_uint8 * 44),
    ]


class _QueryAttr(ctypes.Structure):
    _fields_ = [
        ("target_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("query_flags", ctypes.c_uint32),
        ("attach_flags", ctypes.c_uint32),
        ("prog_ids", ctypes.c_uint64),
        ("prog_cnt", ctypes.c_uint32),
        ("_pad", ctypes.c_uint8 * 44),
    ]


class _GetFdByIdAttr(ctypes.Structure):
    _fields_ = [
        ("prog_id", ctypes.c_uint32),
        ("next_id", ctypes.c_uint32),
        ("open_flags", ctypes.c_uint32),
        ("_pad", ctypes.c_uint8 * 52),
    ]


def _bpf(cmd: int, attr: ctypes.Structure, call: str, path: str | None) -> int:
    result = LIBC.syscall(
        ctypes.c_long(_SYS_BPF),
        ctypes.c_long(cmd),
        ctypes.byref(attr),
        ctypes.c_uint(ctypes.sizeof(attr)),
    )
    return check(int(result), call, path)


def prog_load_cgroup_device(insns: bytes, license: str = "GPL", name: str = "") -> int:
    """Load a cgroup device program (``insns``: 8-byte ``struct bpf_insn`` records); return its fd.

    A verifier rejection raises ``OSError`` whose message carries the verifier's log.
    """
    if len(insns) % 8:
        raise ValueError("a bpf program is a whole number of 8-byte instructions")
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    log = ctypes.create_string_buffer(_LOG_SIZE)
    attr = _ProgLoadAttr()
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE
    attr.insn_cnt = len(insns) // 8
    attr.insns = ctypes.addressof(code)
    attr.license = ctypes.addressof(lic)
    attr.prog_name = name.encode()[:15]
    attr.expected_attach_type = BPF_CGROUP_DEVICE
    # Ask for the verifier's log only after a failure: logging slows the load down.
    result = LIBC.syscall(
        ctypes.c_long(_SYS_BPF),
        ctypes.c_long(BPF_PROG_LOAD),
        ctypes.byref(attr),
        ctypes.c_uint(ctypes.sizeof(attr)),
    )
    if result >= 0:
        return int(result)
    err = ctypes.get_errno()
    attr.log_level = 1
    attr.log_size = _LOG_SIZE
    attr.log_buf = ctypes.addressof(log)
    LIBC.syscall(
        ctypes.c_long(_SYS_BPF),
        ctypes.c_long(BPF_PROG_LOAD),
        ctypes.byref(attr),
        ctypes.c_uint(ctypes.sizeof(attr)),
    )
    verifier = log.value.decode(errors="replace").strip()
    message = f"bpf prog load: {os.strerror(err)}"
    if verifier:
        message += f": {verifier}"
    raise OSError(err, message)


def prog_attach(cgroup_fd: int, prog_fd: int, path: str | None = None) -> None:
    """Attach a loaded device program to the cgroup open as ``cgroup_fd`` (multi mode)."""
    attr = _AttachAttr()
    attr.target_fd = cgroup_fd
    attr.attach_bpf_fd = prog_fd
    attr.attach_type = BPF_CGROUP_DEVICE
    attr.attach_flags = BPF_F_ALLOW_MULTI
    _bpf(BPF_PROG_ATTACH, attr, "bpf prog attach", path)


def prog_detach(cgroup_fd: int, prog_fd: int, path: str | None = None) -> None:
    """Detach the device program open as ``prog_fd`` from the cgroup ``cgroup_fd``."""
    attr = _AttachAttr()
    attr.target_fd = cgroup_fd
    attr.attach_bpf_fd = prog_fd
    attr.attach_type = BPF_CGROUP_DEVICE
    _bpf(BPF_PROG_DETACH, attr, "bpf prog detach", path)


def prog_query_device(cgroup_fd: int, path: str | None = None) -> list[int]:
    """Return the ids of the device programs attached directly to the cgroup ``cgroup_fd``."""
    capacity = 64
    ids = (ctypes.c_uint32 * capacity)()
    attr = _QueryAttr()
    attr.target_fd = cgroup_fd
    attr.attach_type = BPF_CGROUP_DEVICE
    attr.prog_ids = ctypes.addressof(ids)
    attr.prog_cnt = capacity
    _bpf(BPF_PROG_QUERY, attr, "bpf prog query", path)
    return [int(ids[i]) for i in range(min(attr.prog_cnt, capacity))]


def prog_get_fd_by_id(prog_id: int) -> int:
    """Open the loaded program ``prog_id`` (e.g. from :func:`prog_query_device`); return an fd."""
    attr = _GetFdByIdAttr()
    attr.prog_id = prog_id
    return _bpf(BPF_PROG_GET_FD_BY_ID, attr, "bpf prog get fd by id", None)

"""Boot a throwaway Linux VM whose only cgroup hierarchy is cgroup2, and run a command in it.

This host is hybrid (v1 hierarchies own cpu, memory, pids, io), so a pure cgroup v2 host is
made with qemu: Debian's kernel (``scripts/fetch-vm-kernel`` unpacks it under
/var/cache/sampan-vm), booted with ``cgroup_no_v1=all``, a tiny initramfs built here (busybox,
the 9p/virtio modules and ``tests/vm/init``), and the host's ``/`` shared read-only over 9p as
the guest's root, so the guest runs this checkout with the host's Python. The command's output
comes back on the second serial port; kernel messages on the first.

    vm = boot(["/usr/bin/python3", "-I", "tests/vm/guest_resource_checks.py"], workdir)
    result = vm.wait(timeout=600)      # VmResult: output (the command's), console, timings

Standalone: ``python3 tests/vm/boot.py`` boots the resource checks and prints their output.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VM_CACHE = Path(os.environ.get("SAMPAN_VM_CACHE", "/var/cache/sampan-vm"))
QEMU = os.environ.get("SAMPAN_VM_QEMU", "qemu-system-x86_64")
BUSYBOX = Path("/bin/busybox")  # Debian's busybox-static: the initramfs has no libc
INIT = Path(__file__).resolve().with_name("init")
GUEST_CHECKS = Path(__file__).resolve().with_name("guest_resource_checks.py")
DONE = "SAMPAN-VM-DONE"

# What the initramfs needs to reach the host's root: the virtio PCI transport and 9p over it
# (modules in Debian's kernel), virtio-blk for the block device the io.* checks limit.
ROOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "virtio_blk")

KERNEL_CMDLINE = (
    "console=ttyS0 panic=-1 quiet cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 "
    "mitigations=off"
)


class VmSetupError(RuntimeError):
    """qemu, the kernel or busybox is missing (install with scripts/install)."""


@dataclass(frozen=True)
class Kernel:
    image: Path
    modules: Path  # lib/modules/<release>


def find_kernel(cache: Path = VM_CACHE) -> Kernel:
    """The kernel scripts/fetch-vm-kernel unpacked (``<cache>/current``)."""
    current = cache / "current"
    images = sorted((current / "boot").glob("vmlinuz-*"))
    if not images:
        raise VmSetupError(f"no kernel in {current}/boot: run scripts/fetch-vm-kernel")
    release = images[-1].name.removeprefix("vmlinuz-")
    modules = current / "lib" / "modules" / release
    if not modules.is_dir():
        raise VmSetupError(f"no modules for {release} in {modules.parent}")
    return Kernel(images[-1], modules)


# --- kernel modules ------------------------------------------------------------------------


def _module_name(path: Path) -> str:
    return path.name.split(".ko")[0].replace("-", "_")


def module_depends(path: Path) -> list[str]:
    """The ``depends=`` field of a module's .modinfo section (what ``modinfo -F depends`` prints).

    .modinfo is a run of NUL-terminated ``key=value`` strings, so a byte search is enough.
    """
    data = path.read_bytes()
    match = re.search(rb"\x00depends=([^\x00]*)\x00", data)
    if match is None:
        return []
    return [name.replace("-", "_") for name in match.group(1).decode().split(",") if name]


def modules_in_load_order(modules_dir: Path, wanted: tuple[str, ...]) -> list[Path]:
    """``wanted`` and everything they depend on, each after its dependencies."""
    index = {_module_name(p): p for p in modules_dir.rglob("*.ko")}
    ordered: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        if name not in index:
            raise VmSetupError(f"kernel module {name} not found under {modules_dir}")
        for dependency in module_depends(index[name]):
            visit(dependency)
        ordered.append(index[name])

    for name in wanted:
        visit(name)
    return ordered


# --- initramfs (cpio "newc": the format the kernel unpacks) --------------------------------


class NewcArchive:
    """Writes a cpio newc archive (Documentation/driver-api/early-userspace/buffer-format.rst)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._ino = 1

    def _pad(self) -> None:
        self.data += b"\x00" * (-len(self.data) % 4)

    def _entry(self, name: str, mode: int, body: bytes = b"") -> None:
        encoded = name.encode() + b"\x00"
        fields = (self._ino, mode, 0, 0, 1, 0, len(body), 0, 0, 0, 0, len(encoded), 0)
        self._ino += 1
        self.data += b"070701" + b"".join(b"%08X" % f for f in fields) + encoded
        self._pad()
        self.data += body
        self._pad()

    def directory(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, body: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, body)

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return bytes(self.data)


def build_initramfs(target: Path, kernel: Kernel, command: list[str]) -> None:
    if not BUSYBOX.is_file():
        raise VmSetupError(f"{BUSYBOX} is missing: install busybox-static")
    for word in command:
        if not word or any(c.isspace() or c in "'\"\\$`" for c in word):
            raise VmSetupError(f"guest command word {word!r} cannot pass through /init")
    modules = modules_in_load_order(kernel.modules, ROOT_MODULES)
    archive = NewcArchive()
    for directory in ("bin", "modules"):
        archive.directory(directory)
    archive.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    archive.file("init", INIT.read_bytes(), 0o755)
    archive.file("guest.env", f"SAMPAN_VM_COMMAND={shlex.quote(' '.join(command))}\n".encode())
    for module in modules:
        archive.file(f"modules/{module.name}", module.read_bytes())
    archive.file("modules/order", "".join(f"{m.name}\n" for m in modules).encode())
    target.write_bytes(archive.finish())


# --- qemu ----------------------------------------------------------------------------------


def choose_accel() -> str:
    """``kvm`` only where the CPU exposes virtualization; otherwise TCG (software emulation).

    This machine has /dev/kvm but no vmx/svm flag: qemu opens KVM there and then hangs in the
    BIOS, so /dev/kvm alone is not enough. SAMPAN_VM_ACCEL overrides the choice.
    """
    if "SAMPAN_VM_ACCEL" in os.environ:
        return os.environ["SAMPAN_VM_ACCEL"]
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if os.access("/dev/kvm", os.R_OK | os.W_OK) and re.search(r"^flags.*\b(vmx|svm)\b", flags,
                                                             re.M):
        return "kvm"
    return "tcg"


@dataclass
class VmResult:
    returncode: int | None  # qemu's exit status (None: killed at the timeout)
    output: str  # what the guest command wrote (second serial port), \r removed
    console: str  # kernel messages (first serial port)
    seconds: float
    accel: str

    @property
    def lines(self) -> list[str]:
        return self.output.splitlines()


class Vm:
    """A running qemu; :meth:`wait` collects the result, :meth:`kill` ends it by its pid."""

    def __init__(self, process: subprocess.Popen[bytes], workdir: Path, accel: str) -> None:
        self.process = process
        self.workdir = workdir
        self.accel = accel
        self.started = time.monotonic()

    @property
    def output_path(self) -> Path:
        return self.workdir / "output.log"

    @property
    def console_path(self) -> Path:
        return self.workdir / "console.log"

    def read_output(self) -> str:
        try:
            return self.output_path.read_bytes().decode(errors="replace").replace("\r", "")
        except FileNotFoundError:
            return ""

    def wait(self, timeout: float) -> VmResult:
        try:
            returncode: int | None = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            returncode = None
        console = (self.console_path.read_bytes().decode(errors="replace").replace("\r", "")
                   if self.console_path.exists() else "")
        return VmResult(returncode, self.read_output(), console,
                        time.monotonic() - self.started, self.accel)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()


def boot(command: list[str], workdir: Path, *, memory_mib: int = 1536, cpus: int = 2,
         kernel: Kernel | None = None) -> Vm:
    """Start the VM running ``command`` (argv, run as root in the guest's / = the host's /)."""
    kernel = kernel or find_kernel()
    initramfs = workdir / "initramfs.cpio"
    build_initramfs(initramfs, kernel, command)
    # a small sparse disk: the guest's io.max / io.weight checks need a real block device
    disk = workdir / "disk.img"
    with open(disk, "wb") as image:
        image.truncate(16 << 20)
    accel = choose_accel()
    argv = [
        QEMU, "-accel", accel, "-cpu", "host" if accel == "kvm" else "max",
        "-smp", str(cpus), "-m", str(memory_mib),
        "-nodefaults", "-display", "none", "-no-reboot",
        "-kernel", str(kernel.image), "-initrd", str(initramfs), "-append", KERNEL_CMDLINE,
        # multidevs=remap: the host's / spans several filesystems; keep inode numbers unique
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,"
                   "multidevs=remap",
        "-drive", f"file={disk},if=virtio,format=raw,cache=unsafe",
        "-serial", f"file:{workdir / 'console.log'}",
        "-serial", f"file:{workdir / 'output.log'}",
    ]
    with open(workdir / "qemu.log", "wb") as qemu_log:
        try:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=qemu_log)
        except FileNotFoundError as exc:
            raise VmSetupError(f"{QEMU} is missing: install qemu-system-x86") from exc
    return Vm(process, workdir, accel)


def guest_checks_command(work: str = "/run/sampan-vm") -> list[str]:
    """The guest command that runs tests/vm/guest_resource_checks.py on this checkout."""
    images = os.environ.get("SAMPAN_IMAGES", str(REPO.parent / "shared" / "images"))
    # this interpreter (the guest sees the same files); bin/sampan-runc picks its own
    return [os.path.realpath(sys.executable), "-I", str(GUEST_CHECKS), "--repo", str(REPO),
            "--rootfs-tar", str(Path(images) / "busybox-rootfs.tar"), "--work", work]


def main() -> int:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sampan-vm-") as tmp:
        vm = boot(guest_checks_command(), Path(tmp))
        try:
            result = vm.wait(timeout=float(os.environ.get("SAMPAN_VM_TIMEOUT", "900")))
        finally:
            vm.kill()
        print(result.output)
        print(f"# accel={result.accel} qemu={result.returncode} seconds={result.seconds:.1f}",
              file=sys.stderr)
        if DONE not in result.output:
            print(result.console[-4000:], file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

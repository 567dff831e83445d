"""``create``: fork the container's init, wait until it is ready and blocked on exec.fifo.

Runs in the runtime process, which stays in the host's namespaces (hooks of kind prestart and
createRuntime run here). The init is left an orphan when this process exits, so it is
re-parented to the caller's subreaper (containerd's shim, conmon), which reaps it.
"""


from __future__ import annotations

import os
import socket

from sampan import errdefs
from sampan.runtime import cgroups, protocol, spec, state
from sampan.runtime.cgroup_prime import release_migration_lock
from sampan.runtime.hooks import run_hooks
from sampan.runtime.init import InitPlan, preload_console, run_stage1

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class CreateOptions:
    def __init__(self, bundle: str, pid_file: str | None = None,
                 console_socket: str | None = None, no_pivot: bool = False,
                 preserve_fds: int = 0, foreground_tty: bool = False,
                 no_new_keyring: bool = False) -> None:
        self.bundle = os.path.abspath(bundle)
        self.no_new_keyring = no_new_keyring
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds
        self.foreground_tty = foreground_tty


class Created:
    """What the caller of :func:`create` gets back."""

    def __init__(self, state: dict[str, Any], pty_master: int | None) -> None:
        self.state = state
        self.pty_master = pty_master


def compile_seccomp(config: dict[str, Any], root: str) -> tuple[bytes, int] | None:
    profile = (config.get("linux") or {}).get("seccomp")
    if not profile:
        return None
    from sampan.runtime.seccomp import compile_profile

    compiled = compile_profile(profile, os.path.join(root, "seccomp-cache"))
    return compiled.program, compiled.flags


# Devices every container may use whatever its rules say, as runc allows them (runtime-spec
# "Default Devices" plus ptys, the console and tun): appended after the config's own rules.
_ALWAYS_ALLOWED_DEVICES: list[dict[str, Any]] = [
    {"allow": True, "type": "c", "major": None, "minor": None, "access": "m"},
    {"allow": True, "type": "b", "major": None, "minor": None, "access": "m"},
    *({"allow": True, "type": "c", "major": major, "minor": minor, "access": "rwm"}
      for major, minor in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2),
                           (136, None), (10, 200))),
]


def device_rules(linux: dict[str, Any]) -> dict[str, Any]:
    """linux.resources with the default devices and linux.devices allowed after its rules."""
    resources = dict(linux.get("resources") or {})
    rules = list(resources.get("devices") or [])
    if not rules:
        return resources
    rules.extend(_ALWAYS_ALLOWED_DEVICES)
    for device in linux.get("devices") or []:
        rules.append({"allow": True, "type": device.get("type", "c"),
                      "major": device.get("major"), "minor": device.get("minor"),
                      "access": "rwm"})
    resources["devices"] = rules
    return resources


def write_pid_file(path: str, pid: int) -> None:
    """Decimal digits, no newline (go-runc reads it with strconv.Atoi); atomic."""
    temp = f"{path}.{os.getpid()}.tmp"
    with open(temp, "w") as out:
        out.write(str(pid))
    os.rename(temp, path)


def _write_id_maps(pid: int, linux: dict[str, Any]) -> None:
    for name, key in (("uid_map", "uidMappings"), ("gid_map", "gidMappings")):
        lines = "".join(
            f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in linux.get(key) or []
        )
        if lines:
            with open(f"/proc/{pid}/{name}", "w") as id_map:
                id_map.write(lines)


def create(root: str, container_id: str, options: CreateOptions) -> Created:
    state.validate_id(container_id)
    config = spec.load_bundle(options.bundle)
    spec.validate(config, options.bundle)
    process = config["process"]
    if process.get("terminal") and not options.console_socket and not options.foreground_tty:
        raise errdefs.InvalidParameter(
            "cannot allocate tty if sampan-runc will detach without setting console socket")
    if not process.get("terminal") and options.console_socket:
        raise errdefs.InvalidParameter(
            "cannot use console socket if sampan-runc will not detach or allocate tty")
    os.makedirs(root, 0o700, exist_ok=True)
    directory = state.container_dir(root, container_id)
    try:
        os.mkdir(directory, 0o711)
    except FileExistsError:
        raise errdefs.Conflict(f"container with id exists: {container_id}") from None
    manager: cgroups.CgroupManager | None = None
    children: list[int] = []
    try:
        seccomp = compile_seccomp(config, root)
        linux = config.get("linux") or {}
        manager = cgroups.open_manager(linux.get("cgroupsPath"), container_id)
        manager.create()
        fifo = os.path.join(directory, state.EXEC_FIFO)
        os.mkfifo(fifo, 0o622)
        # past the umask: the init reopens the fifo through /proc/self/fd, a permission check
        # it fails as a user namespace's root (an unmapped uid to the host's root-owned file)
        os.chmod(fifo, 0o622)
        fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        console_sock = None
        if options.console_socket:
            console_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            console_sock.connect(options.console_socket)
        rootfs = spec.root_path(config, options.bundle)
        record: dict[str, Any] = {
            "id": container_id, "pid": 0, "pid_start": None, "bundle": options.bundle,
            "rootfs": rootfs, "created": state.rfc3339_now(), "owner": "",
            "annotations": config.get("annotations") or {}, "config": config,
            "cgroup": manager.to_state(),
        }
        parent_end, child_end = protocol.channel()
        plan = InitPlan(config, rootfs, child_end, fifo_fd, console_sock, options.no_pivot,
                        options.preserve_fds, seccomp,
                        state.oci_state(record, state.CREATING), options.foreground_tty,
                        options.no_new_keyring)
        preload_console(process)
        stage1 = os.fork()
        if stage1 == 0:
            parent_end.close()
            run_stage1(plan)
        children.append(stage1)
        child_end.close()
        os.close(fifo_fd)
        if console_sock is not None:
            console_sock.close()
        pty_master = _drive_init(parent_end, stage1, children, manager, config, record, root)
        parent_end.close()
        record["pid_start"] = state.process_start_time(record["pid"])
        state.save(root, record)
        if options.pid_file:
            write_pid_file(options.pid_file, record["pid"])
        return Created(record, pty_master)
    except BaseException:
        _undo(children, manager, directory)
        raise


def _drive_init(sync: socket.socket, stage1: int, children: list[int],
                manager: cgroups.CgroupManager, config: dict[str, Any],
                record: dict[str, Any], root: str) -> int | None:
    linux = config.get("linux") or {}
    protocol.send(sync, protocol.GO)
    pty_master: int | None = None
    try:
        while True:
            message, fds = protocol.receive(sync)
            kind = message["kind"]
            if kind == protocol.USERMAP_REQUEST:
                _write_id_maps(stage1, linux)
                protocol.send(sync, protocol.USERMAP_DONE)
            elif kind == protocol.INIT_PID:
                record["pid"] = message["pid"]
                children.append(message["pid"])
                try:
                    manager.add_process(record["pid"])
                    manager.apply_resources(device_rules(linux))
                    protocol.send(sync, protocol.CGROUP_DONE)
                    release_migration_lock()
                except OSError:
                    _raise_queued_error(sync, "unable to start container process")
                    raise
                os.waitpid(stage1, 0)
                children.remove(stage1)
            elif kind == protocol.HOOKS_REQUEST:
                hook_state = state.oci_state(record, state.CREATED)
                hook_state["status"] = state.CREATING
                for hook_kind in ("prestart", "createRuntime"):
                    try:
                        run_hooks(config.get("hooks"), hook_kind, hook_state,
                                  cwd=record["bundle"])
                    except errdefs.SampanError as exc:
                        raise errdefs.System(f"error running {hook_kind} hook: {exc}") from None
                protocol.send(sync, protocol.HOOKS_DONE)
            elif kind == protocol.PTY_MASTER:
                pty_master = fds[0]
            elif kind == protocol.READY:
                return pty_master
            elif kind == protocol.ERROR:
                raise errdefs.System(
                    f"unable to start container process: {message['step']}: "
                    f"{message['message']}")
            else:
                raise protocol.ProtocolError(f"unexpected message {kind} from init")
    except protocol.ProtocolError as exc:
        raise errdefs.System(f"unable to start container process: {exc}") from None


def _raise_queued_error(sync: socket.socket, prefix: str) -> None:
    """If the child already reported its failure (and so is gone), raise that instead."""
    queued = protocol.queued_error(sync)
    if queued is not None:
        raise errdefs.System(f"{prefix}: {queued.get('step')}: {queued.get('message')}")


def _undo(children: list[int], manager: cgroups.CgroupManager | None, directory: str) -> None:
    import signal

    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except ChildProcessError:
            # the init is not our child (its parent, stage 1, exited): wait until it is gone
            _wait_gone(pid)
        except ProcessLookupError:
            pass
    if manager is not None:
        try:
            manager.destroy()
        except OSError:
            pass
    state.remove_container_dir(os.path.dirname(directory), os.path.basename(directory))


def _wait_gone(pid: int, timeout: float = 5.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while state.process_start_time(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.005)

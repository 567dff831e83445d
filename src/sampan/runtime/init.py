"""The child side of ``create``: stage 1 (namespaces) and the container's init (pid 1).

Both run in processes forked from the single-threaded runtime process, which imported all
that they need beforehand: after pivot_root the host's Python library is out of reach.
Every step runs under :func:`_step`, so a failure reaches the parent as ``ERROR {step,
message}`` over the sync socket before the child exits.
"""


from __future__ import annotations

import encodings.ascii  # noqa: F401 - codecs load lazily, and after pivot_root they cannot
import errno
import os
import signal
import socket
import time

from sampan.kernel import mount as m
from sampan.kernel import namespaces as ns
from sampan.kernel import process as kproc
from sampan.runtime import protocol, rootfs, userproc
from sampan.runtime.hooks import load_runner, run_hooks

# typing is imported only by type checkers: its import costs ~4 ms on every container start
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn


def preload_console(process: dict[str, Any]) -> None:
    """Import the pty code before fork when a terminal is wanted: the child cannot import it
    once it has pivoted or joined the container's mount namespace, and containers without a
    terminal should not pay for termios and fcntl."""
    if process.get("terminal"):
        from sampan.runtime import console  # noqa: F401


class InitPlan:
    """What the child needs, computed by the parent before fork."""

    def __init__(self, config: dict[str, Any], rootfs_path: str, sync: socket.socket,
                 fifo_fd: int | None, console_sock: socket.socket | None, no_pivot: bool,
                 preserve_fds: int, seccomp: tuple[bytes, int] | None,
                 hook_state: dict[str, Any], foreground_tty: bool,
                 no_new_keyring: bool = False) -> None:
        self.config = config
        self.process: dict[str, Any] = config["process"]
        self.linux: dict[str, Any] = config.get("linux") or {}
        self.rootfs = rootfs_path
        self.sync = sync
        self.fifo_fd = fifo_fd
        self.console_sock = console_sock
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds
        self.seccomp = seccomp
        self.hook_state = hook_state
        self.foreground_tty = foreground_tty
        self.no_new_keyring = no_new_keyring
        self.namespaces: dict[str, str | None] = {
            n["type"]: n.get("path") for n in self.linux.get("namespaces") or []
        }

    @property
    def new_user_ns(self) -> bool:
        return "user" in self.namespaces and not self.namespaces["user"]

    @property
    def needs_parent_hooks(self) -> bool:
        hooks = self.config.get("hooks") or {}
        return bool(hooks.get("prestart") or hooks.get("createRuntime"))


_current_step = "init"
# SAMPAN_RUNC_TRACE=1: every setup step prints its duration on stderr (where start-up time goes)
_TRACE = bool(os.environ.get("SAMPAN_RUNC_TRACE"))


class _step:
    """Name the setup step in progress, so a failure reports which one (no contextlib: its
    import is paid on every container start)."""

    def __init__(self, name: str) -> None:
        global _current_step
        _current_step = name
        if _TRACE:
            self.started = time.perf_counter()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_exc: object) -> None:
        if _TRACE:
            took = (time.perf_counter() - self.started) * 1000
            os.write(2, f"sampan-runc trace: {os.getpid()} {_current_step}: {took:.2f} ms "
                        f"(at {time.perf_counter() * 1000:.1f})\n".encode())


def _die(sync: socket.socket, exc: BaseException) -> NoReturn:
    unsent = protocol.send_error(sync, _current_step, exc)
    if unsent is not None:
        try:
            os.write(2, f"sampan-runc init: {unsent}\n".encode())
        except OSError:
            pass
    os._exit(127 if isinstance(exc, userproc.ExecNotFound) else 1)


def run_stage1(plan: InitPlan) -> NoReturn:
    """Join or create namespaces, then fork the container's init into the new pid namespace."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        with _step("waiting for the runtime"):
            protocol.expect(plan.sync, protocol.GO)
        _join_namespaces(plan, user_only=True)
        if plan.new_user_ns:
            with _step("unshare user namespace"):
                ns.unshare(ns.CLONE_NEWUSER)
            protocol.send(plan.sync, protocol.USERMAP_REQUEST)
            protocol.expect(plan.sync, protocol.USERMAP_DONE)
            with _step("become root in the user namespace"):
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
        _join_namespaces(plan, user_only=False)
        flags = 0
        for kind, path in plan.namespaces.items():
            # the cgroup namespace is made by init once the runtime has moved it into its
            # cgroup: the namespace's root is the cgroup its creator is in at that moment
            if kind not in ("user", "cgroup") and not path:
                flags |= ns.NAMESPACES[kind][0]
        with _step("unshare namespaces"):
            ns.unshare(flags)
        with _step("fork the container's init"):
            pid = os.fork()
        if pid == 0:
            run_init(plan)
        protocol.send(plan.sync, protocol.INIT_PID, pid=pid)
        os._exit(0)
    except BaseException as exc:
        _die(plan.sync, exc)


def _join_namespaces(plan: InitPlan, user_only: bool) -> None:
    for kind, path in plan.namespaces.items():
        if not path or (kind == "user") != user_only:
            continue
        with _step(f"join {kind} namespace {path}"):
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                ns.setns(fd, ns.NAMESPACES[kind][0], path)
            finally:
                os.close(fd)


def run_init(plan: InitPlan) -> NoReturn:
    """Pid 1 of the container: build the rootfs, wait for `start`, exec the user process."""
    try:
        _init_steps(plan)
    except BaseException as exc:
        _die(plan.sync, exc)
    os._exit(1)  # unreachable: _init_steps execs or raises


def _init_steps(plan: InitPlan) -> None:
    process = plan.process
    linux = plan.linux
    with _step("setsid"):
        os.setsid()
    # /proc is still the host's here, so /proc/self names our pid as the runtime sees it
    plan.hook_state["pid"] = int(os.readlink("/proc/self"))
    if not plan.no_new_keyring:
        with _step("join a new session keyring"):
            try:
                kproc.join_new_session_keyring("_ses." + plan.hook_state["id"])
            except OSError as exc:
                # ENOSYS/EACCES where keyrings are off or filtered; the container runs on
                if exc.errno not in (errno.ENOSYS, errno.EACCES, errno.EPERM):
                    raise
    with _step("prepare rootfs " + plan.rootfs):
        rootfs.prepare_root(plan.rootfs, linux.get("rootfsPropagation"))
    mounts = plan.config.get("mounts") or []
    cgroupns = "cgroup" in plan.namespaces
    in_cgroup = False
    for spec in mounts:
        if spec.get("type") in ("cgroup", "cgroup2") and not in_cgroup:
            _enter_cgroup(plan)
            in_cgroup = True
        with _step(f"mount {spec.get('type') or 'bind'} {spec.get('source', '')} on "
                   f"{spec['destination']}"):
            rootfs.mount_one(plan.rootfs, spec, cgroupns)
    if not in_cgroup:
        _enter_cgroup(plan)
    if not rootfs.dev_is_bind_mounted(mounts):
        with _step("create devices"):
            rootfs.create_devices(plan.rootfs, linux.get("devices") or [], plan.new_user_ns
                                  or "user" in plan.namespaces)
    if plan.needs_parent_hooks:
        protocol.send(plan.sync, protocol.HOOKS_REQUEST)
        with _step("prestart/createRuntime hooks"):
            protocol.expect(plan.sync, protocol.HOOKS_DONE)
    with _step("createContainer hooks"):
        run_hooks(plan.config.get("hooks"), "createContainer", plan.hook_state)
    load_runner(plan.config.get("hooks"), "startContainer")
    with _step("pivot_root " + plan.rootfs):
        if plan.no_pivot:
            rootfs.move_root(plan.rootfs)
        else:
            rootfs.pivot_root(plan.rootfs)
    if process.get("terminal"):
        with _step("set up the console"):
            _setup_console(plan)
    if "uts" in plan.namespaces:
        with _step("set hostname"):
            if plan.config.get("hostname"):
                kproc.sethostname(plan.config["hostname"])
            if plan.config.get("domainname"):
                kproc.setdomainname(plan.config["domainname"])
    for key, value in (linux.get("sysctl") or {}).items():
        with _step(f"write sysctl {key}"), open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(str(value))
    with _step("mask paths"):
        rootfs.mask_paths(linux.get("maskedPaths") or [])
    with _step("make paths read-only"):
        rootfs.make_readonly(linux.get("readonlyPaths") or [])
    if (plan.config.get("root") or {}).get("readonly"):
        with _step("make the root read-only"):
            rootfs.make_root_readonly()
    if linux.get("personality"):
        with _step("set personality"):
            domain = linux["personality"].get("domain", "LINUX")
            kproc.personality(0x0008 if domain == "LINUX32" else 0)
    with _step("set rlimits"):
        userproc.apply_rlimits(process.get("rlimits") or [])
    if "oomScoreAdj" in process:
        with _step("write oom_score_adj"):
            userproc.write_oom_score_adj(int(process["oomScoreAdj"]))
    user = process.get("user") or {}
    env = userproc.build_env(process.get("env") or [], int(user.get("uid", 0)))
    cwd = process.get("cwd") or "/"
    with _step("check cwd " + cwd):
        if not os.path.isdir(cwd):
            raise FileNotFoundError(2, f"chdir to cwd ({cwd!r}) set in config.json failed: "
                                       "no such file or directory")
    with _step("find the executable"):
        executable = userproc.find_executable(process["args"][0], env, cwd)
    if plan.fifo_fd is not None:
        protocol.send(plan.sync, protocol.READY)
        with _step("wait for start"):
            fifo = os.open(f"/proc/self/fd/{plan.fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
            os.write(fifo, b"0")
            os.close(fifo)
            os.close(plan.fifo_fd)
    with _step("startContainer hooks"):
        run_hooks(plan.config.get("hooks"), "startContainer", plan.hook_state)
    if plan.fifo_fd is None:
        protocol.send(plan.sync, protocol.READY)
    _exec_user_process(plan, process, executable, env)


def _enter_cgroup(plan: InitPlan) -> None:
    """Wait until the runtime has moved us into the container's cgroup, then make the
    cgroup namespace. The runtime does the move while we build the rootfs: the first
    migration after a quiet spell waits out an RCU grace period (see cgroup_prime)."""
    with _step("join the container's cgroup"):
        protocol.expect(plan.sync, protocol.CGROUP_DONE)
    if "cgroup" in plan.namespaces and not plan.namespaces["cgroup"]:
        with _step("unshare cgroup namespace"):
            ns.unshare(ns.CLONE_NEWCGROUP)


def _exec_user_process(plan: InitPlan, process: dict[str, Any], executable: str,
                       env: dict[str, str]) -> None:
    program, flags = plan.seccomp if plan.seccomp else (None, 0)
    with _step("exec " + process["args"][0]):
        userproc.finalize_and_exec(process, program, flags, executable, env,
                                   plan.preserve_fds)


def _setup_console(plan: InitPlan) -> None:
    from sampan.runtime import console  # preloaded by create: see preload_console()

    master, slave = console.open_pty()
    size = plan.process.get("consoleSize")
    if size:
        console.set_size(master, int(size.get("height", 0)), int(size.get("width", 0)))
    if plan.console_sock is not None:
        console.send_master(plan.console_sock, master)
        plan.console_sock.close()
    elif plan.foreground_tty:
        protocol.send(plan.sync, protocol.PTY_MASTER, fds=[master])
    os.close(master)
    if os.path.exists("/dev"):
        target = "/dev/console"
        if not os.path.lexists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        m.mount(slave, target, "bind", m.MS_BIND)
    console.become_tty_session_leader(slave)


class ExecPlan:
    """What an ``exec``'d process needs: the namespaces of the running init to join."""

    def __init__(self, process: dict[str, Any], namespace_files: list[tuple[str, str]],
                 sync: socket.socket, console_sock: socket.socket | None,
                 seccomp: tuple[bytes, int] | None, preserve_fds: int,
                 foreground_tty: bool) -> None:
        self.process = process
        self.namespace_files = namespace_files  # (oci type, /proc/<pid>/ns/<name>), user first
        self.sync = sync
        self.console_sock = console_sock
        self.seccomp = seccomp
        self.preserve_fds = preserve_fds
        self.foreground_tty = foreground_tty


def run_exec_stage1(plan: ExecPlan) -> NoReturn:
    """Enter the container's namespaces; fork so the process is inside its pid namespace."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        with _step("waiting for the runtime"):
            protocol.expect(plan.sync, protocol.GO)
        fds = []
        for kind, path in plan.namespace_files:
            with _step(f"open {kind} namespace {path}"):
                fds.append((kind, path, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
        for kind, path, fd in fds:
            with _step(f"join {kind} namespace {path}"):
                ns.setns(fd, ns.NAMESPACES[kind][0], path)
                os.close(fd)
        with _step("fork the exec'd process"):
            pid = os.fork()
        if pid == 0:
            _exec_stage2(plan)
        protocol.send(plan.sync, protocol.INIT_PID, pid=pid)
        os._exit(0)
    except BaseException as exc:
        _die(plan.sync, exc)


def _exec_stage2(plan: ExecPlan) -> NoReturn:
    try:
        process = plan.process
        with _step("setsid"):
            os.setsid()
        if process.get("terminal"):
            with _step("set up the console"):
                from sampan.runtime import console  # preloaded: see preload_console()

                master, slave = console.open_pty()
                size = process.get("consoleSize")
                if size:
                    console.set_size(master, int(size.get("height", 0)),
                                     int(size.get("width", 0)))
                if plan.console_sock is not None:
                    console.send_master(plan.console_sock, master)
                    plan.console_sock.close()
                elif plan.foreground_tty:
                    protocol.send(plan.sync, protocol.PTY_MASTER, fds=[master])
                os.close(master)
                console.become_tty_session_leader(slave)
        with _step("set rlimits"):
            userproc.apply_rlimits(process.get("rlimits") or [])
        if "oomScoreAdj" in process:
            with _step("write oom_score_adj"):
                userproc.write_oom_score_adj(int(process["oomScoreAdj"]))
        user = process.get("user") or {}
        env = userproc.build_env(process.get("env") or [], int(user.get("uid", 0)))
        cwd = process.get("cwd") or "/"
        with _step("check cwd " + cwd):
            if not os.path.isdir(cwd):
                raise FileNotFoundError(2, f"chdir to cwd ({cwd!r}) failed: "
                                           "no such file or directory")
        with _step("find the executable"):
            executable = userproc.find_executable(process["args"][0], env, cwd)
        with _step("join the container's cgroup"):
            protocol.expect(plan.sync, protocol.CGROUP_DONE)
        protocol.send(plan.sync, protocol.READY)
        program, flags = plan.seccomp if plan.seccomp else (None, 0)
        with _step("exec " + process["args"][0]):
            userproc.finalize_and_exec(process, program, flags, executable, env,
                                       plan.preserve_fds)
    except BaseException as exc:
        _die(plan.sync, exc)
    os._exit(1)

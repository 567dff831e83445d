"""The supervisor's ops (see ``sampan.supervisor.protocol``), on one reactor.

Every op either replies at once or starts a runtime call and replies from its completion;
nothing blocks. Children: the runtime calls (reaped and completed), the containers' inits and
exec processes (re-parented to us when the runtime exits: we are a child subreaper), reaped
from SIGCHLD through the signal wakeup fd. An exit reaped before the runtime told us the pid
(a fast exec) is kept in ``unclaimed`` until the pid file is read.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

from sampan import errdefs
from sampan.supervisor import protocol
from sampan.supervisor.server import oom
from sampan.supervisor.server.connection import Connection
from sampan.supervisor.server.jsonlog import JsonLog
from sampan.supervisor.server.reactor import Reactor
from sampan.supervisor.server.runtime import (
    RuntimeCall,
    default_runtime_path,
    global_args,
    spawn,
)
from sampan.supervisor.server.standby import StandbyPool, standby_enabled
from sampan.supervisor.server.stdio import ProcessIO, set_nonblocking
from sampan.supervisor.server.tasks import (
    CREATED,
    PAUSED,
    RUNNING,
    STOPPED,
    Process,
    Task,
    TaskRecords,
    process_start_time,
)

EXIT_GRACE = 2.0  # seconds to wait for the output to end after a process exited
UNCLAIMED_MAX = 4096
SUBSCRIBER_MAX_PENDING = 16 << 20
UNKNOWN_EXIT = 255  # the exit code of a process we could not reap (supervisor restarted)


class Request:
    __slots__ = ("conn", "msg", "req")

    def __init__(self, conn: Connection, msg: dict[str, Any]) -> None:
        self.conn = conn
        self.msg = msg
        self.req = msg.get("req")

    def ok(self, **fields: Any) -> None:
        self.conn.send(protocol.encode(protocol.ok_reply(self.req, **fields)))

    def fail(self, error: BaseException) -> None:
        self.conn.send(protocol.encode(protocol.error_reply(self.req, error)))

    def text(self, key: str) -> str:
        value = self.msg.get(key)
        if not isinstance(value, str) or not value:
            raise errdefs.InvalidParameter(f"{self.msg.get('op')}: {key} must be a non-empty "
                                           "string")
        return value

    def optional_text(self, key: str) -> str | None:
        value = self.msg.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise errdefs.InvalidParameter(f"{self.msg.get('op')}: {key} must be a string")
        return value

    def number(self, key: str, default: int = 0) -> int:
        value = self.msg.get(key, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise errdefs.InvalidParameter(f"{self.msg.get('op')}: {key} must be an integer")
        return value


def parse_signal(value: Any) -> int:
    """9, "9", "KILL" or "SIGKILL" -> 9."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isdigit():
        number = int(value)
    elif isinstance(value, str) and value:
        name = value.upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        try:
            number = int(signal.Signals[name])
        except KeyError:
            raise errdefs.InvalidParameter(f"invalid signal: {value}") from None
    else:
        raise errdefs.InvalidParameter(f"invalid signal: {value!r}")
    if not 0 < number < 65:
        raise errdefs.InvalidParameter(f"invalid signal: {value}")
    return number


def log_error(context: str) -> None:
    sys.stderr.write(f"sampan-supervisor: {context}\n{traceback.format_exc()}")
    sys.stderr.flush()


class Supervisor:
    def __init__(self, exec_root: str, reactor: Reactor | None = None) -> None:
        self.exec_root = exec_root
        self.reactor = reactor or Reactor()
        self.tasks: dict[str, Task] = {}
        self.records = TaskRecords(os.path.join(exec_root, "tasks"))
        self.calls: dict[int, RuntimeCall] = {}
        self.processes: dict[int, Process] = {}
        self.unclaimed: collections.OrderedDict[int, tuple[int, float]] = \
            collections.OrderedDict()
        self.subscribers: set[Connection] = set()
        self.running = True
        # a runtime fork server (sampan-runc only): a call then costs its work, not the
        # interpreter's start-up and imports (see standby.py)
        self.standby = StandbyPool(
            spawn, self.reactor.set_reader, self._child_exited,
            later=lambda fn: self.reactor.call_later(0.0, fn), enabled=standby_enabled())
        self._listener: socket.socket | None = None
        self._wakeup_r = -1
        self._ops: dict[str, Callable[[Request], None]] = {
            op: getattr(self, f"op_{op}") for op in protocol.OPS
        }

    # ------------------------------------------------------------------ setup
    def install_signal_handlers(self) -> None:
        """SIGCHLD wakes the loop through a pipe (the handler itself does nothing); SIGTERM
        and SIGINT end the loop (the containers keep running)."""
        read_end, write_end = os.pipe()
        set_nonblocking(read_end)
        set_nonblocking(write_end)
        self._wakeup_r = read_end
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda _signum, _frame: None)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.reactor.set_reader(read_end, self._wakeup)

    def _stop(self, _signum: int, _frame: Any) -> None:
        self.running = False

    def listen(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, 0o600)
        listener.listen(128)
        listener.setblocking(False)
        self._listener = listener
        self.reactor.set_reader(listener.fileno(), self._accept)

    def serve_forever(self) -> None:
        self.standby.fill(default_runtime_path())
        try:
            while self.running:
                self.reactor.run_once()
                # a SIGCHLD between two selects is in the wakeup pipe; reap each round anyway
                self.reap()
        finally:
            self.standby.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                log_error("accept")
                return
            conn = Connection(self.reactor, sock, self._on_line, self._on_close)
            del conn

    def _on_close(self, conn: Connection) -> None:
        self.subscribers.discard(conn)

    def _on_line(self, conn: Connection, line: bytes) -> None:
        try:
            msg = protocol.decode(line)
        except errdefs.SampanError as error:
            conn.send(protocol.encode(protocol.error_reply(None, error)))
            return
        request = Request(conn, msg)
        op = msg.get("op")
        handler = self._ops.get(op) if isinstance(op, str) else None
        if handler is None:
            request.fail(errdefs.InvalidParameter(f"unknown op: {op!r}"))
            return
        try:
            handler(request)
        except errdefs.SampanError as error:
            request.fail(error)
        except OSError as error:
            request.fail(errdefs.System(f"{op}: {error}"))
        except Exception as error:  # a bug must not end the supervisor: report it
            log_error(f"op {op}")
            request.fail(errdefs.System(f"{op}: internal error: {error!r}"))

    # ------------------------------------------------------------------ restore
    def restore(self) -> None:
        """Tasks from a previous supervisor's records. Their processes are no longer our
        children: a live one is watched through a pidfd (exit code unknown), and its stdio
        is gone with the previous supervisor."""
        for record in self.records.load_all():
            task = Task.from_record(record)
            self.tasks[task.id] = task
            init = task.init
            if init.exited or not init.pid:
                continue
            if process_start_time(init.pid) != init.start_time or init.start_time is None:
                self._restored_exit(task)
                continue
            try:
                pidfd = os.pidfd_open(init.pid)
            except OSError:
                self._restored_exit(task)
                continue
            self.reactor.set_reader(pidfd, functools.partial(self._pidfd_exit, task, pidfd))

    def _pidfd_exit(self, task: Task, pidfd: int) -> None:
        self.reactor.forget(pidfd)
        os.close(pidfd)
        self._restored_exit(task)

    def _restored_exit(self, task: Task) -> None:
        init = task.init
        if init.exited:
            return
        init.exit_code = UNKNOWN_EXIT
        init.exited_at = protocol_time()
        init.oom_killed = oom.read_oom_kills(task.oom_counter) > task.oom_baseline
        self._finish(init)

    # ------------------------------------------------------------------ children
    def _wakeup(self) -> None:
        try:
            while os.read(self._wakeup_r, 4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        self.reap()

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            try:
                self._child_exited(pid, status)
            except Exception:
                log_error(f"exit of pid {pid}")

    def _child_exited(self, pid: int, status: int) -> None:
        if self.standby.exited(pid):
            return
        call = self.calls.pop(pid, None)
        if call is not None:
            call.status = status
            if call.finished():
                self._complete(call)
            return
        process = self.processes.pop(pid, None)
        if process is None:
            self.unclaimed[pid] = (status, time.time())
            while len(self.unclaimed) > UNCLAIMED_MAX:
                self.unclaimed.popitem(last=False)
            return
        self._process_exited(process, status)

    def _track(self, process: Process, pid: int) -> None:
        """``pid`` now belongs to ``process``; it may have exited already."""
        process.pid = pid
        process.start_time = process_start_time(pid)
        early = self.unclaimed.pop(pid, None)
        if early is not None:
            self._process_exited(process, early[0])
        else:
            self.processes[pid] = process

    def _process_exited(self, process: Process, status: int) -> None:
        process.record_exit(status)
        task = self.tasks.get(process.task_id)
        if task is not None and process.exec_id is None:
            process.oom_killed = oom.read_oom_kills(task.oom_counter) > task.oom_baseline
        io = process.io
        if io is None or io.ended:
            self._finish(process)
            return
        io.on_end = lambda: self._finish(process)
        self.reactor.call_later(EXIT_GRACE, lambda: self._finish(process))

    def _finish(self, process: Process) -> None:
        """The process has exited and its output reached the log: tell everyone."""
        if process.finished:
            return
        process.finished = True
        task = self.tasks.get(process.task_id)
        if task is not None and process.exec_id is None:
            task.status = STOPPED
            self._save(task)
        info = process.exit_info()
        if process.oom_killed:
            self._broadcast({"event": protocol.EVENT_OOM, "id": process.task_id})
        self._broadcast(info)
        waiters, process.waiters = process.waiters, []
        for waiter in waiters:
            waiter(info)

    def _broadcast(self, event: dict[str, Any]) -> None:
        line = protocol.encode(event)
        for conn in list(self.subscribers):
            conn.send(line)
            if len(conn.pending) > SUBSCRIBER_MAX_PENDING:
                conn.close()  # a subscriber that stopped reading

    def _save(self, task: Task) -> None:
        if task.id in self.tasks and task.ready:
            try:
                self.records.save(task)
            except OSError:
                log_error(f"saving the record of {task.id}")

    # ------------------------------------------------------------------ runtime calls
    def _run(self, task: Task, verb: str, args: list[str],
             on_done: Callable[[RuntimeCall], None],
             stdio: tuple[int, int, int] | None = None) -> RuntimeCall:
        """Start ``<runtime> <global flags> <verb> <args>``; without ``stdio`` its combined
        output is captured (stdin /dev/null)."""
        argv = [*global_args(task.runtime, task.runtime_root, task.runtime_log), verb, *args]
        call = RuntimeCall(verb, argv, task.runtime_log, on_done)
        to_close: list[int] = []
        try:
            if stdio is None:
                devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                read_end, write_end = os.pipe()
                to_close += [devnull, write_end]
                call.capture_fd = read_end
                stdio = (devnull, write_end, write_end)
            try:
                call.pid = self.standby.run(argv, *stdio) or spawn(argv, *stdio)
            except OSError as error:
                if call.capture_fd >= 0:
                    os.close(call.capture_fd)
                raise errdefs.System(f"cannot run the runtime {argv[0]}: "
                                     f"{error.strerror}") from None
        finally:
            for fd in to_close:
                os.close(fd)
        self.calls[call.pid] = call
        if call.capture_fd >= 0:
            set_nonblocking(call.capture_fd)
            self.reactor.set_reader(call.capture_fd, lambda: self._capture(call))
        return call

    def _capture(self, call: RuntimeCall) -> None:
        try:
            data = os.read(call.capture_fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        if data:
            if len(call.output) < (4 << 20):
                call.output += data
            return
        self.reactor.forget(call.capture_fd)
        os.close(call.capture_fd)
        call.capture_fd = -1
        if call.finished():
            self._complete(call)

    def _complete(self, call: RuntimeCall) -> None:
        try:
            call.on_done(call)
        except Exception:
            log_error(f"completing runtime {call.verb}")

    # ------------------------------------------------------------------ lookups
    def _task(self, request: Request, ready: bool = True) -> Task:
        task_id = request.text("id")
        task = self.tasks.get(task_id)
        if task is None:
            raise errdefs.NotFound(f"no such task: {task_id}")
        if ready and not task.ready:
            raise errdefs.Conflict(f"task {task_id} is being created")
        return task

    def _process(self, request: Request) -> tuple[Task, Process]:
        task = self._task(request)
        exec_id = request.optional_text("exec_id")
        if exec_id is None:
            return task, task.init
        process = task.execs.get(exec_id)
        if process is None:
            raise errdefs.NotFound(f"no such exec: {exec_id} in task {task.id}")
        return task, process

    # ------------------------------------------------------------------ stdio plumbing
    def _console_socket(self, task: Task, name: str) -> tuple[socket.socket, str]:
        """A listening socket the runtime sends the pty master on (``--console-socket``)."""
        directory = os.path.join(self.exec_root, "pty")
        path = os.path.join(directory, f"{name[:24]}-{os.urandom(4).hex()}.sock")
        if len(path.encode()) > 100:  # sun_path holds 108 bytes
            directory = tempfile.mkdtemp(prefix="sampan-pty-")
            path = os.path.join(directory, "pty.sock")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
        return listener, path

    @staticmethod
    def _receive_console(listener: socket.socket, path: str) -> int:
        """The pty master the runtime sent (it connected before exiting)."""
        try:
            listener.setblocking(False)
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                raise errdefs.System("the runtime did not send the console") from None
            with conn:
                conn.settimeout(5)
                _, fds, _, _ = socket.recv_fds(conn, 4096, 4)
            if len(fds) != 1:
                for fd in fds:
                    os.close(fd)
                raise errdefs.System(f"the runtime sent {len(fds)} fds on the console socket")
            os.set_inheritable(fds[0], False)
            return fds[0]
        finally:
            listener.close()
            _remove_socket(path)

    def _prepare_stdio(self, task: Task, name: str, terminal: bool, open_stdin: bool) -> _Stdio:
        stdio = _Stdio()
        try:
            stdio.devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            if terminal:
                stdio.console, stdio.console_path = self._console_socket(task, name)
                read_end, write_end = os.pipe()  # the runtime's own output (its errors)
                stdio.capture = read_end
                stdio.child = (stdio.devnull, write_end, write_end)
                stdio.child_ends = [write_end]
            else:
                stdin = stdio.devnull
                if open_stdin:
                    stdin, stdio.stdin_w = os.pipe()
                    stdio.child_ends.append(stdin)
                stdout_r, stdout_w = os.pipe()
                stderr_r, stderr_w = os.pipe()
                stdio.outputs = [(stdout_r, protocol.STDOUT), (stderr_r, protocol.STDERR)]
                stdio.child = (stdin, stdout_w, stderr_w)
                stdio.child_ends += [stdout_w, stderr_w]
        except BaseException:
            stdio.close_all()
            raise
        return stdio

    def _spawn_with_stdio(self, task: Task, verb: str, args: list[str], stdio: _Stdio,
                          on_done: Callable[[RuntimeCall], None]) -> RuntimeCall:
        try:
            call = self._run(task, verb, args, on_done, stdio.child)
        except BaseException:
            stdio.close_all()
            raise
        finally:
            stdio.close_child_ends()
        if stdio.capture >= 0:
            call.capture_fd, stdio.capture = stdio.capture, -1
            set_nonblocking(call.capture_fd)
            self.reactor.set_reader(call.capture_fd, lambda: self._capture(call))
        return call

    def _make_io(self, stdio: _Stdio, terminal: bool, open_stdin: bool,
                 log: JsonLog | None) -> ProcessIO:
        if terminal:
            assert stdio.console is not None
            master = self._receive_console(stdio.console, stdio.console_path)
            stdio.console = None
            return ProcessIO(self.reactor, [(master, protocol.STDOUT)],
                             master if open_stdin else None, log, tty_master=master)
        outputs, stdio.outputs = stdio.outputs, []
        stdin_w, stdio.stdin_w = stdio.stdin_w, -1
        return ProcessIO(self.reactor, outputs, stdin_w if stdin_w >= 0 else None, log)

    # ------------------------------------------------------------------ ops
    def op_ping(self, request: Request) -> None:
        request.ok(pid=os.getpid(), tasks=len(self.tasks))

    def op_create(self, request: Request) -> None:
        task_id = request.text("id")
        if "/" in task_id or task_id in (".", ".."):
            raise errdefs.InvalidParameter(f"invalid task id: {task_id}")
        if task_id in self.tasks:
            raise errdefs.Conflict(f"task {task_id} already exists")
        bundle = request.text("bundle")
        request.text("runtime_root")
        if not os.path.isfile(os.path.join(bundle, "config.json")):
            raise errdefs.NotFound(f"no config.json in bundle {bundle}")
        log_path = request.optional_text("log_path")
        max_size = request.number("log_max_size")
        max_files = request.number("log_max_files", 1)
        if max_size < 0 or max_files < 1:
            raise errdefs.InvalidParameter("create: log_max_size must be >= 0 and "
                                           "log_max_files >= 1")
        task = Task(task_id, request.msg)
        pid_file = os.path.join(bundle, "init.pid")
        _unlink(pid_file)
        stdio = self._prepare_stdio(task, task_id, task.terminal, task.open_stdin)
        args = ["--bundle", bundle, "--pid-file", pid_file]
        if stdio.console_path:
            args += ["--console-socket", stdio.console_path]
        args.append(task_id)
        self.tasks[task_id] = task
        try:
            self._spawn_with_stdio(
                task, "create", args, stdio,
                lambda call: self._created(request, task, stdio, call, pid_file, log_path,
                                           max_size, max_files))
        except BaseException:
            del self.tasks[task_id]
            raise

    def _created(self, request: Request, task: Task, stdio: _Stdio, call: RuntimeCall,
                 pid_file: str, log_path: str | None, max_size: int, max_files: int) -> None:
        try:
            if not call.ok:
                raise errdefs.System(call.error_text())
            pid = _read_pid(pid_file)
            log = JsonLog(log_path, max_size, max_files) if log_path else None
            try:
                task.init.io = self._make_io(stdio, task.terminal, task.open_stdin, log)
            except BaseException:
                if log is not None:
                    log.close()
                raise
        except Exception as error:
            stdio.close_all()
            self.tasks.pop(task.id, None)
            if call.ok:  # the container exists but we cannot serve it: remove it
                self._run(task, "delete", ["--force", task.id], lambda _call: None)
            request.fail(error if isinstance(error, errdefs.SampanError)
                         else errdefs.System(f"create {task.id}: {error}"))
            return
        task.init.io.start_reading()
        task.oom_counter = oom.oom_counter_path(pid)
        task.oom_baseline = oom.read_oom_kills(task.oom_counter)
        task.ready = True
        self._track(task.init, pid)
        self._save(task)
        request.ok(pid=pid)

    def op_start(self, request: Request) -> None:
        task = self._task(request)
        if task.status != CREATED or task.init.exited:
            raise errdefs.Conflict(f"task {task.id} is already started")

        def started(call: RuntimeCall) -> None:
            if not call.ok:
                request.fail(errdefs.System(call.error_text()))
                return
            if not task.init.exited:
                task.status = RUNNING
                self._save(task)
            request.ok(pid=task.init.pid)

        self._run(task, "start", [task.id], started)

    def op_exec(self, request: Request) -> None:
        task = self._task(request)
        exec_id = request.text("exec_id")
        if "/" in exec_id:
            raise errdefs.InvalidParameter(f"invalid exec id: {exec_id}")
        process_spec = request.msg.get("process")
        if not isinstance(process_spec, dict):
            raise errdefs.InvalidParameter("exec: process must be an OCI process object")
        if task.init.exited or task.status not in (RUNNING, PAUSED):
            raise errdefs.Conflict(f"task {task.id} is not running")
        if exec_id in task.execs:
            raise errdefs.Conflict(f"exec {exec_id} already exists in task {task.id}")
        terminal = bool(request.msg.get("terminal"))
        open_stdin = bool(request.msg.get("open_stdin"))
        detach = bool(request.msg.get("detach"))
        process_file = os.path.join(task.bundle, f"{exec_id}.process.json")
        pid_file = os.path.join(task.bundle, f"{exec_id}.pid")
        spec = dict(process_spec)
        spec["terminal"] = terminal
        with open(process_file, "w") as file:
            json.dump(spec, file)
        _unlink(pid_file)
        process = Process(task.id, exec_id, None)
        task.execs[exec_id] = process
        try:
            stdio = self._prepare_stdio(task, exec_id, terminal, open_stdin)
            args = ["--process", process_file, "--detach", "--pid-file", pid_file]
            if stdio.console_path:
                args += ["--console-socket", stdio.console_path]
            args.append(task.id)
            self._spawn_with_stdio(
                task, "exec", args, stdio,
                lambda call: self._exec_started(request, task, process, stdio, call, pid_file,
                                                process_file, terminal, open_stdin, detach))
        except BaseException:
            task.execs.pop(exec_id, None)
            _unlink(process_file)
            raise

    def _exec_started(self, request: Request, task: Task, process: Process, stdio: _Stdio,
                      call: RuntimeCall, pid_file: str, process_file: str, terminal: bool,
                      open_stdin: bool, detach: bool) -> None:
        _unlink(process_file)
        try:
            if not call.ok:
                raise errdefs.System(call.error_text())
            pid = _read_pid(pid_file)
            process.io = self._make_io(stdio, terminal, open_stdin, None)
        except Exception as error:
            stdio.close_all()
            if task.execs.get(process.exec_id or "") is process:
                del task.execs[process.exec_id or ""]
            request.fail(error if isinstance(error, errdefs.SampanError)
                         else errdefs.System(f"exec {process.exec_id}: {error}"))
            return
        if detach:
            process.io.start_reading(discard=True)
        # otherwise the output waits in the pipe for the first attach: nothing is lost
        self._track(process, pid)
        request.ok(pid=pid)

    def op_kill(self, request: Request) -> None:
        task, process = self._process(request)
        number = parse_signal(request.msg.get("signal", signal.SIGTERM))
        if process.exited:
            raise errdefs.Conflict(f"{_name(process)} is not running")
        if process.exec_id is not None:
            os.kill(process.pid, number)
            request.ok()
            return
        args = ["--all"] if request.msg.get("all") else []
        if not args and task.status == RUNNING and self.processes.get(process.pid) is process:
            # The init is our child (re-parented to us) and not reaped yet, so its pid cannot
            # have been reused: signal it here, as the runtime's kill would, without a
            # runtime process. (Paused tasks, --all and tasks we only watch go through the
            # runtime, which knows the freezer and the cgroup.)
            os.kill(process.pid, number)
            request.ok()
            return

        def killed(call: RuntimeCall) -> None:
            if call.ok:
                request.ok()
                return
            text = call.error_text()
            lowered = text.lower()
            if "does not exist" in lowered:
                request.fail(errdefs.NotFound(f"task {task.id}: {text}"))
            elif "not running" in lowered or "no such process" in lowered or \
                    "already finished" in lowered:
                request.fail(errdefs.Conflict(f"task {task.id} is not running"))
            else:
                request.fail(errdefs.System(text))

        self._run(task, "kill", [*args, task.id, str(number)], killed)

    def op_resize(self, request: Request) -> None:
        _, process = self._process(request)
        height, width = request.number("height"), request.number("width")
        if not (0 <= height < 65536 and 0 <= width < 65536):
            raise errdefs.InvalidParameter(f"invalid size {height}x{width}")
        if process.io is not None and not process.exited:
            process.io.resize(height, width)
        request.ok()

    def op_delete(self, request: Request) -> None:
        task = self._task(request)
        alive = not task.init.exited and task.status != CREATED
        if alive and not request.msg.get("force"):
            raise errdefs.Conflict(f"cannot delete running task {task.id}")

        def deleted(call: RuntimeCall) -> None:
            if not call.ok and "does not exist" not in call.error_text():
                request.fail(errdefs.System(call.error_text()))
                return
            self._forget(task)
            request.ok(**_without_event(task.init.exit_info()))

        self._run(task, "delete", ["--force", task.id], deleted)

    def _forget(self, task: Task) -> None:
        if self.tasks.get(task.id) is not task:
            return
        for process in [task.init, *task.execs.values()]:
            self.processes.pop(process.pid, None)
            if not process.exited:
                process.exit_code = UNKNOWN_EXIT if process.exec_id else 128 + signal.SIGKILL
                process.exited_at = protocol_time()
            self._finish(process)
            if process.io is not None:
                process.io.close()
        del self.tasks[task.id]
        self.records.remove(task.id)
        _unlink(os.path.join(task.bundle, "init.pid"))

    def op_pause(self, request: Request) -> None:
        self._simple(request, "pause", PAUSED)

    def op_resume(self, request: Request) -> None:
        self._simple(request, "resume", RUNNING)

    def _simple(self, request: Request, verb: str, new_status: str) -> None:
        task = self._task(request)
        if task.init.exited or task.status == CREATED:
            raise errdefs.Conflict(f"task {task.id} is not running")

        def done(call: RuntimeCall) -> None:
            if not call.ok:
                request.fail(errdefs.System(call.error_text()))
                return
            if not task.init.exited:
                task.status = new_status
                self._save(task)
            request.ok()

        self._run(task, verb, [task.id], done)

    def op_update(self, request: Request) -> None:
        task = self._task(request)
        resources = request.msg.get("resources")
        if not isinstance(resources, dict):
            raise errdefs.InvalidParameter("update: resources must be an object")
        path = os.path.join(task.bundle, "update-resources.json")
        with open(path, "w") as file:
            json.dump(resources, file)

        def done(call: RuntimeCall) -> None:
            _unlink(path)
            if call.ok:
                request.ok()
            else:
                request.fail(errdefs.System(call.error_text()))

        self._run(task, "update", ["--resources", path, task.id], done)

    def op_state(self, request: Request) -> None:
        task = self._task(request)

        def done(call: RuntimeCall) -> None:
            if not call.ok:
                request.fail(errdefs.System(call.error_text()))
                return
            try:
                state = json.loads(call.output)
            except ValueError:
                request.fail(errdefs.System(f"state of {task.id}: the runtime printed no JSON"))
                return
            request.ok(state=state)

        self._run(task, "state", [task.id], done)

    def op_pids(self, request: Request) -> None:
        task = self._task(request)

        def done(call: RuntimeCall) -> None:
            if not call.ok:
                request.fail(errdefs.System(call.error_text()))
                return
            try:
                pids = json.loads(call.output)
            except ValueError:
                request.fail(errdefs.System(f"ps of {task.id}: the runtime printed no JSON"))
                return
            request.ok(pids=pids)

        self._run(task, "ps", ["--format", "json", task.id], done)

    def op_wait(self, request: Request) -> None:
        _, process = self._process(request)
        if process.finished:
            request.ok(**_without_event(process.exit_info()))
            return
        conn = request.conn
        process.waiters.append(
            lambda info: request.ok(**_without_event(info)) if not conn.closed else None)

    def op_list(self, request: Request) -> None:
        request.ok(tasks=[task.summary() for task in self.tasks.values() if task.ready])

    def op_subscribe(self, request: Request) -> None:
        request.conn.subscribed = True
        self.subscribers.add(request.conn)
        request.ok()

    def op_attach(self, request: Request) -> None:
        _, process = self._process(request)
        if process.io is None:
            raise errdefs.Unavailable(f"{_name(process)}: its stdio was lost when the "
                                      "supervisor restarted")
        request.ok()
        process.io.attach(request.conn, bool(request.msg.get("stdin")),
                          bool(request.msg.get("stdout", True)),
                          bool(request.msg.get("stderr", True)),
                          keep_stdin=bool(request.msg.get("keep_stdin")))


class _Stdio:
    """The fds made for one runtime create/exec: the child's ends (closed once it is
    spawned), ours (kept for the ProcessIO), and the console socket for a tty."""

    def __init__(self) -> None:
        self.devnull = -1
        self.child: tuple[int, int, int] = (-1, -1, -1)
        self.child_ends: list[int] = []
        self.outputs: list[tuple[int, int]] = []
        self.stdin_w = -1
        self.capture = -1
        self.console: socket.socket | None = None
        self.console_path = ""

    def close_child_ends(self) -> None:
        for fd in [*self.child_ends, self.devnull]:
            if fd >= 0:
                os.close(fd)
        self.child_ends = []
        self.devnull = -1

    def close_all(self) -> None:
        self.close_child_ends()
        for fd in [fd for fd, _ in self.outputs] + [self.stdin_w, self.capture]:
            if fd >= 0:
                os.close(fd)
        self.outputs = []
        self.stdin_w = self.capture = -1
        if self.console is not None:
            self.console.close()
            self.console = None
            _remove_socket(self.console_path)


def _without_event(info: dict[str, Any]) -> dict[str, Any]:
    """Exit info as a reply's fields (a reply must not look like an event)."""
    return {key: value for key, value in info.items() if key != "event"}


def _name(process: Process) -> str:
    if process.exec_id is None:
        return f"task {process.task_id}"
    return f"exec {process.exec_id} of task {process.task_id}"


def _read_pid(path: str) -> int:
    try:
        with open(path) as file:
            return int(file.read().strip())
    except (OSError, ValueError) as error:
        raise errdefs.System(f"cannot read the pid file {path}: {error}") from None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _remove_socket(path: str) -> None:
    _unlink(path)
    directory = os.path.dirname(path)
    if os.path.basename(directory).startswith("sampan-pty-"):
        try:
            os.rmdir(directory)
        except OSError:
            pass


def protocol_time() -> str:
    from sampan.supervisor.server.jsonlog import rfc3339_nano

    return rfc3339_nano(time.time_ns())

"""Tasks (a container's init) and their exec processes, and the record kept of each task.

A process is *finished* once it has been reaped and its output has ended (or a grace period
after the exit has passed: a background child may hold the pipe open), so an ``exit`` event
and a ``wait`` reply come after the last byte of output reached the log.
Records go to ``<exec-root>/tasks/<id>.json`` atomically (temp + rename), so a restarted
supervisor knows each task's pid and exit status.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from sampan.supervisor.protocol import exit_event
from sampan.supervisor.server.jsonlog import rfc3339_nano
from sampan.supervisor.server.stdio import ProcessIO

CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
STOPPED = "stopped"


def exit_code_of(status: int) -> int:
    """A wait status as Docker reports it: the exit code, or 128 + the killing signal."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return 255


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat: tells a pid's process from a later one reusing it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    return int(fields[19])


class Process:
    """The task's init (``exec_id`` None) or one of its exec processes."""

    def __init__(self, task_id: str, exec_id: str | None, io: ProcessIO | None) -> None:
        self.task_id = task_id
        self.exec_id = exec_id
        self.io = io
        self.pid = 0
        self.start_time: int | None = None
        self.exit_code: int | None = None
        self.exited_at: str | None = None
        self.oom_killed = False
        self.finished = False
        self.waiters: list[Any] = []  # callbacks taking the exit info

    @property
    def exited(self) -> bool:
        return self.exit_code is not None

    def record_exit(self, status: int) -> None:
        self.exit_code = exit_code_of(status)
        self.exited_at = rfc3339_nano(time.time_ns())

    def exit_info(self) -> dict[str, Any]:
        return exit_event(self.task_id, self.exec_id, self.pid, self.exit_code
                          if self.exit_code is not None else -1, self.exited_at or "",
                          self.oom_killed)

    def summary(self) -> dict[str, Any]:
        return {"exec_id": self.exec_id, "pid": self.pid,
                "status": STOPPED if self.finished or self.exited else RUNNING,
                "exit_code": self.exit_code, "exited_at": self.exited_at}


class Task:
    def __init__(self, task_id: str, request: dict[str, Any]) -> None:
        self.id = task_id
        self.bundle = str(request["bundle"])
        self.runtime = str(request.get("runtime") or "sampan-runc")
        self.runtime_root = str(request["runtime_root"])
        self.terminal = bool(request.get("terminal"))
        self.open_stdin = bool(request.get("open_stdin"))
        self.log_path = request.get("log_path") or None
        self.status = CREATED
        self.init = Process(task_id, None, None)
        self.execs: dict[str, Process] = {}
        self.oom_counter: str | None = None
        self.oom_baseline = 0
        self.ready = False  # create has returned
        self.restored = False  # known from a record only: no stdio, not our child

    @property
    def runtime_log(self) -> str:
        return os.path.join(self.bundle, "runtime.log")

    def summary(self) -> dict[str, Any]:
        status = STOPPED if self.init.exited else self.status
        return {"id": self.id, "pid": self.init.pid, "status": status,
                "exit_code": self.init.exit_code, "exited_at": self.init.exited_at,
                "oom_killed": self.init.oom_killed, "bundle": self.bundle,
                "runtime": self.runtime, "terminal": self.terminal,
                "stdio": not self.restored,
                "execs": [p.summary() for p in self.execs.values()]}

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "bundle": self.bundle, "runtime": self.runtime,
                "runtime_root": self.runtime_root, "terminal": self.terminal,
                "open_stdin": self.open_stdin, "log_path": self.log_path,
                "status": self.status, "pid": self.init.pid,
                "start_time": self.init.start_time, "exit_code": self.init.exit_code,
                "exited_at": self.init.exited_at, "oom_killed": self.init.oom_killed,
                "oom_counter": self.oom_counter, "oom_baseline": self.oom_baseline}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Task:
        task = cls(str(record["id"]), record)
        task.status = str(record.get("status") or CREATED)
        task.init.pid = int(record.get("pid") or 0)
        task.init.start_time = record.get("start_time")
        task.init.exit_code = record.get("exit_code")
        task.init.exited_at = record.get("exited_at")
        task.init.oom_killed = bool(record.get("oom_killed"))
        task.init.finished = task.init.exit_code is not None
        task.oom_counter = record.get("oom_counter")
        task.oom_baseline = int(record.get("oom_baseline") or 0)
        task.ready = True
        task.restored = True
        return task


class TaskRecords:
    """``<dir>/<id>.json``, one per task."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)

    def save(self, task: Task) -> None:
        path = os.path.join(self.directory, f"{task.id}.json")
        temp = f"{path}.tmp"
        with open(temp, "w") as file:
            json.dump(task.record(), file)
        os.replace(temp, path)

    def remove(self, task_id: str) -> None:
        try:
            os.unlink(os.path.join(self.directory, f"{task_id}.json"))
        except FileNotFoundError:
            pass

    def load_all(self) -> list[dict[str, Any]]:
        records = []
        for name in sorted(os.listdir(self.directory)):
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.directory, name)) as file:
                    record = json.load(file)
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and "id" in record and "bundle" in record:
                records.append(record)
        return records

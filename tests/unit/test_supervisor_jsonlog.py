"""Docker's json-file log as the supervisor writes it."""

from __future__ import annotations

import json
from pathlib import Path

from sampan.supervisor.server.jsonlog import PARTIAL_LIMIT, JsonLog, rfc3339_nano


def records(path: Path) -> list[tuple[str, str]]:
    return [(r["log"], r["stream"]) for r in map(json.loads, path.read_text().splitlines())]


def test_lines_are_split_at_newlines_and_partial_lines_wait(tmp_path: Path) -> None:
    log = JsonLog(str(tmp_path / "c-json.log"))
    log.write(1, b"one\ntw")
    log.write(2, b"err\n")
    log.write(1, b"o\nthree")
    assert records(tmp_path / "c-json.log") == [("one\n", "stdout"), ("err\n", "stderr"),
                                                ("two\n", "stdout")]
    log.close()  # the end of the stream writes what is left
    assert records(tmp_path / "c-json.log")[-1] == ("three", "stdout")


def test_a_long_partial_line_is_written_without_waiting(tmp_path: Path) -> None:
    log = JsonLog(str(tmp_path / "c-json.log"))
    log.write(1, b"x" * (PARTIAL_LIMIT + 1))
    assert records(tmp_path / "c-json.log") == [("x" * (PARTIAL_LIMIT + 1), "stdout")]
    log.close()


def test_invalid_utf8_is_replaced_and_time_is_rfc3339_nano(tmp_path: Path) -> None:
    log = JsonLog(str(tmp_path / "c-json.log"))
    log.write(1, b"caf\xc3\xa9 \xff\n")
    log.close()
    [line] = (tmp_path / "c-json.log").read_text().splitlines()
    record = json.loads(line)
    assert record["log"] == "café \ufffd\n"
    assert rfc3339_nano(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert len(record["time"]) == len("2023-11-14T22:13:20.123456789Z")


def test_rotation_keeps_max_files_each_under_max_size(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    log = JsonLog(str(path), max_size=1000, max_files=3)
    for i in range(100):
        log.write(1, f"line{i}\n".encode())
    log.write(1, b"".join(f"burst{i}\n".encode() for i in range(40)))
    log.close()
    files = [Path(f"{path}.2"), Path(f"{path}.1"), path]
    assert not Path(f"{path}.3").exists()
    assert all(0 < f.stat().st_size <= 1000 for f in files)
    kept = [text for f in files for text, _ in records(f)]
    assert kept[-1] == "burst39\n"
    assert kept == sorted(kept, key=lambda t: (t.startswith("burst"),
                                               int(t.strip("burstline\n"))))


def test_one_file_means_truncate_in_place(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    log = JsonLog(str(path), max_size=500, max_files=1)
    for i in range(50):
        log.write(2, f"l{i}\n".encode())
    log.close()
    assert not Path(f"{path}.1").exists()
    assert path.stat().st_size <= 500
    assert records(path)[-1] == ("l49\n", "stderr")


def test_reopening_appends(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    for word in (b"a\n", b"b\n"):
        log = JsonLog(str(path))
        log.write(1, word)
        log.close()
    assert [t for t, _ in records(path)] == ["a\n", "b\n"]

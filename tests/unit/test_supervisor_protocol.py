"""The sampand <-> supervisor protocol: lines, errors, frames, signals."""

from __future__ import annotations

import pytest

from sampan import errdefs
from sampan.supervisor import protocol
from sampan.supervisor.server.service import parse_signal


def test_lines_round_trip_and_malformed_lines_are_invalid() -> None:
    line = protocol.encode({"op": "create", "req": 1, "id": "c"})
    assert line.endswith(b"\n") and b"\n" not in line[:-1]
    assert protocol.decode(line) == {"op": "create", "req": 1, "id": "c"}
    with pytest.raises(errdefs.InvalidParameter):
        protocol.decode(b"{nope")
    with pytest.raises(errdefs.InvalidParameter):
        protocol.decode(b"[1, 2]")


@pytest.mark.parametrize("error", [errdefs.NotFound("no such task: x"),
                                   errdefs.Conflict("task x is not running"),
                                   errdefs.InvalidParameter("bad"), errdefs.System("boom")])
def test_errors_travel_as_their_kind(error: errdefs.SampanError) -> None:
    reply = protocol.decode(protocol.encode(protocol.error_reply(7, error)))
    assert reply["req"] == 7 and reply["ok"] is False
    back = protocol.error_from_reply(reply)
    assert type(back) is type(error) and str(back) == str(error)


def test_unknown_errors_become_system() -> None:
    assert protocol.error_reply(1, ValueError("x"))["kind"] == "System"
    assert isinstance(protocol.error_from_reply({"kind": "Weird", "message": "m"}),
                      errdefs.System)


def test_frames_carry_stream_and_big_endian_length() -> None:
    assert protocol.frame(protocol.STDERR, b"abc") == b"\x02\x00\x00\x00\x03abc"


@pytest.mark.parametrize(("value", "number"), [(9, 9), ("9", 9), ("KILL", 9), ("SIGTERM", 15),
                                               ("sigusr1", 10)])
def test_signals_by_number_or_name(value: object, number: int) -> None:
    assert parse_signal(value) == number


@pytest.mark.parametrize("value", ["SIGNOPE", 0, 99, None, True])
def test_bad_signals_are_invalid(value: object) -> None:
    with pytest.raises(errdefs.InvalidParameter):
        parse_signal(value)

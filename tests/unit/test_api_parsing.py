"""Pure pieces of the API server: filters, timestamps, detach keys, framing, routes, errors."""

from __future__ import annotations

import pytest

from sampan import errdefs
from sampan.api import errors, validate
from sampan.api.framing import DetachKeyMatcher, chunk, parse_detach_keys, stdcopy_frame
from sampan.api.http import EmptyResponse, Request, parse_filters, parse_timestamp
from sampan.api.routes import Route, RouteTable
from sampan.api.version import check_version, parse_version


def test_filters_map_form_from_the_go_cli() -> None:
    raw = '{"label":{"a=b":true,"c":true},"status":{"running":true}}'
    assert parse_filters(raw) == {"label": ["a=b", "c"], "status": ["running"]}


def test_filters_list_form_from_docker_py() -> None:
    assert parse_filters('{"label":["a=b"],"name":["x"]}') == {"label": ["a=b"], "name": ["x"]}


def test_filters_empty_and_null_are_no_filters() -> None:
    assert parse_filters("") == {}
    assert parse_filters("null") == {}


@pytest.mark.parametrize("raw", ["{", "[1]", '{"label": 3}', '{"label": [1]}'])
def test_malformed_filters_are_invalid_parameter(raw: str) -> None:
    with pytest.raises(errdefs.InvalidParameter):
        parse_filters(raw)


def test_timestamps_in_docker_forms() -> None:
    assert parse_timestamp("1700000000", "since") == 1700000000.0
    assert parse_timestamp("1700000000.5", "since") == 1700000000.5
    assert parse_timestamp("2023-11-14T22:13:20Z", "since") == 1700000000.0
    assert parse_timestamp("10m", "since", now=1000.0) == 400.0
    assert parse_timestamp("1h30m", "since", now=10000.0) == 4600.0
    assert parse_timestamp("", "since") is None
    with pytest.raises(errdefs.InvalidParameter):
        parse_timestamp("yesterday", "since")


def test_detach_keys_syntax() -> None:
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("ctrl-@,ctrl-[,a") == b"\x00\x1ba"
    for bad in ("ctrl-", "ctrl-pp", "", "abc"):
        with pytest.raises(errdefs.InvalidParameter):
            parse_detach_keys(bad)


def test_detach_matcher_holds_back_a_partial_sequence_then_releases_it() -> None:
    matcher = DetachKeyMatcher(b"\x10\x11")
    assert matcher.feed(b"ab\x10") == (b"ab", False)
    assert matcher.feed(b"c") == (b"\x10c", False)
    assert matcher.feed(b"\x10\x10") == (b"\x10", False)
    assert matcher.feed(b"\x11rest") == (b"", True)


def test_detach_matcher_flush_returns_held_bytes() -> None:
    matcher = DetachKeyMatcher(b"\x10\x11")
    matcher.feed(b"x\x10")
    assert matcher.flush() == b"\x10"


def test_stdcopy_frame_header() -> None:
    assert stdcopy_frame(1, b"hi\n") == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"
    assert stdcopy_frame(2, b"x" * 256)[:8] == b"\x02\x00\x00\x00\x00\x00\x01\x00"


def test_http_chunk() -> None:
    assert chunk(b"hello world, sixteen") == b"14\r\nhello world, sixteen\r\n"


async def _handler(request: Request) -> EmptyResponse:
    return EmptyResponse()


def test_route_names_with_slashes_match_the_operation_from_the_right() -> None:
    table = RouteTable(
        [
            Route("GET", "/images/json", _handler),
            Route("GET", "/images/{name:.*}/json", _handler),
            Route("POST", "/images/{name:.*}/tag", _handler),
            Route("GET", "/containers/{id}/json", _handler),
        ]
    )
    found = table.match("POST", "/images/ghcr.io/o/r:1/tag")
    assert isinstance(found, tuple) and found[1] == {"name": "ghcr.io/o/r:1"}
    found = table.match("GET", "/images/localhost:5000/a/json/json")
    assert isinstance(found, tuple) and found[1] == {"name": "localhost:5000/a/json"}
    assert table.match("GET", "/containers/a/b/json") is None
    assert table.match("DELETE", "/containers/abc/json") is True
    assert table.match("GET", "/nope") is None


def test_head_matches_get_routes() -> None:
    table = RouteTable([Route("GET", "/containers/{id}/json", _handler)])
    assert isinstance(table.match("HEAD", "/containers/x/json"), tuple)


def test_version_bounds() -> None:
    check_version((1, 24))
    check_version((1, 44))
    with pytest.raises(errdefs.InvalidParameter, match="too new"):
        check_version((1, 45))
    with pytest.raises(errdefs.InvalidParameter, match="too old"):
        check_version((1, 12))
    with pytest.raises(errdefs.InvalidParameter):
        parse_version("1.x")


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errdefs.NotFound("x"), 404),
        (errdefs.Conflict("x"), 409),
        (errdefs.InvalidParameter("x"), 400),
        (errdefs.Forbidden("x"), 403),
        (errdefs.Unavailable("x"), 503),
        (errdefs.NotImplementedFeature("x"), 501),
        (errdefs.NotModified("x"), 304),
        (errdefs.System("x"), 500),
        (RuntimeError("x"), 500),
    ],
)
def test_error_kinds_map_to_docker_status_codes(exc: BaseException, status: int) -> None:
    assert errors.status_for(exc) == status


def test_validate_names_the_field_with_the_wrong_type() -> None:
    with pytest.raises(errdefs.InvalidParameter, match=r"HostConfig\.Memory"):
        validate.check_members({"Memory": "1g"}, validate.HOST_CONFIG, "HostConfig")
    with pytest.raises(errdefs.InvalidParameter, match=r"Config\.Tty"):
        validate.check_members({"Tty": 1}, validate.CONFIG, "Config")
    validate.check_members(
        {"Cmd": "echo hi", "Env": None, "Labels": {"a": "b"}}, validate.CONFIG, "Config"
    )

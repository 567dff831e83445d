"""docker ps status strings, Docker's time formats and human durations."""

from sampan.daemon.model import EXITED, PAUSED, RESTARTING, RUNNING, ContainerState, HealthState
from sampan.daemon.status import state_word, status_string
from sampan.daemon.timefmt import (
    ZERO_TIME,
    human_duration,
    parse_api_timestamp,
    parse_rfc3339,
    rfc3339_nano,
    rfc3339_nano_fixed,
)

S = 1_000_000_000
T0 = 1_795_934_620 * S


def test_human_duration_follows_go_units_steps() -> None:
    assert human_duration(0.5) == "Less than a second"
    assert human_duration(1) == "1 second"
    assert human_duration(3) == "3 seconds"
    assert human_duration(60) == "About a minute"
    assert human_duration(5 * 60) == "5 minutes"
    assert human_duration(3600) == "About an hour"
    assert human_duration(5 * 3600) == "5 hours"
    assert human_duration(3 * 86400) == "3 days"
    assert human_duration(20 * 86400) == "2 weeks"
    assert human_duration(90 * 86400) == "3 months"
    assert human_duration(3 * 365 * 86400) == "3 years"


def test_running_container_status_is_up_with_duration() -> None:
    state = ContainerState(status=RUNNING, started_at=T0)
    assert status_string(state, T0 + 3 * S) == "Up 3 seconds"
    assert state_word(state) == "running"


def test_paused_and_health_are_shown_in_parentheses() -> None:
    assert status_string(ContainerState(status=PAUSED, started_at=T0), T0 + 2 * S) == \
        "Up 2 seconds (Paused)"
    healthy = ContainerState(status=RUNNING, started_at=T0, health=HealthState("healthy"))
    assert status_string(healthy, T0 + 5 * 60 * S) == "Up 5 minutes (healthy)"
    starting = ContainerState(status=RUNNING, started_at=T0, health=HealthState())
    assert status_string(starting, T0 + 2 * S) == "Up 2 seconds (health: starting)"


def test_exited_container_shows_exit_code_and_age() -> None:
    state = ContainerState(status=EXITED, started_at=T0, finished_at=T0 + S, exit_code=3)
    assert status_string(state, T0 + 3 * S) == "Exited (3) 2 seconds ago"
    assert state_word(state) == "exited"


def test_never_started_container_is_created() -> None:
    state = ContainerState()
    assert status_string(state, T0) == "Created"
    assert state_word(state) == "created"


def test_restarting_status_names_last_exit_code() -> None:
    state = ContainerState(status=RESTARTING, started_at=T0, finished_at=T0, exit_code=1)
    assert status_string(state, T0 + 2 * S) == "Restarting (1) 2 seconds ago"
    assert state_word(state) == "restarting"


def test_rfc3339_nano_trims_zeros_and_zero_time() -> None:
    assert rfc3339_nano(0) == ZERO_TIME
    assert rfc3339_nano(T0 + 503_002_193) == "2026-11-29T06:43:40.503002193Z"
    assert rfc3339_nano(T0 + 500_000_000) == "2026-11-29T06:43:40.5Z"
    assert rfc3339_nano(T0) == "2026-11-29T06:43:40Z"
    assert rfc3339_nano_fixed(T0 + 500_000_000) == "2026-11-29T06:43:40.500000000Z"


def test_timestamps_parse_back() -> None:
    assert parse_rfc3339("2026-11-29T06:43:40.503002193Z") == T0 + 503_002_193
    assert parse_rfc3339("2026-11-29T07:43:40.5+01:00") == T0 + 500_000_000
    assert parse_api_timestamp("1795934620") == T0
    assert parse_api_timestamp("1795934620.000000001") == T0 + 1
    assert parse_api_timestamp("") == 0

"""Restart policies (pure): whether to restart after an exit, and Docker's growing delay."""

from __future__ import annotations

from dataclasses import dataclass

INITIAL_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0  # seconds up after which the delay starts again from INITIAL_DELAY


def should_restart(policy: dict[str, object], exit_code: int, restart_count: int,
                   manually_stopped: bool) -> bool:
    name = policy.get("Name") or "no"
    if manually_stopped or name == "no":
        return False
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        limit = int(policy.get("MaximumRetryCount") or 0)  # type: ignore[call-overload]
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


def start_on_daemon_start(policy: dict[str, object], manually_stopped: bool) -> bool:
    """``always`` containers come back with the daemon; ``unless-stopped`` unless stopped."""
    name = policy.get("Name") or "no"
    return name == "always" or (name == "unless-stopped" and not manually_stopped)


@dataclass
class Backoff:
    delay: float = 0.0

    def next_delay(self, ran_for: float) -> float:
        """The wait before the next restart after a run of ``ran_for`` seconds."""
        if ran_for >= RESET_AFTER or self.delay == 0.0:
            self.delay = INITIAL_DELAY
        else:
            self.delay = min(self.delay * 2, MAX_DELAY)
        return self.delay

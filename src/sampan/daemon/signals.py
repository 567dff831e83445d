"""Signal names as Docker accepts them: "SIGTERM", "TERM", "term", "15", "SIGRTMIN+3"."""

from __future__ import annotations

import signal as _signal

from sampan import errdefs


def parse_signal(text: str | int | None, default: int = _signal.SIGKILL) -> int:
    if text is None or text == "":
        return default
    if isinstance(text, int):
        number = text
    elif text.isdigit():
        number = int(text)
    else:
        name = text.upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        if name.startswith("SIGRTMIN+") or name.startswith("SIGRTMAX-"):
            base, _, offset = name.partition("+" if "+" in name else "-")
            try:
                delta = int(offset)
            except ValueError as exc:
                raise errdefs.InvalidParameter(f"invalid signal: {text}") from exc
            number = (_signal.SIGRTMIN + delta) if base == "SIGRTMIN" else (
                _signal.SIGRTMAX - delta)
        else:
            try:
                number = int(_signal.Signals[name])
            except KeyError as exc:
                raise errdefs.InvalidParameter(f"invalid signal: {text}") from exc
    if not 0 < number <= _signal.SIGRTMAX:
        raise errdefs.InvalidParameter(f"invalid signal: {text}")
    return number

"""Human-readable sizes and durations exactly as Docker's ``go-units`` prints them."""

from __future__ import annotations

from sampan.types.humanize import human_duration as human_duration  # one copy for both

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _scaled(size: float, base: float, units: tuple[str, ...]) -> tuple[float, str]:
    index = 0
    while size >= base and index < len(units) - 1:
        size /= base
        index += 1
    return size, units[index]


def _g(value: float, precision: int) -> str:
    return f"{value:.{precision}g}"


def human_size(size: float, precision: int = 4) -> str:
    """``HumanSizeWithPrecision``: decimal units, ``%.<precision>g`` (``docker images`` uses 3)."""
    value, unit = _scaled(float(size), 1000.0, _DECIMAL)
    return _g(value, precision) + unit


def bytes_size(size: float) -> str:
    """``BytesSize``: binary units, ``%.4g`` (``docker stats``)."""
    value, unit = _scaled(float(size), 1024.0, _BINARY)
    return _g(value, 4) + unit


def parse_bytes(text: str) -> int:
    """``RAMInBytes``: ``512m``, ``1g``, ``100k``, ``1.5GB`` (binary multiples), ``123``."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)(?:[iI]?[bB])?\s*", text)
    if not match:
        raise ValueError(f"invalid size: '{text}'")
    number = float(match.group(1))
    power = " kmgtp".index(match.group(2).lower() or " ")
    return int(number * 1024**power)


def go_quote(text: str) -> str:
    """``strconv.Quote``: double quotes, Go escapes for controls, printable Unicode kept."""
    out = ['"']
    escapes = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f",
               "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    for char in text:
        if char in escapes:
            out.append(escapes[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x10000:
            out.append(f"\\x{ord(char):02x}" if ord(char) < 0x80 else f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


def ellipsis(text: str, width: int) -> str:
    """Docker's ``formatter.Ellipsis``: at most ``width`` characters, the last one ``…``."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width == 1:
        return text[0]
    return text[: width - 1] + "…"

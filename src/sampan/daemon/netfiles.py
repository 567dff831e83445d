"""``/etc/hosts`` and ``/etc/resolv.conf`` of a networked container, as Docker writes them
(pure functions; the network service writes the files at start)."""

from __future__ import annotations

from collections.abc import Sequence

from sampan import errdefs

HOST_GATEWAY = "host-gateway"
EMBEDDED_DNS = "127.0.0.11"


def parse_extra_hosts(entries: Sequence[str], host_gateway_ip: str) -> list[tuple[str, str]]:
    """``--add-host name:ip`` (or ``name=ip``) entries as (ip, name); ``host-gateway`` is
    the gateway of the container's network, as Docker's ``host-gateway-ip``."""
    result = []
    for entry in entries:
        text = str(entry)
        separator = "=" if "=" in text else ":"
        name, sep, address = text.partition(separator)
        if not sep or not name or not address:
            raise errdefs.InvalidParameter(f"invalid extra host: {text!r}")
        if address == HOST_GATEWAY:
            if not host_gateway_ip:
                raise errdefs.InvalidParameter(
                    "unable to derive the IP value for host-gateway")
            address = host_gateway_ip
        result.append((address.strip("[]"), name))
    return result


def hosts_content(hostname: str, domainname: str, address: str,
                  extra: Sequence[tuple[str, str]]) -> str:
    names = f"{hostname}.{domainname} {hostname}" if domainname else hostname
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    lines += [f"{ip}\t{name}" for ip, name in extra]
    lines.append(f"{address or '127.0.1.1'}\t{names}")
    return "\n".join(lines) + "\n"


def hosts_with_address(text: str, address: str, hostname: str, domainname: str) -> str:
    """``text`` (a container's hosts file) with a line for ``address`` naming the container,
    as Docker adds when a running container is connected to another network."""
    names = f"{hostname}.{domainname} {hostname}" if domainname else hostname
    kept = hosts_without_address(text, address)
    return kept + ("" if not kept or kept.endswith("\n") else "\n") + f"{address}\t{names}\n"


def hosts_without_address(text: str, address: str) -> str:
    """``text`` without the lines for ``address`` (a network disconnected)."""
    lines = text.splitlines(keepends=True)
    return "".join(line for line in lines if line.split("\t", 1)[0].strip() != address)


def resolv_content(host_resolv: str, *, embedded: bool, servers: Sequence[str],
                   search: Sequence[str], options: Sequence[str]) -> str:
    """With the embedded DNS: ``nameserver 127.0.0.11`` (it forwards to the host's or the
    ``--dns`` servers). Without: ``--dns`` servers, or the host's minus loopback ones
    (unreachable from the container's namespace), Docker's public fallbacks when none is
    left. ``--dns-search``/``--dns-option`` replace the host's search and options lines."""
    host_servers, host_search, host_options = [], [], []
    for line in host_resolv.splitlines():
        words = line.split()
        if len(words) < 2:
            continue
        if words[0] == "nameserver":
            host_servers.append(words[1])
        elif words[0] in ("search", "domain"):
            host_search = words[1:]
        elif words[0] == "options":
            host_options = words[1:]
    chosen_search = list(search) or host_search
    chosen_options = list(options) or host_options
    lines = []
    if embedded:
        lines.append(f"nameserver {EMBEDDED_DNS}")
        if "ndots:0" not in chosen_options and not any(o.startswith("ndots:")
                                                       for o in chosen_options):
            chosen_options = [*chosen_options, "ndots:0"]
    else:
        usable = list(servers) or [s for s in host_servers
                                   if not s.startswith("127.") and s != "::1"]
        lines += [f"nameserver {s}" for s in usable or ["8.8.8.8", "8.8.4.4"]]
    if chosen_search:
        lines.append("search " + " ".join(chosen_search))
    if chosen_options:
        lines.append("options " + " ".join(chosen_options))
    if embedded:
        upstream = list(servers) or host_servers
        lines.append(f"# ExtServers: [{' '.join(upstream)}]")
    return "\n".join(lines) + "\n"

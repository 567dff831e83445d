"""The files Docker bind-mounts into every container: ``hostname``, ``hosts``,
``resolv.conf`` (written under ``<data-root>/containers/<id>/``)."""

from __future__ import annotations

import os


def hosts_content(hostname: str, domainname: str) -> str:
    fqdn = f"{hostname}.{domainname}" if domainname else hostname
    names = f"{fqdn} {hostname}" if domainname else hostname
    return (
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\n"
        "ff00::0\tip6-mcastprefix\n"
        "ff02::1\tip6-allnodes\n"
        "ff02::2\tip6-allrouters\n"
        f"127.0.1.1\t{names}\n"
    )


def resolv_conf_content(host_resolv: str) -> str:
    """The host's resolv.conf without loopback name servers (unreachable from the
    container's own network namespace); Docker's public fallbacks when none is left."""
    lines = []
    servers = 0
    for line in host_resolv.splitlines():
        words = line.split()
        if words[:1] == ["nameserver"] and len(words) > 1:
            if words[1].startswith("127.") or words[1] == "::1":
                continue
            servers += 1
        lines.append(line)
    if servers == 0:
        lines += ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]
    return "\n".join(lines) + "\n"


def _write(path: str, content: str) -> None:
    temp = path + ".tmp"
    with open(temp, "w") as handle:
        handle.write(content)
    os.chmod(temp, 0o644)
    os.rename(temp, path)


def write_host_files(directory: str, hostname: str, domainname: str, network_mode: str,
                     host_resolv_path: str = "/etc/resolv.conf") -> None:
    os.makedirs(directory, mode=0o710, exist_ok=True)
    try:
        with open(host_resolv_path) as handle:
            host_resolv = handle.read()
    except FileNotFoundError:
        host_resolv = ""
    if network_mode == "host":
        _write(os.path.join(directory, "hostname"), os.uname().nodename + "\n")
        try:
            with open("/etc/hosts") as handle:
                _write(os.path.join(directory, "hosts"), handle.read())
        except FileNotFoundError:
            _write(os.path.join(directory, "hosts"), hosts_content(hostname, domainname))
        _write(os.path.join(directory, "resolv.conf"), host_resolv)
        return
    _write(os.path.join(directory, "hostname"), hostname + "\n")
    _write(os.path.join(directory, "hosts"), hosts_content(hostname, domainname))
    _write(os.path.join(directory, "resolv.conf"), resolv_conf_content(host_resolv))

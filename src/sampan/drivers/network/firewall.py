"""nftables: the whole firewall of the engine as one text, applied atomically with ``nft -f``.

:func:`render_ruleset` is pure: networks and published ports in, nft text out. The text
deletes and re-creates the engine's tables in one transaction (``nft -f`` applies a file as a
single netlink batch), so a reader never sees half a ruleset and re-applying after a crash
yields the same rules. Nothing outside the engine's own tables is touched, except the one
documented exception for Docker below.

Tables (``<name>`` is ``sampan`` unless configured):

* ``table ip <name>``: ``prerouting``/``output`` (nat) send traffic addressed to a local
  address to ``publish``, which DNATs published ports to containers (the data path stays in
  the kernel: no userland proxy); ``postrouting`` masquerades outbound traffic of networks
  with masquerading on, connections from 127.0.0.0/8 that DNAT sent into a bridge (needs
  ``route_localnet`` on the bridge), and hairpin connections (a container reaching a
  published port of its own network); ``forward`` isolates networks from each other and
  keeps internal networks inside.
* ``table bridge <name>``: ``enable_icc=false`` drops frames the bridge would forward between
  two of its ports, named one by one (the bridge family sees bridged frames without
  ``br_netfilter``; ``meta ibrname`` would need ``nft_meta_bridge``, which kernels may lack).

Coexistence with dockerd: a packet must be accepted by every base chain on its hook, and
dockerd's ``ip filter FORWARD`` chain has policy DROP. Docker's documented place for other
rules is its ``DOCKER-USER`` chain; :class:`DockerUserRules` keeps one ACCEPT rule per
bridge and direction there (tagged with a comment) whenever that chain exists, so Docker's
policy does not drop the engine's traffic, while the engine's own ``forward`` chain still
decides isolation.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sampan import errdefs
from sampan.drivers.network.model import Network, PortMapping

DEFAULT_TABLE = "sampan"


def _quote(name: str) -> str:
    return json.dumps(name)


def _nat_rules(network: Network) -> list[str]:
    bridge = _quote(network.bridge)
    rules = [
        f"oifname {bridge} ip saddr 127.0.0.0/8 masquerade",
        f"oifname {bridge} ip saddr {network.subnet} ct status dnat masquerade",
    ]
    if network.masquerade and not network.internal:
        rules.append(f"ip saddr {network.subnet} oifname != {bridge} masquerade")
    return rules


def _forward_rules(network: Network, others: Sequence[Network]) -> list[str]:
    bridge = _quote(network.bridge)
    rules = []
    if network.internal:
        rules.append(f"iifname {bridge} oifname != {bridge} drop")
        rules.append(f"oifname {bridge} iifname != {bridge} drop")
    if others:
        names = ", ".join(_quote(o.bridge) for o in others)
        rules.append(f"iifname {bridge} oifname {{ {names} }} drop")
    return rules


def _publish_rule(mapping: PortMapping) -> str:
    match = ""
    if mapping.host_ip and mapping.host_ip not in ("0.0.0.0", "::"):
        match = f"ip daddr {ipaddress.IPv4Address(mapping.host_ip)} "
    return (f"{match}{mapping.proto} dport {mapping.host_port} "
            f"dnat to {ipaddress.IPv4Address(mapping.container_ip)}:{mapping.container_port}")


def render_ruleset(networks: Sequence[Network], ports: Sequence[PortMapping],
                   table: str = DEFAULT_TABLE,
                   bridge_ports: Mapping[str, Sequence[str]] | None = None) -> str:
    """The full text for ``nft -f``: replaces the engine's tables (and only them).
    ``bridge_ports``: bridge name -> the host ends of its veth pairs (for icc=false)."""
    bridged = sorted((n for n in networks if n.bridge and n.subnet), key=lambda n: n.bridge)
    lines = [
        f"table ip {table} {{}}",  # make sure it exists so that the delete cannot fail
        f"delete table ip {table}",
        f"table bridge {table} {{}}",
        f"delete table bridge {table}",
        f"table ip {table} {{",
        "  chain prerouting {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        "    fib daddr type local jump publish",
        "  }",
        "  chain output {",
        "    type nat hook output priority -100; policy accept;",
        "    fib daddr type local jump publish",
        "  }",
        "  chain publish {",
    ]
    for mapping in sorted(ports, key=lambda m: (m.proto, m.host_port, m.host_ip)):
        lines.append(f"    {_publish_rule(mapping)}")
    lines += [
        "  }",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
    ]
    for network in bridged:
        lines += [f"    {rule}" for rule in _nat_rules(network)]
    lines += [
        "  }",
        "  chain forward {",
        "    type filter hook forward priority filter; policy accept;",
    ]
    for network in bridged:
        others = [o for o in bridged if o.bridge != network.bridge]
        lines += [f"    {rule}" for rule in _forward_rules(network, others)]
    lines += ["  }", "}", f"table bridge {table} {{",
              "  chain forward {",
              "    type filter hook forward priority filter; policy accept;"]
    for network in bridged:
        members = sorted((bridge_ports or {}).get(network.bridge) or [])
        if not network.icc and members:
            names = ", ".join(_quote(m) for m in members)
            lines.append(f"    iifname {{ {names} }} oifname {{ {names} }} drop")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def render_removal(table: str = DEFAULT_TABLE) -> str:
    return "\n".join([f"table ip {table} {{}}", f"delete table ip {table}",
                      f"table bridge {table} {{}}", f"delete table bridge {table}"]) + "\n"


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


CommandRunner = Callable[[Sequence[str], str | None], CommandResult]


def run_command(argv: Sequence[str], stdin: str | None) -> CommandResult:
    done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True,
                          check=False)
    return CommandResult(done.returncode, done.stdout, done.stderr)


class NftFirewall:
    """Applies rendered rulesets with ``nft -f -``."""

    def __init__(self, run: CommandRunner = run_command, nft: str = "nft") -> None:
        self._run = run
        self._nft = nft

    def apply(self, ruleset: str) -> None:
        result = self._run([self._nft, "-f", "-"], ruleset)
        if result.returncode != 0:
            raise errdefs.System(f"nft: {result.stderr.strip() or 'failed'}")

    def ruleset(self, table: str = DEFAULT_TABLE) -> str:
        """``nft list table ip <table>`` ("" when there is none)."""
        result = self._run([self._nft, "list", "table", "ip", table], None)
        return result.stdout if result.returncode == 0 else ""


class DockerUserRules:
    """The ACCEPT rules for the engine's bridges in dockerd's ``DOCKER-USER`` chain, when
    that chain exists (see the module docstring). Each rule carries the comment
    ``<tag>`` so :meth:`sync` finds its own rules and nobody else's."""

    CHAIN = "DOCKER-USER"

    def __init__(self, tag: str, run: CommandRunner = run_command,
                 iptables: str = "iptables") -> None:
        self._tag = tag
        self._run = run
        self._iptables = iptables

    def _rules(self, bridge: str) -> list[list[str]]:
        comment = ["-m", "comment", "--comment", self._tag]
        return [["-i", bridge, *comment, "-j", "ACCEPT"],
                ["-o", bridge, *comment, "-j", "ACCEPT"]]

    def present(self) -> list[list[str]]:
        """Our rules now in the chain, as argument lists for ``-D``; [] when no chain."""
        result = self._run([self._iptables, "-w", "-S", self.CHAIN], None)
        if result.returncode != 0:
            return []
        found = []
        for line in result.stdout.splitlines():
            words = line.split()
            if words[:2] == ["-A", self.CHAIN] and self._tag in words:
                found.append([w.strip('"') for w in words[2:]])
        return found

    def sync(self, bridges: Sequence[str]) -> None:
        """Make the chain hold exactly our rules for ``bridges`` (nothing if no chain)."""
        check = self._run([self._iptables, "-w", "-S", self.CHAIN], None)
        if check.returncode != 0:
            return
        present = self.present()
        wanted = [rule for bridge in sorted(bridges) for rule in self._rules(bridge)]
        for rule in present:
            if rule not in wanted:
                self._run([self._iptables, "-w", "-D", self.CHAIN, *rule], None)
        for rule in wanted:
            if rule not in present:
                self._run([self._iptables, "-w", "-I", self.CHAIN, "1", *rule], None)

"""The network driver's planning code, without root: plans, rulesets, IPAM, ports, DNS
messages, CNI invocations, and the container files."""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import struct
from pathlib import Path

import pytest

from sampan import errdefs
from sampan.daemon.netfiles import (
    hosts_content,
    hosts_with_address,
    hosts_without_address,
    parse_extra_hosts,
    resolv_content,
)
from sampan.drivers.network import ports
from sampan.drivers.network.cni import CniCall, CniRunner, load_conflist, result_addresses
from sampan.drivers.network.dns import build_answer, build_error, parse_question
from sampan.drivers.network.firewall import CommandResult, DockerUserRules, render_ruleset
from sampan.drivers.network.model import Endpoint, Network, PortMapping
from sampan.drivers.network.plan import (
    AddAddress,
    AddDefaultRoute,
    CreateBridge,
    CreateVeth,
    DeleteLink,
    LinkUp,
    SetMaster,
    WriteSysctl,
    host_ifname,
    mac_for,
    plan_bridge,
    plan_endpoint,
    plan_endpoint_removal,
)
from sampan.drivers.network.state import NetworkState
from sampan.drivers.network.subnets import (
    choose_subnet,
    host_routes,
    user_network_candidates,
)


def network(**changes: object) -> Network:
    values: dict[str, object] = dict(id="n" * 64, name="front", driver="bridge", created=1,
                                     subnet="10.77.0.0/24", gateway="10.77.0.1",
                                     bridge="sm-front")
    values.update(changes)
    return Network(**values)  # type: ignore[arg-type]


def endpoint(**changes: object) -> Endpoint:
    values: dict[str, object] = dict(network_id="n" * 64, container_id="c" * 64,
                                     endpoint_id="e", ifname="eth0", host_ifname="vsabc",
                                     address="10.77.0.2", prefixlen=24, gateway="10.77.0.1",
                                     mac="02:42:0a:4d:00:02")
    values.update(changes)
    return Endpoint(**values)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- plans

def test_bridge_plan_creates_the_bridge_with_its_gateway_and_route_localnet() -> None:
    assert plan_bridge(network(mtu=1400)) == [
        CreateBridge("sm-front", 1400),
        AddAddress("sm-front", "10.77.0.1", 24),
        WriteSysctl("net/ipv4/conf/sm-front/route_localnet", "1"),
        LinkUp("sm-front"),
    ]


def test_endpoint_plan_makes_the_peer_inside_the_namespace_and_routes_by_the_gateway() -> None:
    plan = plan_endpoint(network(), endpoint(), "/run/x/netns/c")
    assert plan[0] == CreateVeth("vsabc", "eth0", "/run/x/netns/c", 1500, "02:42:0a:4d:00:02")
    assert SetMaster("vsabc", "sm-front") in plan
    assert AddAddress("eth0", "10.77.0.2", 24, "/run/x/netns/c") in plan
    assert LinkUp("lo", "/run/x/netns/c") in plan
    assert plan[-1] == AddDefaultRoute("10.77.0.1", "/run/x/netns/c")


def test_internal_network_endpoint_has_no_default_route() -> None:
    plan = plan_endpoint(network(internal=True), endpoint(), "/ns")
    assert not any(isinstance(op, AddDefaultRoute) for op in plan)


def test_endpoint_removal_deletes_the_host_end_only() -> None:
    assert plan_endpoint_removal(endpoint()) == [DeleteLink("vsabc")]


def test_host_interface_names_fit_ifnamsiz_and_are_stable() -> None:
    name = host_ifname("c" * 64, "n" * 64)
    assert len(name) <= 15 and name == host_ifname("c" * 64, "n" * 64)
    assert name != host_ifname("d" * 64, "n" * 64)


def test_mac_follows_dockers_rule() -> None:
    assert mac_for("172.17.0.2") == "02:42:ac:11:00:02"


# ---------------------------------------------------------------------- firewall

def test_ruleset_replaces_only_the_engines_tables_and_dnats_published_ports() -> None:
    text = render_ruleset(
        [network()], [PortMapping("tcp", "127.0.0.1", 18080, 80, "10.77.0.2", "sm-front"),
                      PortMapping("udp", "", 5353, 53, "10.77.0.2", "sm-front")], "sampan_t")
    assert text.startswith("table ip sampan_t {}\ndelete table ip sampan_t\n")
    assert "ip daddr 127.0.0.1 tcp dport 18080 dnat to 10.77.0.2:80" in text
    assert "    udp dport 5353 dnat to 10.77.0.2:53" in text
    assert 'ip saddr 10.77.0.0/24 oifname != "sm-front" masquerade' in text
    assert 'oifname "sm-front" ip saddr 127.0.0.0/8 masquerade' in text
    assert "fib daddr type local jump publish" in text
    tables = set(re.findall(r"^(?:delete )?table \w+ (\w+)", text, re.MULTILINE))
    assert tables == {"sampan_t"}  # no other table is named, so none is touched


def test_ruleset_isolates_networks_and_keeps_internal_ones_inside() -> None:
    other = network(id="m" * 64, name="back", bridge="sm-back", subnet="10.78.0.0/24",
                    gateway="10.78.0.1", internal=True, masquerade=True)
    text = render_ruleset([network(), other], [])
    assert 'iifname "sm-front" oifname { "sm-back" } drop' in text
    assert 'iifname "sm-back" oifname { "sm-front" } drop' in text
    assert 'iifname "sm-back" oifname != "sm-back" drop' in text
    assert "10.78.0.0/24 oifname" not in text  # internal: never masqueraded out


def test_icc_false_drops_frames_between_the_bridges_ports() -> None:
    text = render_ruleset([network(icc=False)], [], bridge_ports={"sm-front": ["vsb", "vsa"]})
    assert 'iifname { "vsa", "vsb" } oifname { "vsa", "vsb" } drop' in text


class FakeIptables:
    def __init__(self, chain_exists: bool) -> None:
        self.chain_exists = chain_exists
        self.rules: list[list[str]] = []
        self.calls: list[list[str]] = []

    def __call__(self, argv: object, stdin: str | None) -> CommandResult:
        args = list(argv)  # type: ignore[call-overload]
        self.calls.append(args)
        if not self.chain_exists:
            return CommandResult(1, "", "No chain/target/match by that name.")
        if args[2] == "-S":
            lines = ["-N DOCKER-USER"] + [" ".join(["-A", "DOCKER-USER", *r])
                                          for r in self.rules]
            return CommandResult(0, "\n".join(lines) + "\n", "")
        if args[2] == "-I":
            self.rules.insert(0, args[5:])
        elif args[2] == "-D":
            self.rules.remove(args[4:])
        return CommandResult(0, "", "")


def test_docker_user_rules_follow_the_bridges_and_leave_docker_alone_without_its_chain() -> None:
    absent = FakeIptables(chain_exists=False)
    DockerUserRules("sampan-t", absent).sync(["sm-a"])
    assert all(call[2] == "-S" for call in absent.calls)
    fake = FakeIptables(chain_exists=True)
    fake.rules.append(["-j", "RETURN"])
    rules = DockerUserRules("sampan-t", fake)
    rules.sync(["sm-a", "sm-b"])
    assert len(rules.present()) == 4
    rules.sync(["sm-b"])
    assert sorted(r[1] for r in rules.present()) == ["sm-b", "sm-b"]
    assert ["-j", "RETURN"] in fake.rules
    rules.sync([])
    assert fake.rules == [["-j", "RETURN"]]


# ---------------------------------------------------------------------- IPAM

def test_ipam_never_hands_out_an_address_twice_and_takes_it_back(tmp_path: Path) -> None:
    state = NetworkState(str(tmp_path / "network.db"))
    net = network(subnet="10.77.0.0/29", gateway="10.77.0.1")
    state.add_network(net)
    got = [state.add_endpoint(net, endpoint(container_id=f"c{i}")).address for i in range(5)]
    assert got == ["10.77.0.2", "10.77.0.3", "10.77.0.4", "10.77.0.5", "10.77.0.6"]
    with pytest.raises(errdefs.Unavailable):
        state.add_endpoint(net, endpoint(container_id="c9"))
    state.remove_endpoint(net.id, "c2")
    assert state.add_endpoint(net, endpoint(container_id="c7")).address == "10.77.0.4"
    state.close()
    reopened = NetworkState(str(tmp_path / "network.db"))  # persisted across a restart
    assert "10.77.0.4" in reopened.allocated(net.id)
    assert len(reopened.endpoints(network_id=net.id)) == 5


def test_ipam_static_addresses_are_checked(tmp_path: Path) -> None:
    state = NetworkState(str(tmp_path / "network.db"))
    net = network(ip_range="10.77.0.128/25")
    state.add_network(net)
    assert state.add_endpoint(net, endpoint(container_id="a")).address == "10.77.0.129"
    assert state.add_endpoint(net, endpoint(container_id="b"), "10.77.0.9").address == \
        "10.77.0.9"
    with pytest.raises(errdefs.Conflict):
        state.add_endpoint(net, endpoint(container_id="c"), "10.77.0.9")
    with pytest.raises(errdefs.InvalidParameter):
        state.add_endpoint(net, endpoint(container_id="d"), "10.99.0.9")
    with pytest.raises(errdefs.Conflict):
        state.add_endpoint(net, endpoint(container_id="e"), "10.77.0.1")


def test_network_names_are_unique(tmp_path: Path) -> None:
    state = NetworkState(str(tmp_path / "network.db"))
    state.add_network(network())
    with pytest.raises(errdefs.Conflict):
        state.add_network(network(id="x" * 64))


def test_subnet_choice_avoids_routes_in_use() -> None:
    used = [ipaddress.IPv4Network("172.31.0.0/16"), ipaddress.IPv4Network("172.30.5.0/24")]
    assert str(choose_subnet(user_network_candidates(), used)) == "172.29.0.0/16"
    with pytest.raises(errdefs.Unavailable):
        choose_subnet(["10.0.0.0/8"], [ipaddress.IPv4Network("10.1.0.0/16")])


def test_routes_of_our_own_bridge_are_not_in_use(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "sampan0\t00001DAC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
        "br-x\t00001CAC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n")
    assert host_routes(str(table)) == [ipaddress.IPv4Network("172.29.0.0/16"),
                                       ipaddress.IPv4Network("172.28.0.0/16")]
    assert host_routes(str(table), exclude=["sampan0"]) == [
        ipaddress.IPv4Network("172.28.0.0/16")]


# ---------------------------------------------------------------------- ports

def test_port_requests_from_bindings_ranges_and_publish_all() -> None:
    requests = ports.port_requests(
        {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}],
         "53/udp": [{"HostIp": "", "HostPort": "5300-5310"}]},
        {"80/tcp": {}, "443/tcp": {}}, publish_all=True)
    assert ports.PortRequest(80, "tcp", "127.0.0.1", 18080, 18080) in requests
    assert ports.PortRequest(53, "udp", "", 5300, 5310) in requests
    assert ports.PortRequest(443, "tcp", "", 0, 0) in requests
    assert len(requests) == 3
    with pytest.raises(errdefs.InvalidParameter):
        ports.port_requests({"80/icmp": []}, None, False)


class FakeReservations:
    def __init__(self, busy: set[int]) -> None:
        self.busy = busy
        self.held: list[tuple[str, str, int]] = []

    def reserve(self, proto: str, host_ip: str, port: int) -> int:
        if port in self.busy:
            raise errdefs.Conflict(f"bind for {host_ip}:{port} failed: port is already allocated")
        chosen = port or 40000 + len(self.held)
        self.held.append((proto, host_ip, chosen))
        return chosen

    def release(self, proto: str, host_ip: str, port: int) -> None:
        self.held.remove((proto, host_ip, port))


def test_publish_takes_the_first_free_port_of_a_range_and_undoes_on_failure() -> None:
    held = FakeReservations(busy={5300, 9000})
    mappings = ports.publish([ports.PortRequest(53, "udp", "", 5300, 5302),
                              ports.PortRequest(80, "tcp", "", 0, 0)], "10.0.0.2", "b", held)
    assert [m.host_port for m in mappings] == [5301, 40001]
    before = list(held.held)
    with pytest.raises(errdefs.Conflict):
        ports.publish([ports.PortRequest(81, "tcp", "", 0, 0),
                       ports.PortRequest(82, "tcp", "", 9000, 9000)], "10.0.0.3", "b", held)
    assert held.held == before


def test_socket_reservation_holds_the_port_until_released() -> None:
    reservations = ports.SocketReservations()
    port = reservations.reserve("tcp", "127.0.0.1", 0)
    probe = socket.socket()
    with pytest.raises(OSError):
        probe.bind(("127.0.0.1", port))
    probe.close()
    with pytest.raises(errdefs.Conflict, match="already allocated"):
        reservations.reserve("tcp", "127.0.0.1", port)
    reservations.release("tcp", "127.0.0.1", port)
    probe = socket.socket()
    probe.bind(("127.0.0.1", port))
    probe.close()


def test_ports_json_lists_exposed_and_published_ports() -> None:
    mappings = [PortMapping("tcp", "127.0.0.1", 18080, 80, "10.0.0.2")]
    assert ports.ports_json({"80/tcp": {}, "443/tcp": {}}, mappings) == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}], "443/tcp": None}


# ---------------------------------------------------------------------- DNS

def query(name: str, qtype: int = 1, ident: int = 0x1234) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\0" + \
        struct.pack("!HH", qtype, 1)


def test_dns_answer_carries_one_a_record_per_address() -> None:
    message = query("Redis.n1")
    question = parse_question(message)
    assert question is not None and question.name == "redis.n1" and question.qtype == 1
    reply = build_answer(message, question, ["10.1.0.2", "10.1.0.3"])
    ident, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    assert (ident, qd, an) == (0x1234, 1, 2) and flags & 0x8000 and flags & 0x0100
    assert reply.endswith(socket.inet_aton("10.1.0.3"))
    assert socket.inet_aton("10.1.0.2") in reply


def test_dns_other_types_of_known_names_get_an_empty_answer_and_errors_keep_the_id() -> None:
    message = query("redis", qtype=28)
    question = parse_question(message)
    assert question is not None
    assert struct.unpack("!H", build_answer(message, question, ["10.1.0.2"])[6:8])[0] == 0
    error = build_error(message, question, 2)
    assert struct.unpack("!HH", error[:4]) == (0x1234, 0x8000 | 0x0100 | 0x0080 | 2)
    assert parse_question(b"\0" * 5) is None
    assert parse_question(error) is None  # a response is not a question


# ---------------------------------------------------------------------- CNI

CONFLIST = {"cniVersion": "1.0.0", "name": "cnitest", "plugins": [
    {"type": "bridge", "bridge": "cni-t0", "ipam": {"type": "host-local"}},
    {"type": "portmap", "capabilities": {"portMappings": True}}]}


def test_cni_add_chains_results_and_del_runs_in_reverse(tmp_path: Path) -> None:
    for name in ("bridge", "portmap"):
        program = tmp_path / name
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    calls: list[CniCall] = []

    def execute(call: CniCall) -> tuple[int, bytes]:
        calls.append(call)
        result = {"cniVersion": "1.0.0", "ips": [{"address": "10.22.0.5/16",
                                                  "gateway": "10.22.0.1"}]}
        return 0, json.dumps(result).encode()

    runner = CniRunner(CONFLIST, cni_path=[str(tmp_path)], execute=execute)
    result = runner.add("cid", "/run/ns/cid", "eth0",
                        {"portMappings": [{"hostPort": 8080, "containerPort": 80}]})
    assert result_addresses(result)[0].address == "10.22.0.5"
    assert [c.program.rsplit("/", 1)[1] for c in calls] == ["bridge", "portmap"]
    first, second = (json.loads(c.stdin) for c in calls)
    assert calls[0].env["CNI_COMMAND"] == "ADD" and calls[0].env["CNI_NETNS"] == "/run/ns/cid"
    assert calls[0].env["CNI_IFNAME"] == "eth0" and first["name"] == "cnitest"
    assert "prevResult" not in first and second["prevResult"]["ips"]
    assert "runtimeConfig" not in first and second["runtimeConfig"]["portMappings"]
    calls.clear()
    runner.delete("cid", "/run/ns/cid", "eth0", result)
    assert [c.program.rsplit("/", 1)[1] for c in calls] == ["portmap", "bridge"]
    assert all(c.env["CNI_COMMAND"] == "DEL" for c in calls)


def test_cni_errors_name_the_plugin_and_a_failed_add_is_deleted(tmp_path: Path) -> None:
    for name in ("bridge", "portmap"):
        (tmp_path / name).write_text("")
        (tmp_path / name).chmod(0o755)
    commands: list[str] = []

    def execute(call: CniCall) -> tuple[int, bytes]:
        commands.append(call.env["CNI_COMMAND"] + ":" + call.program.rsplit("/", 1)[1])
        if call.env["CNI_COMMAND"] == "ADD" and call.program.endswith("portmap"):
            return 1, b'{"code": 7, "msg": "no iptables"}'
        return 0, b"{}"

    runner = CniRunner(CONFLIST, cni_path=[str(tmp_path)], execute=execute)
    with pytest.raises(errdefs.System, match="portmap ADD failed: no iptables"):
        runner.add("cid", "/ns", "eth0")
    assert commands == ["ADD:bridge", "ADD:portmap", "DEL:portmap", "DEL:bridge"]


def test_cni_configuration_is_validated() -> None:
    assert load_conflist(inline=json.dumps({"name": "x", "type": "bridge"}))["plugins"][0][
        "type"] == "bridge"
    with pytest.raises(errdefs.InvalidParameter):
        load_conflist(inline='{"name": "x", "plugins": [{}]}')
    with pytest.raises(errdefs.InvalidParameter):
        load_conflist(path="/nonexistent/conflist")


# ---------------------------------------------------------------------- files

def test_hosts_file_names_the_container_and_extra_hosts() -> None:
    extra = parse_extra_hosts(["db:10.9.0.9", "gw:host-gateway"], "172.29.0.1")
    text = hosts_content("abc", "", "172.29.0.2", extra)
    assert "10.9.0.9\tdb\n" in text and "172.29.0.1\tgw\n" in text
    assert text.endswith("172.29.0.2\tabc\n")
    with pytest.raises(errdefs.InvalidParameter):
        parse_extra_hosts(["nocolon"], "")


def test_hosts_file_gains_and_loses_the_address_of_a_connected_network() -> None:
    first = hosts_content("web", "", "172.29.0.2", [])
    connected = hosts_with_address(first, "10.1.0.3", "web", "example.org")
    assert connected == first + "10.1.0.3\tweb.example.org web\n"
    assert hosts_with_address(connected, "10.1.0.3", "web", "example.org") == connected
    assert hosts_without_address(connected, "10.1.0.3") == first
    assert "172.29.0.2\tweb" in hosts_without_address(connected, "10.1.0.3")


def test_resolv_conf_points_at_the_embedded_dns_or_at_usable_servers() -> None:
    host = "nameserver 127.0.0.53\nnameserver 10.0.0.53\nsearch corp\noptions edns0\n"
    embedded = resolv_content(host, embedded=True, servers=[], search=[], options=[])
    assert embedded.splitlines()[0] == "nameserver 127.0.0.11"
    assert "options edns0 ndots:0" in embedded and "search corp" in embedded
    plain = resolv_content(host, embedded=False, servers=[], search=["x.y"],
                           options=["ndots:2"])
    assert "127.0.0.53" not in plain and "nameserver 10.0.0.53" in plain
    assert "search x.y" in plain and "options ndots:2" in plain
    given = resolv_content(host, embedded=False, servers=["9.9.9.9"], search=[], options=[])
    assert given.splitlines()[0] == "nameserver 9.9.9.9"

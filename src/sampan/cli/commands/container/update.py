"""``sampan update [OPTIONS] CONTAINER...``: change resources and restart policy."""

from __future__ import annotations

import argparse
from typing import Any

from sampan.cli.arguments import new_parser
from sampan.cli.context import Context
from sampan.cli.each import for_each
from sampan.cli.errors import UsageError
from sampan.client.api import quote

SUMMARY = "Update configuration of one or more containers"


def parse(prog: str, argv: list[str]) -> argparse.Namespace:
    parser = new_parser(prog, "[OPTIONS] CONTAINER [CONTAINER...]", SUMMARY)
    add = parser.add_argument
    add("--blkio-weight", type=int, default=0, help="Block IO (relative weight)")
    add("--cpu-period", type=int, default=0, help="Limit CPU CFS period")
    add("--cpu-quota", type=int, default=0, help="Limit CPU CFS quota")
    add("-c", "--cpu-shares", type=int, default=0, help="CPU shares (relative weight)")
    add("--cpus", default="", help="Number of CPUs")
    add("--cpuset-cpus", default="", help="CPUs in which to allow execution")
    add("--cpuset-mems", default="", help="MEMs in which to allow execution")
    add("-m", "--memory", default="", help="Memory limit")
    add("--memory-reservation", default="", help="Memory soft limit")
    add("--memory-swap", default="", help="Swap limit equal to memory plus swap")
    add("--pids-limit", type=int, default=None, help="Tune container pids limit")
    add("--restart", default="", help="Restart policy to apply when a container exits")
    add("containers", nargs="+", metavar="CONTAINER")
    return parser.parse_args(argv)


def _body(args: argparse.Namespace) -> dict[str, Any]:
    from sampan.cli.units import parse_bytes

    body: dict[str, Any] = {}
    for option, key in (("blkio_weight", "BlkioWeight"), ("cpu_period", "CpuPeriod"),
                        ("cpu_quota", "CpuQuota"), ("cpu_shares", "CpuShares")):
        if getattr(args, option):
            body[key] = getattr(args, option)
    if args.cpus:
        body["NanoCpus"] = round(float(args.cpus) * 1e9)
    if args.cpuset_cpus:
        body["CpusetCpus"] = args.cpuset_cpus
    if args.cpuset_mems:
        body["CpusetMems"] = args.cpuset_mems
    for option, key in (("memory", "Memory"), ("memory_reservation", "MemoryReservation")):
        if getattr(args, option):
            body[key] = parse_bytes(getattr(args, option))
    if args.memory_swap:
        body["MemorySwap"] = -1 if args.memory_swap == "-1" else parse_bytes(args.memory_swap)
    if args.pids_limit is not None:
        body["PidsLimit"] = args.pids_limit
    if args.restart:
        name, _, count = args.restart.partition(":")
        body["RestartPolicy"] = {"Name": name, "MaximumRetryCount": int(count or 0)}
    if not body:
        raise UsageError("you must provide one or more flags when using this command")
    return body


def run(ctx: Context, args: argparse.Namespace) -> int:
    body = _body(args)

    def update(name: str) -> None:
        result = ctx.client.post(f"/containers/{quote(name)}/update", body=body) or {}
        for warning in result.get("Warnings") or []:
            ctx.err(warning)

    return for_each(ctx, args.containers, update)

"""Tables, sizes, ages and the rows of ``ps`` and ``images`` as the docker CLI prints them."""

from __future__ import annotations

from sampan.cli.formatting import render_rows
from sampan.cli.listing import ContainerRow, image_rows
from sampan.cli.tabwriter import align
from sampan.cli.units import bytes_size, ellipsis, go_quote, human_duration, human_size


def test_tabwriter_pads_to_widest_cell_plus_three_and_at_least_ten() -> None:
    assert align("A\tBB\tC\nlonger-cell-here\tx\ty") == (
        "A".ljust(19) + "BB".ljust(10) + "C\n" + "longer-cell-here".ljust(19) + "x".ljust(10)
        + "y")


def test_human_size_and_bytes_size() -> None:
    assert human_size(1_980_000, 3) == "1.98MB"
    assert human_size(999, 3) == "999B"
    assert human_size(0, 3) == "0B"
    assert bytes_size(1536 * 1024) == "1.5MiB"


def test_human_duration_matches_go_units() -> None:
    assert [human_duration(s) for s in (0.5, 1, 59, 60, 150, 3600, 7200, 3 * 86400,
                                        20 * 86400, 90 * 86400, 800 * 86400)] == [
        "Less than a second", "1 second", "59 seconds", "About a minute", "2 minutes",
        "About an hour", "2 hours", "3 days", "2 weeks", "3 months", "2 years"]


def test_command_is_quoted_and_cut_to_twenty_characters() -> None:
    assert go_quote('sh -c "x"\n') == '"sh -c \\"x\\"\\n"'
    assert ellipsis("abcdefghijklmnopqrstuvwxyz", 20) == "abcdefghijklmnopqrs…"


def test_container_row_fields() -> None:
    row = ContainerRow({"Id": "a" * 64, "Names": ["/web", "/other/web"], "Image": "busybox",
                        "ImageID": "sha256:" + "b" * 64, "Command": "sleep 1000",
                        "Created": 1000, "State": "running", "Status": "Up 2 seconds",
                        "Ports": [{"PrivatePort": 80, "Type": "tcp"},
                                  {"IP": "0.0.0.0", "PrivatePort": 53, "PublicPort": 5353,
                                   "Type": "udp"}],
                        "Labels": {"b": "2", "a": "1"}}, now=1003)
    assert (row.ID, row.Names, row.Command, row.RunningFor) == (
        "a" * 12, "web", '"sleep 1000"', "3 seconds ago")
    assert row.Ports == "80/tcp, 0.0.0.0:5353->53/udp"
    assert row.Labels == "a=1,b=2" and row.Label("b") == "2"


def test_table_format_prints_headers_and_aligns() -> None:
    rows = [ContainerRow({"Id": "c" * 64, "Names": ["/x"], "State": "exited"})]
    out = render_rows("table {{.ID}}\\t{{.Names}}\\t{{.State}}", rows,
                      {"ID": "CONTAINER ID", "Names": "NAMES", "State": "STATE"})
    assert out == "CONTAINER ID   NAMES     STATE\ncccccccccccc   x         exited\n"


def test_images_expand_to_one_row_per_tag_and_none_for_untagged() -> None:
    rows = image_rows([{"Id": "sha256:" + "d" * 64, "RepoTags": ["a:1", "r:5000/b:2"],
                        "Created": 0, "Size": 10},
                       {"Id": "sha256:" + "e" * 64, "RepoTags": [], "RepoDigests": []}])
    assert [(r.Repository, r.Tag, r.ID) for r in rows] == [
        ("a", "1", "d" * 12), ("r:5000/b", "2", "d" * 12), ("<none>", "<none>", "e" * 12)]

"""Across engines through one registry (issue 6, acceptance 2): what sampand pushes, dockerd
pulls and runs; what dockerd pushes, sampand pulls and runs."""

from __future__ import annotations

from collections.abc import Callable

from dockerd_harness import EngineStack
from sampand_harness import BUSYBOX, SHARED_IMAGES, Sampand


def test_images_cross_between_sampand_and_dockerd(
        engine_stack_factory: Callable[..., EngineStack]) -> None:
    stack = engine_stack_factory(registry=True)
    registry = stack.start_registry()
    with Sampand() as sampand:
        sampand.ok("load", "-i", str(BUSYBOX))
        sampand.ok("load", "-i", str(SHARED_IMAGES / "nginx.tar.gz"), timeout=180)
        # sampand -> registry -> dockerd
        for name in ("busybox:latest", "nginx:bookworm"):
            sampand.ok("tag", name, f"{registry}/from-sampan/{name}")
            sampand.ok("push", f"{registry}/from-sampan/{name}", timeout=180)
            stack.docker_ok("pull", f"{registry}/from-sampan/{name}", timeout=180)
            ours = sampand.inspect(f"{registry}/from-sampan/{name}")
            theirs = stack.inspect(f"{registry}/from-sampan/{name}")
            assert theirs["Id"] == ours["Id"]
            assert theirs["RepoDigests"] == ours["RepoDigests"]
        echoed = stack.docker_ok("run", "--rm", "--network", "none",
                                 f"{registry}/from-sampan/busybox:latest", "echo", "in-dockerd")
        assert echoed == "in-dockerd\n"
        version = stack.docker_ok("run", "--rm", "--network", "none",
                                  f"{registry}/from-sampan/nginx:bookworm", "sh", "-c",
                                  "nginx -v 2>&1")
        assert version.startswith("nginx version: nginx/1.22.1")
        # dockerd -> registry -> sampand
        stack.docker_ok("tag", "busybox:latest", f"{registry}/from-dockerd/busybox:1")
        stack.docker_ok("push", f"{registry}/from-dockerd/busybox:1", timeout=120)
        with Sampand() as clean:
            clean.ok("pull", f"{registry}/from-dockerd/busybox:1")
            pulled = clean.inspect(f"{registry}/from-dockerd/busybox:1")
            pushed = stack.inspect(f"{registry}/from-dockerd/busybox:1")
            assert pulled["Id"] == pushed["Id"]
            # dockerd's busybox also has the from-sampan digest (pulled above): same image.
            assert len(pulled["RepoDigests"]) == 1
            assert pulled["RepoDigests"][0] in pushed["RepoDigests"]
            echoed = clean.ok("run", "--rm", "--network", "none",
                              f"{registry}/from-dockerd/busybox:1", "echo", "in-sampan")
            assert echoed == "in-sampan\n"

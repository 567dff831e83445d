"""Turning a create request into a container's Config and HostConfig (pure logic).

``merge_image_config`` applies the image's defaults the way Docker does; ``check_host_config``
fills Docker's defaults into HostConfig and rejects what Docker rejects (400).
"""

from __future__ import annotations

from typing import Any

from sampan import errdefs

DEFAULT_SHM_SIZE = 64 * 1024 * 1024
MIN_MEMORY = 6 * 1024 * 1024
RESTART_POLICIES = ("", "no", "always", "unless-stopped", "on-failure")
LOG_DRIVERS = ("json-file", "none")
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _env_key(item: str) -> str:
    return item.split("=", 1)[0]


def merge_env(image_env: list[str], user_env: list[str]) -> list[str]:
    """Image variables overridden by the user's, by name; order of first appearance."""
    merged: dict[str, str] = {}
    for item in [*image_env, *user_env]:
        merged[_env_key(item)] = item
    return list(merged.values())


def merge_image_config(config: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """Docker's ``merge``: what the user left empty comes from the image's config
    (``image`` is the image config's ``config`` member)."""
    merged = dict(config)
    if not merged.get("User"):
        merged["User"] = image.get("User") or ""
    merged["ExposedPorts"] = {**(image.get("ExposedPorts") or {}),
                              **(merged.get("ExposedPorts") or {})} or None
    env = merge_env(list(image.get("Env") or []), list(merged.get("Env") or []))
    if not any(_env_key(item) == "PATH" for item in env):
        env.insert(0, DEFAULT_PATH_ENV)
    merged["Env"] = env
    labels = {**(image.get("Labels") or {}), **(merged.get("Labels") or {})}
    merged["Labels"] = labels
    if not merged.get("Entrypoint"):
        if not merged.get("Cmd"):
            merged["Cmd"] = image.get("Cmd")
            if merged.get("Shell") is None and image.get("Shell"):
                merged["Shell"] = image["Shell"]
        if merged.get("Entrypoint") is None:
            merged["Entrypoint"] = image.get("Entrypoint")
    if not merged.get("WorkingDir"):
        merged["WorkingDir"] = image.get("WorkingDir") or ""
    if not merged.get("Volumes") and image.get("Volumes"):
        merged["Volumes"] = image["Volumes"]
    if not merged.get("StopSignal") and image.get("StopSignal"):
        merged["StopSignal"] = image["StopSignal"]
    image_health = image.get("Healthcheck")
    user_health = merged.get("Healthcheck")
    if image_health and not user_health:
        merged["Healthcheck"] = dict(image_health)
    elif image_health and user_health:
        health = dict(user_health)
        if not health.get("Test"):
            health["Test"] = image_health.get("Test")
        for key in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
            if not health.get(key):
                health[key] = image_health.get(key, 0)
        merged["Healthcheck"] = health
    if merged.get("OnBuild") is None and image.get("OnBuild"):
        merged["OnBuild"] = image["OnBuild"]
    return merged


def command_of(config: dict[str, Any]) -> tuple[str, list[str]]:
    """Path and Args: Entrypoint followed by Cmd."""
    argv = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    if not argv:
        raise errdefs.InvalidParameter("no command specified")
    return argv[0], argv[1:]


def _non_negative(host_config: dict[str, Any], key: str) -> None:
    value = host_config.get(key)
    if value is not None and not isinstance(value, bool) and isinstance(value, int) and value < 0:
        raise errdefs.InvalidParameter(f"invalid {key}: {value} must not be negative")


def check_host_config(host_config: dict[str, Any], runtimes: dict[str, str],
                      default_runtime: str,
                      default_log: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate and fill defaults; returns the HostConfig to store. ``default_log``: the
    daemon's ``log-driver`` / ``log-opts`` (``{"Type", "Config"}``): a container without a log
    driver gets it, and one with the same driver gets the options it does not set itself
    (Docker's ``mergeAndVerifyLogConfig``)."""
    hc = dict(host_config)
    policy = dict(hc.get("RestartPolicy") or {})
    name = policy.get("Name") or "no"
    if name not in RESTART_POLICIES:
        raise errdefs.InvalidParameter(f"invalid restart policy '{name}'")
    retries = policy.get("MaximumRetryCount") or 0
    if not isinstance(retries, int) or retries < 0:
        raise errdefs.InvalidParameter("invalid restart policy: maximum retry count cannot be "
                                       "negative")
    if retries and name != "on-failure":
        raise errdefs.InvalidParameter(
            f"invalid restart policy: maximum retry count can only be used with 'on-failure'"
            f" (got '{name}')")
    hc["RestartPolicy"] = {"Name": name, "MaximumRetryCount": retries}
    if hc.get("AutoRemove") and name != "no":
        raise errdefs.InvalidParameter(
            "can't create 'AutoRemove' container with restart policy")
    # MemorySwap -1 means unlimited and CpuQuota -1 no quota: both may be negative
    for key in ("Memory", "MemoryReservation", "NanoCpus", "CpuShares", "CpuPeriod",
                "ShmSize", "BlkioWeight", "KernelMemory"):
        _non_negative(hc, key)
    memory = hc.get("Memory") or 0
    if memory and memory < MIN_MEMORY:
        raise errdefs.InvalidParameter("Minimum memory limit allowed is 6MB")
    swap = hc.get("MemorySwap") or 0
    if swap > 0 and memory and swap < memory:
        raise errdefs.InvalidParameter(
            "Minimum memoryswap limit should be larger than memory limit, see usage")
    if swap and not memory:
        raise errdefs.InvalidParameter(
            "You should always set the Memory limit when using Memoryswap limit, see usage")
    if hc.get("NanoCpus") and (hc.get("CpuQuota") or hc.get("CpuPeriod")):
        raise errdefs.InvalidParameter(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set")
    pids = hc.get("PidsLimit")
    if pids is not None and pids <= 0:
        hc["PidsLimit"] = None if pids == 0 else -1
    if not hc.get("ShmSize"):
        hc["ShmSize"] = DEFAULT_SHM_SIZE
    log_config = dict(hc.get("LogConfig") or {})
    daemon_log = default_log or {}
    log_type = log_config.get("Type") or daemon_log.get("Type") or "json-file"
    if log_type not in LOG_DRIVERS:
        raise errdefs.InvalidParameter(f"logger: no log driver named '{log_type}' is registered")
    log_options = dict(log_config.get("Config") or {})
    if log_type == (daemon_log.get("Type") or "json-file"):
        log_options = {**dict(daemon_log.get("Config") or {}), **log_options}
    hc["LogConfig"] = {"Type": log_type, "Config": log_options}
    runtime = hc.get("Runtime") or default_runtime
    if runtime not in runtimes:
        raise errdefs.InvalidParameter(f"unknown or invalid runtime name: {runtime}")
    hc["Runtime"] = runtime
    mode = hc.get("NetworkMode") or "default"
    hc["NetworkMode"] = mode
    for key in ("IpcMode", "PidMode", "UTSMode", "UsernsMode"):
        value = hc.get(key) or ""
        if value.startswith("container:"):
            raise errdefs.NotImplementedFeature(f"{key} {value} is not supported yet")
    if not hc.get("IpcMode"):
        hc["IpcMode"] = "private"
    if not hc.get("CgroupnsMode"):
        hc["CgroupnsMode"] = "host"
    console = hc.get("ConsoleSize") or [0, 0]
    hc["ConsoleSize"] = console
    return hc


def parse_log_size(text: str) -> int:
    """json-file ``max-size`` ("10m", "1g", "512k", "100"); InvalidParameter if malformed."""
    units = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2,
             "g": 1024**3, "gb": 1024**3}
    body = text.strip().lower()
    digits = body.rstrip("kmgb")
    unit = body[len(digits):]
    try:
        value = float(digits)
    except ValueError as exc:
        raise errdefs.InvalidParameter(f"invalid max-size {text!r}") from exc
    if unit not in units or value < 0:
        raise errdefs.InvalidParameter(f"invalid max-size {text!r}")
    return int(value * units[unit])

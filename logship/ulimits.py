"""The resource limits `--ulimit` may set: Docker's names (units.ParseUlimit), shared by the CLI, which
parses the flag, and the daemon, which checks HostConfig.Ulimits from any client."""

from __future__ import annotations

NAMES = (
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
)

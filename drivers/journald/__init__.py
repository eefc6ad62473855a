"""The journald log driver, as the registry sees it: `name`, `validate_options`, `new`."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from logship.drivers.journald.driver import JournaldDriver
from logship.drivers.options import ATTRIBUTE_OPTIONS, check_attribute_patterns, reject_unknown
from logship.errors import InvalidParameter
from logship.pipeline.info import ContainerInfo
from logship.pipeline.tagtemplate import DEFAULT_TEMPLATE, render_tag

name = "journald"
can_read = True  # `logs` of a stopped container opens this driver again just to read
has_fields = True  # parse=json: journal fields (see fields.ParsedFields)

JOURNAL_SOCKET = "/run/systemd/journal/socket"

__all__ = ["JOURNAL_SOCKET", "JournaldDriver", "journal_problem", "name", "new", "validate_options"]


def validate_options(opts: Mapping[str, str]) -> None:
    reject_unknown(name, opts, ATTRIBUTE_OPTIONS)


def journal_problem(path: str = JOURNAL_SOCKET) -> str:
    """Why entries cannot be sent to the journal at `path`, or "" when they can."""
    if not os.path.exists(path):
        return f"the journal is not reachable at {path}: no such socket (is systemd-journald running?)"
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect(path)
    except OSError as err:
        return f"the journal is not reachable at {path}: {err.strerror or err} (is systemd-journald running?)"
    finally:
        probe.close()
    return ""


async def new(info: ContainerInfo) -> JournaldDriver:
    try:
        import systemd.journal  # noqa: F401 - only checking it is installed
    except ImportError:
        raise InvalidParameter(
            "the journald log driver needs systemd-python: pip install 'logship[journald]' "
            "(on Debian, apt-get install libsystemd-dev pkg-config gcc first)"
        ) from None
    problem = journal_problem()
    if problem:
        raise InvalidParameter(problem)
    check_attribute_patterns(info.config)
    tag = render_tag(info.config.get("tag") or DEFAULT_TEMPLATE, info)
    return JournaldDriver(info, tag, JOURNAL_SOCKET)

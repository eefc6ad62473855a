"""The syslog log driver, as the registry sees it: `name`, `validate_options`, `new`, `disk_buffer`.

Split by concern: `options` (log-opts, addresses, TLS files), `encode` (batches → Docker's syslog bytes),
`transport` (which socket for which address), `retry` (backoff), `driver` (ties them to the network
sender of drivers/util/netsink.py). Unlike Docker's, `new` never waits for the server: a container starts
while its syslog server is down, and the driver connects behind with backoff.
"""

from __future__ import annotations

import os

from logship.drivers.syslog import retry
from logship.drivers.syslog.driver import SyslogDriver, log
from logship.drivers.syslog.encode import SyslogEncoder
from logship.drivers.syslog.options import parse_config, tls_context
from logship.drivers.syslog.options import validate_options as validate_options
from logship.drivers.syslog.transport import dialer, is_datagram
from logship.drivers.util.netsink import NetworkSender
from logship.pipeline.info import ContainerInfo
from logship.pipeline.tagtemplate import DEFAULT_TEMPLATE, render_tag

name = "syslog"
disk_buffer = True

__all__ = ["SyslogDriver", "disk_buffer", "name", "new", "validate_options"]


async def new(info: ContainerInfo) -> SyslogDriver:
    config = parse_config(info.config)
    context = tls_context(config) if config.address.scheme == "tcp+tls" else None
    tag = render_tag(info.config.get("tag") or DEFAULT_TEMPLATE, info) or "logship"
    encoder = SyslogEncoder(config, tag, info.hostname(), os.getpid(), is_datagram(config.address))
    sender = NetworkSender(
        f"syslog at {config.address}", info.container_id, dialer(config.address, context), retry.policy(), log
    )
    return SyslogDriver(encoder, sender)

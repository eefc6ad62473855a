"""The gelf log driver, as the registry sees it: `name`, `validate_options`, `new`, `disk_buffer`.

Split by concern: `options` (log-opts), `encode` (batches → Docker's GELF messages, compression, UDP
chunks, TCP frames), `transport` (UDP or TCP), `retry` (reconnects), `driver` (ties them to the network
sender of drivers/util/netsink.py). Unlike Docker's, `new` never waits for a TCP server: the container
starts while it is down, and the driver connects behind.
"""

from __future__ import annotations

from logship.drivers.gelf import retry
from logship.drivers.gelf.driver import GelfDriver, log
from logship.drivers.gelf.encode import Datagrams, GelfEncoder, extras
from logship.drivers.gelf.options import parse_config
from logship.drivers.gelf.options import validate_options as validate_options
from logship.drivers.gelf.transport import dialer
from logship.drivers.util.netsink import NetworkSender
from logship.pipeline.info import ContainerInfo
from logship.pipeline.tagtemplate import DEFAULT_TEMPLATE, render_tag

name = "gelf"
disk_buffer = True
has_fields = True  # parse=json: GELF additional fields (see encode.ParsedFields)

__all__ = ["GelfDriver", "disk_buffer", "name", "new", "validate_options"]


async def new(info: ContainerInfo) -> GelfDriver:
    config = parse_config(info.config)
    tag = render_tag(info.config.get("tag") or DEFAULT_TEMPLATE, info)
    encoder = GelfEncoder(info.hostname(), extras(info, tag), info.config.get("parse-key", ""))
    datagrams = Datagrams(config.compression, config.compression_level) if config.scheme == "udp" else None
    sender = NetworkSender(f"gelf at {config.address}", info.container_id, dialer(config), retry.policy(config), log)
    return GelfDriver(encoder, datagrams, sender)

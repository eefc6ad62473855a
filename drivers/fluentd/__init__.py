"""The fluentd log driver, as the registry sees it: `name`, `validate_options`, `new`.

Split by concern: `options` (log-opts and addresses), `encode` (batches → Forward protocol bytes),
`transport` (asyncio connections), `retry` (backoff), `driver` (the buffer and the sender loop).
"""

from __future__ import annotations

from logship.drivers.fluentd.driver import FluentdDriver
from logship.drivers.fluentd.encode import RecordEncoder
from logship.drivers.fluentd.options import parse_config
from logship.drivers.fluentd.options import validate_options as validate_options
from logship.drivers.fluentd.transport import TransportError, connect
from logship.errors import InvalidParameter
from logship.pipeline.info import ContainerInfo
from logship.pipeline.tagtemplate import DEFAULT_TEMPLATE, render_tag

name = "fluentd"
disk_buffer = True  # ships off the host: reads the spool at its own pace (see logship.pipeline.diskbuffer)
has_fields = True  # parse=json: a record's keys (see logship.pipeline.processing)

__all__ = ["FluentdDriver", "name", "new", "validate_options"]


async def new(info: ContainerInfo) -> FluentdDriver:
    """Without fluentd-async, fluentd must answer now (within the connect timeout), as in Docker, but
    the error says what to do; with it, the container starts at once and the driver connects behind."""
    config = parse_config(info.config)
    tag = render_tag(info.config.get("tag") or DEFAULT_TEMPLATE, info)
    encoder = RecordEncoder(
        info, info.extra_attributes(), config.sub_second_precision, info.config.get("parse-key", "")
    )
    connection = None
    if not config.async_connect:
        try:
            connection = await connect(config.address)
        except TransportError as err:
            raise InvalidParameter(
                f"{err} (start fluentd there, or use --log-opt fluentd-async=true to start the container "
                "anyway and connect in the background)"
            ) from None
    return FluentdDriver(info.container_id, config, tag, encoder, connection)

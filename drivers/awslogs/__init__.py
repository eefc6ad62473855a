"""The awslogs log driver, as the registry sees it: `name`, `validate_options`, `new`.

Split by concern: `options` (log-opts, region, multiline patterns), `events` (lines → events → batches
within CloudWatch's limits), `client` (shared boto3 clients off the event loop), `retry` (which errors
are temporary, backoff), `driver` (the buffer and the publisher loop).
"""

from __future__ import annotations

from logship.drivers.awslogs.driver import AWSLogsDriver
from logship.drivers.awslogs.options import parse_config
from logship.drivers.awslogs.options import validate_options as validate_options
from logship.pipeline.info import ContainerInfo
from logship.pipeline.tagtemplate import render_tag

name = "awslogs"
disk_buffer = True  # ships off the host: reads the spool at its own pace (see logship.pipeline.diskbuffer)
has_fields = True  # parse=json: CloudWatch gets the JSON message as it is (its Insights finds the fields)

__all__ = ["AWSLogsDriver", "name", "new", "validate_options"]


async def new(info: ContainerInfo) -> AWSLogsDriver:
    """Never touches AWS: creating the group and stream happens in the background."""
    config = parse_config(info.config)
    stream = config.stream_override
    if not stream:
        stream = render_tag(info.config["tag"], info) if info.config.get("tag") else info.full_id()
    return AWSLogsDriver(info.container_id, config, stream)

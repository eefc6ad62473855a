"""The syslog driver: batches are encoded (encode.py) and queued to the network sender
(drivers/util/netsink.py), which connects, reconnects and confirms delivery."""

from __future__ import annotations

import logging

from logship.drivers.syslog.encode import SyslogEncoder
from logship.drivers.util.netsink import NetworkSender, SenderDriver
from logship.pipeline.message import Batch

log = logging.getLogger("logship.drivers.syslog")


class SyslogDriver(SenderDriver):
    name = "syslog"

    def __init__(self, encoder: SyslogEncoder, sender: NetworkSender) -> None:
        super().__init__(sender)
        self._encoder = encoder

    async def log(self, batch: Batch) -> None:
        await self._sender.put(self._encoder.messages(batch), len(batch))

"""The gelf driver: batches are encoded (encode.py), compressed and chunked for UDP or NUL-framed for TCP,
and queued to the network sender (drivers/util/netsink.py), which connects, reconnects and confirms
delivery."""

from __future__ import annotations

import logging

from logship.drivers.gelf.encode import Datagrams, GelfEncoder, tcp_frames
from logship.drivers.util.netsink import NetworkSender, SenderDriver
from logship.pipeline.message import Batch

log = logging.getLogger("logship.drivers.gelf")


class GelfDriver(SenderDriver):
    name = "gelf"

    def __init__(self, encoder: GelfEncoder, datagrams: Datagrams | None, sender: NetworkSender) -> None:
        super().__init__(sender)
        self._encoder = encoder
        self._datagrams = datagrams  # None: TCP

    async def log(self, batch: Batch) -> None:
        messages = self._encoder.messages(batch)
        if self._datagrams is None:
            await self._sender.put([tcp_frames(messages)], len(batch))
            return
        payload = self._datagrams.datagrams(messages)
        if self._datagrams.too_large:
            counters = self._sender.counters
            counters.lines_failed += len(self._datagrams.too_large)
            counters.error(self._datagrams.too_large[-1])
            log.error("gelf: container %s: left out %s", self._sender.container, "; ".join(self._datagrams.too_large))
            self._datagrams.too_large.clear()
        await self._sender.put(payload, len(batch))

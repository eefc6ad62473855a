"""`GET /metrics`: every container's logging counters in Prometheus' text format.

Counters are read when scraped (no second copy of the numbers is kept): per container (lines and bytes
read, partial messages, and what its processing did: events joined, lines parsed or not, matches redacted,
lines filtered) and per container and driver (written, dropped, retried, failed, buffer fill and
limit, times of the last write and the last error), labelled with the container's id, name and driver.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from logship.api.app import add_route, backend
from logship.daemon.containers import ContainerManager

CONTAINER = ["container_id", "container_name"]
DRIVER = [*CONTAINER, "driver"]


class LogStatsCollector(Collector):
    def __init__(self, containers: ContainerManager) -> None:
        self.containers = containers

    def collect(self) -> Iterator[Metric]:
        read = CounterMetricFamily("logship_log_lines_read", "Lines read from a container's output.", labels=CONTAINER)
        read_bytes = CounterMetricFamily(
            "logship_log_bytes_read", "Bytes read from a container's output.", labels=CONTAINER
        )
        partial = CounterMetricFamily(
            "logship_log_partial_messages", "Pieces of lines longer than the line limit.", labels=CONTAINER
        )
        processing = {
            key: CounterMetricFamily(name, help_text, labels=CONTAINER)
            for key, name, help_text in (
                ("EventsJoined", "logship_log_events_joined", "Multiline events of more than one line."),
                ("LinesJoined", "logship_log_lines_joined", "Lines joined into multiline events."),
                ("EventsCapped", "logship_log_events_capped", "Multiline events ended by multiline-max-bytes."),
                ("LinesParsed", "logship_log_lines_parsed", "Lines (or events) parse=json made fields of."),
                ("LinesNotParsed", "logship_log_lines_not_parsed", "Lines (or events) that were not a JSON object."),
                ("MatchesRedacted", "logship_log_matches_redacted", "Matches of redact replaced."),
                ("LinesFiltered", "logship_log_lines_filtered", "Lines dropped by the drop and keep filters."),
            )
        }
        written = CounterMetricFamily("logship_log_lines_written", "Lines a driver accepted.", labels=DRIVER)
        written_bytes = CounterMetricFamily(
            "logship_log_bytes_written", "Bytes of lines a driver accepted.", labels=DRIVER
        )
        dropped = CounterMetricFamily(
            "logship_log_lines_dropped", "Lines dropped because a non-blocking buffer was full.", labels=DRIVER
        )
        retried = CounterMetricFamily("logship_log_lines_retried", "Lines sent again after a failure.", labels=DRIVER)
        failed = CounterMetricFamily("logship_log_lines_failed", "Lines a driver could not deliver.", labels=DRIVER)
        buffered = GaugeMetricFamily("logship_log_buffered_bytes", "Bytes waiting for a driver.", labels=DRIVER)
        limit = GaugeMetricFamily(
            "logship_log_buffer_limit_bytes", "How many bytes may wait for a driver.", labels=DRIVER
        )
        last_write = GaugeMetricFamily(
            "logship_log_last_write_timestamp_seconds", "When a driver last accepted lines (Unix time).", labels=DRIVER
        )
        last_error = GaugeMetricFamily(
            "logship_log_last_error_timestamp_seconds", "When a driver last failed (Unix time).", labels=DRIVER
        )
        disk = {
            "bytes": GaugeMetricFamily(
                "logship_log_disk_buffered_bytes",
                "Bytes spooled that a disk-buffered driver has not taken.",
                labels=DRIVER,
            ),
            "lines": GaugeMetricFamily(
                "logship_log_disk_buffered_lines", "Lines a disk-buffered driver has not delivered.", labels=DRIVER
            ),
            "limit": GaugeMetricFamily(
                "logship_log_disk_buffer_limit_bytes",
                "A disk-buffered driver's budget (buffer-max-size).",
                labels=DRIVER,
            ),
            "age": GaugeMetricFamily(
                "logship_log_disk_oldest_undelivered_age_seconds",
                "Age of the oldest line a disk-buffered driver has not delivered.",
                labels=DRIVER,
            ),
            "rate": GaugeMetricFamily(
                "logship_log_disk_catchup_lines_per_second",
                "Lines a disk-buffered driver delivered per second, lately.",
                labels=DRIVER,
            ),
            "pending": GaugeMetricFamily(
                "logship_log_disk_pending",
                "1 while a disk-buffered driver delivers after its container's end.",
                labels=DRIVER,
            ),
        }
        sources = []
        for container in self.containers.all():
            self.containers.refresh_log_stats(container)
            sources.append((container.record.id, container.record.name, container.record.log_stats))
        live = {container_id for container_id, _, _ in sources}
        for delivery in self.containers.pending.deliveries.values():
            delivery.to_api()  # refreshes its buffers' counters
            if delivery.container_id not in live:  # a removed container: its counters live here now
                sources.append((delivery.container_id, delivery.info.container_name, delivery.stats))
        for container_id, name, stats in sources:
            labels = [container_id, name.lstrip("/")]
            read.add_metric(labels, stats.lines_read)
            read_bytes.add_metric(labels, stats.bytes_read)
            partial.add_metric(labels, stats.partial_messages)
            if stats.processing is not None:
                for key, value in stats.processing.to_api().items():
                    processing[key].add_metric(labels, value)
            for driver in stats.drivers:
                driver_labels = [*labels, driver.driver]
                written.add_metric(driver_labels, driver.lines_written)
                written_bytes.add_metric(driver_labels, driver.bytes_written)
                dropped.add_metric(driver_labels, driver.lines_dropped)
                retried.add_metric(driver_labels, driver.lines_retried)
                failed.add_metric(driver_labels, driver.lines_failed + driver.driver_failed)
                buffered.add_metric(driver_labels, driver.buffered_bytes + driver.driver_buffered_bytes)
                limit.add_metric(driver_labels, driver.buffer_limit)
                last_write.add_metric(driver_labels, driver.last_write_ns / 1e9)
                last_error.add_metric(driver_labels, driver.last_error_ns / 1e9)
                if driver.disk is not None:
                    api = driver.disk.to_api()
                    disk["bytes"].add_metric(driver_labels, api["Bytes"])
                    disk["lines"].add_metric(driver_labels, api["Lines"])
                    disk["limit"].add_metric(driver_labels, api["Limit"])
                    disk["age"].add_metric(driver_labels, api["OldestAgeSeconds"])
                    disk["rate"].add_metric(driver_labels, api["CatchUpLinesPerSecond"])
                    disk["pending"].add_metric(driver_labels, 1 if api["Pending"] else 0)
        yield from (
            read,
            read_bytes,
            partial,
            *processing.values(),
            written,
            written_bytes,
            dropped,
            retried,
            failed,
            buffered,
            limit,
            last_write,
            last_error,
            *disk.values(),
        )


async def metrics(request: web.Request) -> web.Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LogStatsCollector(backend(request).containers))
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


def register(app: web.Application) -> None:
    add_route(app, "GET", "/metrics", metrics)

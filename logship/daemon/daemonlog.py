"""The daemon's own log: `<data-root>/daemon.log`, rotated, kept apart from every container log; or,
with `"daemon-log": "journald"`, the system journal under SYSLOG_IDENTIFIER=logshipd (never with any
CONTAINER_* field, so `logs` and `journalctl CONTAINER_ID_FULL=...` never see it).

File lines look like dockerd's (logrus text format) so people can grep them the same way:
`time="2026-11-29T07:27:21.123456789Z" level=info msg="..."`; `log-format: json` gives one JSON object a line.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import time
from pathlib import Path

MAX_BYTES = 10 * 1000 * 1000
BACKUPS = 3

_LEVELS = {
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": logging.DEBUG,
}
_NAMES = {logging.CRITICAL: "fatal", logging.ERROR: "error", logging.WARNING: "warning", logging.INFO: "info"}


def _timestamp(record: logging.LogRecord) -> str:
    ns = int(record.created * 1e9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


def _message(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if record.exc_info:
        text += "\n" + logging.Formatter().formatException(record.exc_info)
    return text


class LogrusTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = _NAMES.get(record.levelno, "debug")
        return f'time="{_timestamp(record)}" level={level} msg={json.dumps(_message(record), ensure_ascii=False)}'


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = _NAMES.get(record.levelno, "debug")
        return json.dumps({"level": level, "msg": _message(record), "time": _timestamp(record)}, ensure_ascii=False)


JOURNAL_IDENTIFIER = "logshipd"


def location(target: str, path: Path) -> str:
    """Where the daemon log goes, for `info` and the start-up line."""
    return f"journald, SYSLOG_IDENTIFIER={JOURNAL_IDENTIFIER}" if target == "journald" else str(path)


def _journal_handler() -> logging.Handler:
    from systemd import journal

    return journal.JournalHandler(SYSLOG_IDENTIFIER=JOURNAL_IDENTIFIER)  # type: ignore[no-any-return]


def setup(path: Path, level: str, log_format: str = "text", target: str = "file") -> logging.Handler:
    """Send every `logging` record of the daemon process to the daemon log (file or journal)."""
    handler: logging.Handler
    if target == "journald":
        handler = _journal_handler()
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS)
        handler.setFormatter(JSONFormatter() if log_format == "json" else LogrusTextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS[level])
    # aiohttp's per-request access log would drown the daemon log; keep it for debug level only.
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG if level in ("debug", "trace") else logging.WARNING)
    # At debug level boto3/botocore/urllib3 log signed request headers (the AWS access key id) and request
    # bodies (container log lines): neither belongs in the daemon log, whatever its level.
    for library in ("boto3", "botocore", "s3transfer", "urllib3"):
        logging.getLogger(library).setLevel(max(_LEVELS[level], logging.INFO))
    return handler

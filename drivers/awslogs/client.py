"""The CloudWatch Logs calls, through boto3, shared and kept off the event loop.

One boto3 client per (region, endpoint, credentials endpoint, format), shared by every container that
uses the same ones; calls run in a thread pool of their own, so a slow AWS never takes the threads other
drivers use. Credentials come from boto3's default chain, or from `awslogs-credentials-endpoint` (a path
on the ECS task role endpoint http://169.254.170.2). They are never logged.

PutLogEvents is the hot call: botocore serializes its 10,000 events member by member (~3 us each here),
more CPU than all the rest of logship spends on a line. Its JSON body is the parameters as they are, so
the serializer is given a wrapper that writes that body in bulk from the driver's `LogEvents` (see
`events`); everything else (endpoint, headers, signing, event hooks, error parsing) stays botocore's.
Retries are logship's own (see `retry`), so botocore's are off.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from logship import __version__
from logship.drivers.awslogs.events import LogEvents

EXECUTOR = ThreadPoolExecutor(max_workers=16, thread_name_prefix="awslogs")
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 30

_clients: dict[tuple[str, str, str, bool], Any] = {}
_lock = threading.Lock()


class _PutLogEventsSerializer:
    """botocore's serializer, except that PutLogEvents' body is written in one go."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def serialize_to_request(self, parameters: Mapping[str, Any], operation_model: Any) -> Any:
        events = parameters.get("logEvents")
        if operation_model.name != "PutLogEvents" or not isinstance(events, LogEvents):
            return self._inner.serialize_to_request(parameters, operation_model)
        rest = {key: value for key, value in parameters.items() if key != "logEvents"}
        request = self._inner.serialize_to_request({**rest, "logEvents": []}, operation_model)
        head = orjson.dumps(rest)[:-1] + (b"," if rest else b"")
        request["body"] = head + b'"logEvents":[' + events.json() + b"]}"
        return request


def client_for(region: str, endpoint: str, credentials_endpoint: str, emf: bool) -> Any:
    """The shared client for these settings (creating one is slow: call this in a worker thread)."""
    key = (region, endpoint, credentials_endpoint, emf)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _new_client(region, endpoint, credentials_endpoint, emf)
        return client


def _new_client(region: str, endpoint: str, credentials_endpoint: str, emf: bool) -> Any:
    import boto3
    import botocore.credentials
    import botocore.session
    from botocore.config import Config

    core = botocore.session.get_session()
    if credentials_endpoint:
        # botocore resolves a relative URI against the ECS task role endpoint, http://169.254.170.2.
        provider = botocore.credentials.ContainerProvider(
            environ={"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": credentials_endpoint}
        )
        core.get_component("credential_provider").insert_before("env", provider)
    session = boto3.session.Session(botocore_session=core)
    client = session.client(
        "logs",
        region_name=region,
        endpoint_url=endpoint or None,
        config=Config(
            parameter_validation=False,  # logship checks CloudWatch's limits itself, per batch
            retries={"total_max_attempts": 1},
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            user_agent_extra=f"logship/{__version__}",
            max_pool_connections=16,
        ),
    )
    client._serializer = _PutLogEventsSerializer(client._serializer)
    if emf:
        client.meta.events.register("before-sign.logs.PutLogEvents", _emf_header)
    return client


def _emf_header(request: Any, **_: Any) -> None:
    request.headers["x-amzn-logs-format"] = "json/emf"

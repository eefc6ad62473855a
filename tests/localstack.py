"""A real CloudWatch Logs emulator for the tests: LocalStack, in host mode, on loopback.

With AWS_ENDPOINT_URL set (e.g. LocalStack from docker-compose.test.yml), that endpoint is used as it is.
Otherwise LocalStack runs from its own virtualenv (`.venv-localstack`, made by `.ci/setup`) on a free port
of 127.0.0.1 and is stopped at the end. `pause()`/`resume()` make an outage that keeps its state;
`stop()`/`start()` one that loses it (LocalStack keeps nothing across a restart, as after a deletion).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-localstack"
PYTHON = VENV / "bin" / "python"
# LocalStack takes any credentials; a distinctive secret lets tests check it is never logged or shown.
SECRET = "logship-secret-key-never-logged"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIALOGSHIPTEST", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-east-1"}


def localstack_problem() -> str:
    if os.environ.get("AWS_ENDPOINT_URL"):
        return ""
    if not PYTHON.exists():
        return f"needs LocalStack in {VENV} (sh .ci/setup installs it) or AWS_ENDPOINT_URL"
    return ""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalStack:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.external = os.environ.get("AWS_ENDPOINT_URL", "")
        self.port = 0 if self.external else _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return self.external or f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "logs",
            region_name=CREDENTIALS["AWS_REGION"],
            endpoint_url=self.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def start(self, timeout: float = 120.0) -> None:
        if self.external or (self.process is not None and self.process.poll() is None):
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        listen = f"127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "SERVICES": "logs",
            "EAGER_SERVICE_LOADING": "1",
            "OVERRIDE_IN_DOCKER": "0",
            "FILESYSTEM_ROOT": str(self.data_dir),
            "GATEWAY_SERVER": "hypercorn",
            "GATEWAY_LISTEN": listen,
            "LOCALSTACK_HOST": listen,
            "DNS_ADDRESS": "0",
            "DISABLE_EVENTS": "1",
            "SKIP_SSL_CERT_DOWNLOAD": "1",
        }
        log = open(self.data_dir / "localstack.log", "ab")  # noqa: SIM115 - the child writes it
        self.process = subprocess.Popen(
            [str(PYTHON), "-m", "localstack.runtime.main"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.data_dir,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"LocalStack exited; see {self.data_dir / 'localstack.log'}")
            try:
                self.client().describe_log_groups(limit=1)
                return
            except Exception:
                time.sleep(0.3)
        raise RuntimeError(f"LocalStack did not answer on {self.endpoint} within {timeout}s")

    def pause(self) -> None:
        """An outage that keeps LocalStack's state: the process stops (SIGSTOP), requests hang unanswered."""
        assert self.process is not None, "only a LocalStack started by the tests can be paused"
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Start again empty (LocalStack keeps nothing across a restart); the benches use it because
        LocalStack slows down as it fills, so each measured run starts on an emulator in the same state."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGCONT)  # a paused one would never see the SIGTERM
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


def read_back(localstack: LocalStack, group: str, stream: str, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    client = localstack.client()
    deadline = time.monotonic() + timeout
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        events = []
        token = None
        try:
            while True:
                kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
                if token:
                    kwargs["nextToken"] = token
                page = client.get_log_events(**kwargs)
                events += page["events"]
                if not page["events"] or page.get("nextForwardToken") == token:
                    break
                token = page["nextForwardToken"]
        except client.exceptions.ResourceNotFoundException:
            pass
        if len(events) >= count:
            return events
        time.sleep(0.3)
    return events

"""What the tests' real servers started as child processes (tests/fluentd_real.py, tests/rsyslog.py) share:
stopping with SIGTERM (then SIGKILL after a bound), a crash, a restart on the same address, `with`."""

from __future__ import annotations

import signal
import subprocess
import time
from typing import Self


class ServerProcess:
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, as an operator's stop: the server finishes what it does (flushes) and exits."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL, a crash: what the server held in memory is lost."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down `down_for` seconds (connections are refused), start again on the same address."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

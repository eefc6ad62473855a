"""`logs -f` of a container writing at full speed into a small rotated log (issue 16): how many of its lines
the follower printed, logship and, with --dockerd, a real dockerd (bench/dockerd.py) in the same run.

Per engine, log (json-file, local; compressed or not; max-size=50k, max-file=5) and round: a container
waits for SIGUSR1; the engine's own CLI starts `logs -f` (logship's, docker's); once the daemon has the
log open for that reader (checked in /proc: its descriptors on the current file) the container is
signalled and prints N numbered lines of 100 bytes at full speed. Two followers:

- `reads along`: its output is read as it comes (the issue's case: a follower that is there first);
- `stalled`: nothing reads its output until the container has ended (a slow consumer).

Printed: the lines the follower got (the median round's), whether every round got exactly 1..N once and
in order, and the wall time from the signal to the follower's end (median).

    .venv/bin/python bench/follow.py [--lines 20000] [--rounds 3] [--dockerd]

Needs root and busybox-static. --dockerd installs Debian's docker.io when dockerd is absent.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dockerd import docker_cli
from bench.ingest import start_dockerd
from tests.harness import LOGSHIP, Daemon

LINE_BYTES = 100
LOGS = [(driver, compress) for driver in ("json-file", "local") for compress in ("false", "true")]
FOLLOWERS = ("reads along", "stalled")
LOG_FILES = ("-json.log", "/container.log")  # json-file's current file, local's


@dataclass
class Engine:
    name: str
    cli: list[str]
    env: dict[str, str]
    daemon_pid: Callable[[], int]
    results: dict[tuple[str, str, str], list[tuple[int, bool, float]]] = field(default_factory=dict)

    def run(self, *args: str) -> str:
        done = subprocess.run([*self.cli, *args], env=self.env, capture_output=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(args)} failed: {done.stderr.decode(errors='replace')}")
        return done.stdout.decode()


def writer(lines: int) -> str:
    pad = "x" * (LINE_BYTES - 7)
    return (
        "trap 'go=1' USR1; while [ -z \"$go\" ]; do sleep 0.02; done; "
        f"awk 'BEGIN {{ for (i = 1; i <= {lines}; i++) printf \"%06d {pad}\\n\", i }}'"
    )


def readers_open(engine: Engine, container_id: str) -> int:
    """How many descriptors the engine's daemon has on the container's current log file."""
    pid = engine.daemon_pid()
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if container_id in target and target.endswith(LOG_FILES):
                count += 1
    return count


def follow_once(engine: Engine, name: str, driver: str, compress: str, how: str, lines: int) -> tuple[int, bool, float]:
    options = ["--log-opt", "max-size=50k", "--log-opt", "max-file=5", "--log-opt", f"compress={compress}"]
    container_id = engine.run(
        "run", "-d", "--name", name, "--network", "none", "--log-driver", driver, *options, "busybox", "sh", "-c",
        writer(lines),
    ).strip()  # fmt: skip
    try:
        follower = subprocess.Popen(
            [*engine.cli, "logs", "-f", name], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=engine.env
        )
        deadline = time.monotonic() + 30
        while readers_open(engine, container_id) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        output: list[bytes] = []
        reading = threading.Thread(target=lambda: output.append(follower.communicate(timeout=600)[0]))
        started = time.perf_counter()
        engine.run("kill", "-s", "USR1", name)
        if how == "stalled":
            engine.run("wait", name)
        reading.start()
        reading.join()
        seconds = time.perf_counter() - started
        got = [int(line[:6]) for line in output[0].splitlines() if line[:6].isdigit()]
        return len(got), got == list(range(1, lines + 1)), seconds
    finally:
        engine.run("rm", "-f", name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dockerd", action="store_true", help="also follow on a real dockerd (docker.io)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="logship-followbench-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        daemon = stack.enter_context(Daemon(work / "logship").started())
        engines = [Engine("logship", list(LOGSHIP), daemon.env(), lambda: daemon.process.pid)]  # type: ignore[union-attr]
        if args.dockerd:
            docker = start_dockerd(stack, work)
            cli = docker_cli()
            assert cli is not None
            engines.append(Engine("dockerd", [cli], docker.env(), lambda: docker.daemon_pids()[0]))
        for round_number in range(args.rounds):
            for engine in engines:
                for driver, compress in LOGS:
                    for how in FOLLOWERS:
                        name = f"follow-{round_number}-{driver}-{compress}-{how.replace(' ', '-')}"
                        result = follow_once(engine, name, driver, compress, how, args.lines)
                        engine.results.setdefault((driver, compress, how), []).append(result)
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(
            f"{args.lines:,} lines of {LINE_BYTES} bytes at full speed, max-size=50k, max-file=5; lines `logs -f` "
            f"printed (median of {args.rounds} rounds), exact = 1..N once and in order in every round (load {load})"
        )
        print(f"  {'log':28} {'follower':12}" + "".join(f" {engine.name:>30}" for engine in engines))
        for driver, compress in LOGS:
            for how in FOLLOWERS:
                label = f"{driver}{', compressed' if compress == 'true' else ''}"
                cells = []
                for engine in engines:
                    rounds = engine.results[(driver, compress, how)]
                    got = int(statistics.median(r[0] for r in rounds))
                    exact = "exact" if all(r[1] for r in rounds) else "LOST"
                    cells.append(f"{got:>7,} {exact:>5} {statistics.median(r[2] for r in rounds):6.2f} s")
                print(f"  {label:28} {how:12}" + "".join(f" {cell:>30}" for cell in cells))


if __name__ == "__main__":
    main()

"""Ingest benchmark: one container writes N lines of 100 bytes to stdout with the json-file driver,
next to the same producer piped into `cat > file` in the same run. Prints lines/s for both, their ratio,
the daemon's CPU seconds per million lines, its peak RSS, and the wall time of `logship logs --tail 10`
(the whole CLI process, Python start-up included) on the resulting log.

    .venv/bin/python bench/ingest.py [--lines 2000000] [--dockerd] [--rootless]

The container is created, started and waited for through the API (what `docker run -d` + `docker wait`
send), so the time is the daemon's, not that of two Python CLI start-ups (about 0.2 s each).

Needs root (real namespaces) and /bin/busybox (busybox-static). Real dockerd measured on this kind of
machine (2 cores, 2,000,000 lines of 101 bytes): 318k lines/s = 0.14x of a 2.26M lines/s baseline,
2.99 CPU-s per million lines; `docker logs --tail 10`: 25 ms. Targets (issue 9): >= 0.5x of the
baseline, <= 0.8 CPU-s per million lines.

With --dockerd, the same container also runs on a real dockerd started for the run (bench/dockerd.py;
installs Debian's docker.io when absent), json-file and `--network none`, through its API in the same way
and in the same rounds (baseline, logship, dockerd), so a busy moment of the machine hits all three; its
figures are printed side by side with logship's: lines/s, ratio to the baseline, CPU seconds per million
lines of dockerd + containerd + the container's containerd-shim (logship: its one daemon process), the
lines in its json log (counted, to show whether it logged all N) and `docker logs --tail 10`.

With --rootless, the same container also runs on a rootless daemon: an ordinary user made for the run
(useradd, with a subordinate range; removed at the end) runs the daemon, as in tests/rootless.py, in the
same rounds. Both daemons then run on the interpreter that user can run (Debian's python3 where this
virtualenv's is out of its reach), so the figures differ by rootlessness only. Target (issue 22): the
rootless daemon's lines/s within 10% of root's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from logship.client import Client
from tests.harness import Daemon
from tests.rootless import RootlessDaemon, TestUser, interpreter_note, rootless_problem, user_python

# bench.dockerd imports cpu_seconds from this module (and bench.read imports this module): those two are
# imported where they are used, once this module is whole, not here.
if TYPE_CHECKING:
    from bench.dockerd import Dockerd

LINE_BYTES = 100  # 99 characters and the newline
DOCKERD_API = "/v1.41"  # dockerd 20.10's version of the Engine API (logship's client asks for a newer one)


@dataclass
class Engine:
    """One engine's figures, side by side: medians over the rounds, and the last round's log."""

    seconds: float
    cpu_seconds: float
    lines_logged: int
    tail_seconds: float


@dataclass
class Run:
    """One container run through the API: wall time from create to the end of wait, daemon CPU meanwhile."""

    seconds: float
    cpu_seconds: float
    info: dict[str, Any]  # inspect, after the run

    def driver_stats(self, driver: str) -> dict[str, Any]:
        return next(d for d in self.info["LogStats"]["Drivers"] if d["Driver"] == driver)


def run_container(
    daemon: Daemon, name: str, command: str, log_type: str = "json-file", log_opts: dict[str, str] | None = None
) -> Run:
    """Create, start and wait for a busybox container running `command` with the given log driver.
    `wait` returns once the container's output has been flushed to its drivers."""
    assert daemon.process is not None
    client = Client(daemon.host)
    body = {
        "Image": "busybox",
        "Cmd": ["sh", "-c", command],
        "HostConfig": {"LogConfig": {"Type": log_type, "Config": log_opts or {}}},
    }
    cpu_before = cpu_seconds(daemon.process.pid)
    started = time.perf_counter()
    container_id = client.json("POST", "/containers/create", {"name": name}, body)["Id"]
    client.request("POST", f"/containers/{container_id}/start").read()
    client.json("POST", f"/containers/{container_id}/wait")
    seconds = time.perf_counter() - started
    cpu = cpu_seconds(daemon.process.pid) - cpu_before
    return Run(seconds, cpu, daemon.inspect(container_id))


def run_on_dockerd(docker: Dockerd, name: str, command: str, log_opts: dict[str, str] | None = None) -> Run:
    """`run_container` on a real dockerd: the same container and requests, json-file, no network (dockerd
    runs with --bridge=none); the CPU is that of dockerd, containerd and the container's shim. `info` is
    dockerd's inspect (no LogStats: count the lines of its LogPath)."""
    from bench.dockerd import CpuMeter

    body = {
        "Image": "busybox",
        "Cmd": ["sh", "-c", command],
        "HostConfig": {"LogConfig": {"Type": "json-file", "Config": log_opts or {}}, "NetworkMode": "none"},
    }
    with CpuMeter(docker) as meter:
        started = time.perf_counter()
        container_id = dockerd_api(docker, "POST", f"/containers/create?name={name}", body)["Id"]
        dockerd_api(docker, "POST", f"/containers/{container_id}/start")
        dockerd_api(docker, "POST", f"/containers/{container_id}/wait")
        seconds = time.perf_counter() - started
    return Run(seconds, meter.seconds, dockerd_api(docker, "GET", f"/containers/{container_id}/json"))


def dockerd_api(docker: Dockerd, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One request to dockerd's API, as `run_container` sends logship's; the decoded JSON answer, if any."""
    from bench.dockerd import UnixConnection

    connection = UnixConnection(docker.socket)
    try:
        data, headers = (json.dumps(body), {"Content-Type": "application/json"}) if body is not None else (None, {})
        connection.request(method, DOCKERD_API + path, data, headers)
        response = connection.getresponse()
        raw = response.read()  # for `wait`: once the container exited and its output was logged
        if response.status >= 300:
            raise RuntimeError(f"dockerd {method} {path}: {response.status} {raw!r}")
        return json.loads(raw) if raw else None
    finally:
        connection.close()


def lines_in(path: Path) -> int:
    count = 0
    with open(path, "rb") as log:
        while block := log.read(1 << 20):
            count += block.count(b"\n")
    return count


def producer(lines: int) -> str:
    """The same busybox pipeline inside the container and for the baseline."""
    return f"yes {'x' * (LINE_BYTES - 1)} | head -n {lines}"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime, all threads


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_dockerd(stack: contextlib.ExitStack, work: Path) -> Dockerd:
    """A real dockerd for this run, with the busybox image, stopped when `stack` closes; installs docker.io
    when absent (only --dockerd runs get here)."""
    from bench.dockerd import Dockerd

    docker = stack.enter_context(Dockerd(work / "dockerd", install_if_missing=True))
    docker.import_busybox()
    return docker


def baseline(lines: int, work: Path) -> float:
    target = work / "baseline.out"
    started = time.perf_counter()
    subprocess.run(f"/bin/busybox sh -c '{producer(lines)}' | cat > {target}", shell=True, check=True)
    elapsed = time.perf_counter() - started
    assert target.stat().st_size == lines * LINE_BYTES
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="baseline and logship runs, alternated (medians)")
    parser.add_argument("--tail-runs", type=int, default=10)
    parser.add_argument("--dockerd", action="store_true", help="also run the container on a real dockerd (docker.io)")
    parser.add_argument("--rootless", action="store_true", help="also run it on a rootless daemon (a user made here)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="logship-bench-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        rootless = start_rootless(stack) if args.rootless else None
        root_daemon = Daemon(work / "logship") if rootless is None else SameInterpreter(work / "logship", rootless.user)
        daemon = stack.enter_context(root_daemon.started())
        docker = start_dockerd(stack, work) if args.dockerd else None
        base_times: list[float] = []
        runs: list[Run] = []
        rootless_runs: list[Run] = []
        docker_runs: list[Run] = []
        docker_lines: list[int] = []  # in dockerd's json log, each round
        for index in range(args.rounds):  # alternated, so a busy moment of the machine hits all
            base_times.append(baseline(args.lines, work))
            runs.append(run_container(daemon, f"ingest-{index}", producer(args.lines)))
            if rootless is not None:
                rootless_runs.append(run_container(rootless, f"ingest-{index}", producer(args.lines)))
            if docker is not None:
                docker_runs.append(run_on_dockerd(docker, f"ingest-{index}", producer(args.lines)))
                docker_lines.append(lines_in(Path(docker_runs[-1].info["LogPath"])))
        assert daemon.process is not None
        rss = peak_rss_mib(daemon.process.pid)
        run = runs[-1]
        written = run.driver_stats("json-file")["LinesWritten"]
        log_size = Path(run.info["LogPath"]).stat().st_size

        rootless_figures = rootless_summary(rootless, rootless_runs, args.lines) if rootless is not None else []
        tails = [([*daemon.logship, "logs", "--tail", "10", run.info["Name"].lstrip("/")], daemon.env())]
        if docker is not None:
            from bench.dockerd import docker_cli

            cli, name = docker_cli(), docker_runs[-1].info["Name"].lstrip("/")
            assert cli is not None  # dockerd started, so the CLI was found
            tails.append(([cli, "logs", "--tail", "10", name], docker.env()))
        tail_times: list[list[float]] = [[] for _ in tails]  # logship's, then dockerd's
        for _ in range(args.tail_runs):
            for times, (command, env) in zip(tail_times, tails, strict=True):  # alternated, as the rounds
                times.append(whole_cli(command, env))
        tail_s = statistics.median(tail_times[0])

    base_s = statistics.median(base_times)
    seconds = statistics.median(r.seconds for r in runs)
    base_rate = args.lines / base_s
    rate = args.lines / seconds
    ratios = " ".join(f"{b / r.seconds:.2f}" for b, r in zip(base_times, runs, strict=True))
    cpu_per_million = statistics.median(r.cpu_seconds for r in runs) / args.lines * 1e6
    ours = Engine(seconds, statistics.median(r.cpu_seconds for r in runs), written, tail_s)
    theirs = None
    if docker_runs:
        theirs = Engine(
            statistics.median(r.seconds for r in docker_runs),
            statistics.median(r.cpu_seconds for r in docker_runs),
            docker_lines[-1],
            statistics.median(tail_times[1]),
        )
    # dockerd's figures where they were measured in this run, else those measured for issue 9.
    docker_ratio = f"measured: {base_s / theirs.seconds:.2f}x" if theirs else "here: 0.14x"
    docker_cpu = f"measured: {theirs.cpu_seconds / args.lines * 1e6:.2f}" if theirs else "here: 2.99"
    docker_tail = f"measured: {theirs.tail_seconds * 1e3:.0f} ms" if theirs else "here: 25 ms"
    print(f"lines                        {args.lines:,} x {LINE_BYTES} bytes, medians of {args.rounds} rounds")
    print(f"baseline (producer | cat)    {base_rate / 1e3:10.0f}k lines/s   ({base_s:.2f} s)")
    print(f"logship json-file            {rate / 1e3:10.0f}k lines/s   ({seconds:.2f} s, API create to wait)")
    print(f"ratio logship/baseline       {rate / base_rate:10.2f}x         (dockerd {docker_ratio}; target >= 0.5x)")
    print(f"  ratio in each round        {ratios}")
    print(f"daemon CPU per 1M lines      {cpu_per_million:10.2f} CPU-s   (dockerd {docker_cpu}; target <= 0.8)")
    print(f"daemon peak RSS              {rss:10.1f} MiB")
    print(f"lines in the json-file log   {written:,} ({log_size / 1e6:.0f} MB, last round)")
    print(
        f"logs --tail 10, whole CLI    {tail_s * 1e3:10.0f} ms median of {args.tail_runs}"
        f"   (docker logs --tail 10 {docker_tail})"
    )
    for line in rootless_figures:
        print(line)
    if rootless_runs:
        rootless_rate = args.lines / statistics.median(r.seconds for r in rootless_runs)
        each = " ".join(f"{a.seconds / b.seconds:.2f}" for a, b in zip(runs, rootless_runs, strict=True))
        print(
            f"rootless/root                {rootless_rate / rate:10.2f}x         "
            f"(target: within 10%, >= 0.90x; in each round {each})"
        )
    if theirs is not None:
        report_dockerd(theirs, ours, args.lines, base_times, docker_runs, docker_lines)


class SameInterpreter(Daemon):
    """The root daemon, on the interpreter the rootless user runs (see tests/rootless.py), for a fair match."""

    def __init__(self, root: Path, user: TestUser) -> None:
        super().__init__(root)
        self.python, self.python_path = user_python(user.uid)

    @property
    def logship(self) -> list[str]:
        return [self.python, "-m", "logship"]

    def env(self) -> dict[str, str]:
        return {**super().env(), **({"PYTHONPATH": self.python_path} if self.python_path else {})}


def start_rootless(stack: contextlib.ExitStack) -> RootlessDaemon:
    """A user made for this run (removed when `stack` closes) and its rootless daemon with busybox."""
    problem = rootless_problem()
    if problem:
        raise SystemExit(f"bench/ingest.py --rootless: cannot run a rootless daemon here: {problem}")
    user = TestUser.create(subordinate_range=True)
    stack.callback(user.delete)
    print(f"rootless: user {user.name} (uid {user.uid}); {interpreter_note(user)}; root's daemon runs the same")
    daemon = RootlessDaemon(user)
    stack.enter_context(daemon.started())
    return daemon


def rootless_summary(daemon: RootlessDaemon, runs: list[Run], lines: int) -> list[str]:
    """The rootless daemon's lines, printed under root's once the run is over."""
    assert daemon.process is not None
    seconds = statistics.median(r.seconds for r in runs)
    written = runs[-1].driver_stats("json-file")["LinesWritten"]
    cpu = statistics.median(r.cpu_seconds for r in runs) / lines * 1e6
    return [
        f"rootless json-file           {lines / seconds / 1e3:10.0f}k lines/s   "
        f"({seconds:.2f} s, as {daemon.user.name})",
        f"  rootless CPU per 1M lines  {cpu:10.2f} CPU-s   peak RSS {peak_rss_mib(daemon.process.pid):.1f} MiB; "
        f"{written:,} lines in its log (last round)",
    ]


def whole_cli(command: list[str], env: dict[str, str]) -> float:
    """Wall time of the whole CLI process, start-up included, output discarded."""
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def report_dockerd(
    theirs: Engine, ours: Engine, lines: int, base_times: list[float], docker_runs: list[Run], docker_lines: list[int]
) -> None:
    from bench.dockerd import print_side_by_side

    base_s = statistics.median(base_times)
    print_side_by_side(
        theirs,
        ours,
        [
            ("k lines/s", lambda e: lines / e.seconds / 1e3, ".0f", "higher"),
            ("ratio to the baseline", lambda e: base_s / e.seconds, ".2f", "higher"),
            ("seconds, API create to wait", lambda e: e.seconds, ".2f", "lower"),
            ("CPU-s per 1M lines", lambda e: e.cpu_seconds / lines * 1e6, ".2f", "lower"),
            ("lines in the json-file log", lambda e: e.lines_logged, ",.0f", ""),
            ("logs --tail 10, whole CLI, ms", lambda e: e.tail_seconds * 1e3, ".0f", "lower"),
        ],
    )
    ratios = " ".join(f"{b / r.seconds:.2f}" for b, r in zip(base_times, docker_runs, strict=True))
    complete = "all" if all(count == lines for count in docker_lines) else "NOT ALL"
    print(f"  dockerd ratio to the baseline in each round: {ratios}")
    print(
        f"  lines in dockerd's json log, each round: {' '.join(f'{n:,}' for n in docker_lines)} ({complete} {lines:,})"
    )
    print("  (CPU: dockerd + containerd + the container's containerd-shim, next to logship's daemon process)")
    speed, cpu = theirs.seconds / ours.seconds, ours.cpu_seconds / theirs.cpu_seconds
    print(f"logship/dockerd: {speed:.2f}x the lines/s (target >= 3.5x), {cpu:.2f}x the CPU per 1M lines")


if __name__ == "__main__":
    main()

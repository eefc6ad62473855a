"""CLI start-up benchmark (issue 9): the whole-process wall time of `logship logs --tail 10`,
`logship logs --since T` (T: the time of the 10th line from the end) and `logship version`, next to
`python -c pass` in the same virtualenv (the floor no Python CLI can go under) and, when dockerd is
installed, `docker logs --tail 10` against a real dockerd started for the run.

Every command runs once per round, interleaved with the others, so a busy moment of this shared machine
hits all of them alike; the figures are medians over the rounds: wall time, and the CPU time (user +
system) the process used, which a loaded machine inflates much less. `above floor` is what logship adds
to a bare Python start-up: its imports, the requests and the output.

    .venv/bin/python bench/cli.py [--runs 31] [--lines 1000] [--no-dockerd] [--compare-tree DIR]

--compare-tree DIR also times `python -m logship logs --tail 10` and `... version` with the `logship`
package of another checkout (for example a `git worktree` of an earlier commit) first on PYTHONPATH, in
the same rounds: before and after. (Only the package: the other checkout's install mode is not reproduced.)

Needs root (real namespaces) and busybox-static, like the other benches. Issue 9's target: `logs --tail 10`
at most 4x dockerd's (25 ms on this kind of machine), i.e. <= 100 ms. See `python -X importtime -m logship
logs --tail 10 NAME` for where the rest goes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import dockerd
from bench.ingest import producer, run_container
from tests.harness import Daemon

NAME = "clibench"
VENV_BIN = Path(sys.executable).parent
LOGSHIP_SCRIPT = str(VENV_BIN / "logship")  # the console script users run
TARGET_MS = 100.0
FLOOR = "python -c pass (floor)"
TAIL = "logship logs --tail 10"
SINCE = "logship logs --since T"
MODULE_TAIL = "python -m logship logs --tail 10"
DOCKER_TAIL = "docker logs --tail 10"


@dataclass
class Sample:
    wall: float  # seconds, start to exit
    cpu: float  # user + system seconds of the process: what it costs, however busy the machine is


def time_once(command: list[str], env: dict[str, str], cwd: Path) -> Sample:
    """One whole process, output discarded; a failure stops the bench (a broken command is fast). `cwd`
    matters: `python -m`/`-c` look for modules in the working directory before PYTHONPATH."""
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {errors.read().decode()}")
    return Sample(elapsed, usage.ru_utime + usage.ru_stime)


def since_time(env: dict[str, str], cwd: Path, lines: int) -> str:
    """The RFC 3339 time of the `lines`th line from the end of NAME's log: a `--since` that shows the last lines."""
    command = [LOGSHIP_SCRIPT, "logs", "-t", "--tail", str(lines), NAME]
    stamped = subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=True).stdout
    return stamped.split(b" ", 1)[0].decode()


@contextlib.contextmanager
def docker_with_log(root: Path, lines: int) -> Iterator[dockerd.Dockerd]:
    """A real dockerd whose `NAME` container wrote the same log as logship's."""
    with dockerd.Dockerd(root) as docker:
        docker.import_busybox()
        docker.cli("run", "--name", NAME, "busybox", "sh", "-c", producer(lines))
        yield docker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=31, help="rounds; each runs every command once (medians)")
    parser.add_argument("--lines", type=int, default=1000, help="lines in the container's log")
    parser.add_argument("--no-dockerd", action="store_true", help="skip `docker logs` even if dockerd is installed")
    parser.add_argument("--compare-tree", type=Path, help="another checkout whose CLI to time alongside")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="logship-clibench-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        daemon = stack.enter_context(Daemon(work / "logship").started())
        run_container(daemon, NAME, producer(args.lines))
        env = daemon.env()
        # As users run it: with compiled bytecode cached (a session with PYTHONDONTWRITEBYTECODE=1 would
        # otherwise compile logship's modules in every run; the warm-up run below writes the cache).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        module_tail = [sys.executable, "-m", "logship", "logs", "--tail", "10", NAME]
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            FLOOR: ([sys.executable, "-c", "pass"], env),
            TAIL: ([LOGSHIP_SCRIPT, "logs", "--tail", "10", NAME], env),
            SINCE: ([LOGSHIP_SCRIPT, "logs", "--since", since_time(env, work, 10), NAME], env),
            "logship version": ([LOGSHIP_SCRIPT, "version"], env),
            MODULE_TAIL: (module_tail, env),
        }
        if args.compare_tree is not None:
            other = {**env, "PYTHONPATH": str(args.compare_tree.resolve())}
            # `python -m logship`: the other checkout's own entry point (the console script names this one's).
            commands[f"{MODULE_TAIL} (compare tree)"] = (module_tail, other)
            commands["python -m logship version (compare tree)"] = ([sys.executable, "-m", "logship", "version"], other)
        if not args.no_dockerd and dockerd.available():
            docker = stack.enter_context(docker_with_log(work / "docker", args.lines))
            cli = dockerd.docker_cli()
            assert cli is not None
            commands[DOCKER_TAIL] = ([cli, "logs", "--tail", "10", NAME], docker.env())

        samples: dict[str, list[Sample]] = {label: [] for label in commands}
        for command, command_env in commands.values():  # warm the page cache (and bytecode cache) first
            time_once(command, command_env, work)
        for _ in range(args.runs):
            for label, (command, command_env) in commands.items():
                samples[label].append(time_once(command, command_env, work))

    wall = {label: statistics.median(s.wall for s in runs) * 1e3 for label, runs in samples.items()}
    cpu = {label: statistics.median(s.cpu for s in runs) * 1e3 for label, runs in samples.items()}
    floor = wall[FLOOR]
    print(f"whole process, medians of {args.runs} interleaved rounds ({os.cpu_count()} CPUs, load {load()})")
    print(f"  {'':50} {'wall':>9} {'CPU':>9}   wall above floor")
    for label in samples:
        above = "" if label in (FLOOR, DOCKER_TAIL) else f"   {wall[label] - floor:6.1f} ms"
        print(f"  {label:50} {wall[label]:6.1f} ms {cpu[label]:6.1f} ms{above}")
    tail = wall[TAIL]
    if DOCKER_TAIL in wall:
        print(f"  logs --tail 10 logship/dockerd                    {tail / wall[DOCKER_TAIL]:6.2f}x    (target <= 4x)")
    verdict = "meets" if tail <= TARGET_MS else "misses"
    print(f"  target: logs --tail 10 <= {TARGET_MS:.0f} ms wall: {verdict}")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    main()

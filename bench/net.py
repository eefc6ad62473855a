"""Network benchmark (issue 23): connection rate and throughput between two containers on a user-defined
network, and from the host through a published port, each beside the same client and server talking over
the host's loopback, measured in the same run; and what joining the default bridge adds to a start.

    .venv/bin/python bench/net.py [--rounds 3] [--seconds 3] [--mib 1024]

The client and server are bench/netbench.c, built static and bind-mounted into busybox containers, so the
very same program runs on the host and in the containers. Rows, one of each per round, interleaved so that
a busy moment of this shared machine hits all alike; the median of the rounds is printed:
- loopback: netbench serve and netbench on the host, over 127.0.0.1 (the baseline);
- in a container (its lo): netbench serve and netbench in one container, over its own loopback (what the
  container's confinement costs, without the bridge);
- container -> container: both in containers on one logship network (veths and a bridge in logship's
  namespace, netavark's rules);
- host -> published port: the client on the host, to -p 127.0.0.1:PORT:9000 (pasta splices the connection
  into logship's namespace, netavark's DNAT takes it to the container).
No dockerd: its bridge networking would put addresses and rules on the host.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.harness import LOGSHIP, Daemon
from tests.hostnet import free_port

SOURCE = Path(__file__).with_name("netbench.c")
PORT = 9000  # the server's port inside its container


def build(directory: Path) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise SystemExit("bench/net.py needs gcc (and libc6-dev's static libc) to build bench/netbench.c")
    binary = directory / "netbench"
    subprocess.run([gcc, "-static", "-O2", "-o", str(binary), str(SOURCE)], check=True)
    return binary


def wait_listening(connect: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not connect():
        if time.monotonic() > deadline:
            raise RuntimeError("the benchmark's server did not start listening")
        time.sleep(0.05)


def host_answers(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    return check


def parse(output: str) -> tuple[float, float]:
    amount, seconds = output.split()
    return float(amount), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="how long each connection-rate run lasts")
    parser.add_argument("--mib", type=int, default=1024, help="how much each throughput run sends")
    parser.add_argument("--starts", type=int, default=20, help="run --rm busybox true, per network, per round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="logship-net-") as tmp:
        root = Path(tmp)
        binary = build(root)
        with Daemon(root / "logship", bridge=True).started() as daemon:
            results = measure(daemon, binary, args)
    report(results, args)


def measure(daemon: Daemon, binary: Path, args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    mount = ["-v", f"{binary}:/netbench:ro"]
    loopback_port, published_port = free_port(), free_port()
    host_server = subprocess.Popen([str(binary), "serve", str(loopback_port)])
    try:
        wait_listening(host_answers(loopback_port))
        daemon.ok("network", "create", "bench")
        server = ["--network", "bench", "-p", f"127.0.0.1:{published_port}:{PORT}", *mount]
        daemon.ok("run", "-d", "--name", "server", *server, "busybox", "/netbench", "serve", str(PORT))
        wait_listening(host_answers(published_port))
        address = daemon.inspect("server")["NetworkSettings"]["Networks"]["bench"]["IPAddress"]
        # The client's container also serves on its own loopback: the same two programs inside one container,
        # which tells what the container costs (its confinement) apart from what the bridge path costs.
        inside = f"/netbench serve {PORT} & exec sleep 1000000"
        daemon.ok("run", "-d", "--name", "client", "--network", "bench", *mount, "busybox", "sh", "-c", inside)

        def on_host(*argv: str) -> tuple[float, float]:
            return parse(subprocess.run([str(binary), *argv], check=True, capture_output=True, text=True).stdout)

        def in_container(*argv: str) -> tuple[float, float]:
            return parse(daemon.ok("exec", "client", "/netbench", *argv))

        wait_listening(
            lambda: daemon.cli("exec", "client", "/netbench", "rate", "127.0.0.1", str(PORT), "0.1").code == 0
        )
        paths: dict[str, Callable[..., tuple[float, float]]] = {
            "loopback (host -> host)": lambda *a: on_host(a[0], "127.0.0.1", str(loopback_port), a[1]),
            "in a container (its lo)": lambda *a: in_container(a[0], "127.0.0.1", str(PORT), a[1]),
            "container -> container": lambda *a: in_container(a[0], address, str(PORT), a[1]),
            "host -> published port": lambda *a: on_host(a[0], "127.0.0.1", str(published_port), a[1]),
        }
        results: dict[str, dict[str, list[float]]] = {label: {"rate": [], "mbps": []} for label in paths}
        starts: dict[str, list[float]] = {"--network none": [], "default bridge": []}
        for run in paths.values():  # warm-up
            run("rate", "0.5")
            run("stream", "64")
        for _ in range(args.rounds):
            for label, run in paths.items():
                count, seconds = run("rate", str(args.seconds))
                results[label]["rate"].append(count / seconds)
                sent, seconds = run("stream", str(args.mib))
                results[label]["mbps"].append(sent / seconds / 1e6)
            for label, flags in (("--network none", ["--network", "none"]), ("default bridge", [])):
                for _ in range(args.starts):
                    started = time.perf_counter()
                    subprocess.run(
                        [*LOGSHIP, "run", "--rm", *flags, "busybox", "true"],
                        env=daemon.env(),
                        check=True,
                        stdout=subprocess.DEVNULL,
                    )
                    starts[label].append(time.perf_counter() - started)
        results["start"] = starts
        return results
    finally:
        host_server.terminate()
        host_server.wait()
        daemon.cli("rm", "-f", "server", "client")


def report(results: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> None:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"netbench, median of {args.rounds} interleaved rounds (load average {load})")
    print(f"  {'':28}{'connections/s':>15}{'vs loopback':>13}{'MB/s':>10}{'vs loopback':>13}")
    baseline = results["loopback (host -> host)"]
    base_rate, base_mbps = statistics.median(baseline["rate"]), statistics.median(baseline["mbps"])
    for label, figures in results.items():
        if label == "start":
            continue
        rate, mbps = statistics.median(figures["rate"]), statistics.median(figures["mbps"])
        print(f"  {label:28}{rate:15.0f}{rate / base_rate:12.2f}x{mbps:10.0f}{mbps / base_mbps:12.2f}x")
    starts = results["start"]
    none, bridge = (statistics.median(starts[key]) * 1000 for key in ("--network none", "default bridge"))
    print(f"run --rm busybox true, median of {len(starts['default bridge'])} runs each (logship's CLI)")
    print(f"  --network none {none:8.1f} ms   default bridge {bridge:8.1f} ms   (+{bridge - none:.1f} ms)")


if __name__ == "__main__":
    main()

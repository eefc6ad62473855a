"""Pull benchmark: two images pulled from a local registry, and the disk they use.

    .venv/bin/python bench/pull.py [--mib 100] [--layers 5] [--runs 3] [--dockerd]

Builds image A of `--layers` layers (`--mib` MiB in all: a base layer of half the size, the rest split
evenly; half of each layer's bytes random, half repetitive text, so gzip has something to do), and
image B: A's base layer plus one layer of its own. Both are loaded into a logship daemon and pushed to
Debian's docker-registry on 127.0.0.1 (plain HTTP). Then, for each run, a logship daemon with an empty
data root pulls A, then B, and the same pulls go to a real dockerd (bench/dockerd.py, overlay2, started
with --insecure-registry for the registry) on an empty data root, in the same run.

Printed: the time of each pull (the CLI command, start to end) and the disk the data root holds after
both (du: hard-linked files once), median of the runs, side by side.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dockerd import Dockerd, print_side_by_side
from tests.harness import Daemon
from tests.registry import Registry
from tests.tarballs import file, tar_of
from tests.test_image_load import SavedImage, docker_save, image_config


@dataclass
class Figures:
    pull_a_s: float
    pull_b_s: float
    disk_mib: float


def layer(seed: int, size: int) -> bytes:
    """A tar of 8 files, `size` bytes in all: half random, half repeated text."""
    rng = random.Random(seed)
    per_file = size // 8
    files = []
    for number in range(8):
        noise = rng.randbytes(per_file // 2)
        text = (f"line {seed} {number} of some log-like text\n".encode() * (per_file // 40 + 1))[
            : per_file - len(noise)
        ]
        files.append(file(f"layer{seed}/file{number}.bin", noise + text))
    return tar_of(*files)


def build_images(mib: int, layers: int) -> tuple[list[bytes], list[bytes]]:
    total = mib << 20
    base = layer(0, total // 2)
    rest = [layer(seed, (total - total // 2) // (layers - 1)) for seed in range(1, layers)]
    return [base, *rest], [base, layer(99, (total - total // 2) // (layers - 1))]


def disk_mib(path: Path) -> float:
    out = subprocess.run(["du", "-s", "--block-size=1", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / (1 << 20)


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=1800)
    return time.perf_counter() - started


def push_images(root: Path, registry: Registry, images: dict[str, list[bytes]]) -> None:
    daemon = Daemon(root / "pusher")
    daemon.start()
    try:
        for name, layers in images.items():
            saved = SavedImage(image_config(layers), layers, [f"{registry.host}/{name}:1"])
            archive = root / f"{name}.tar"
            archive.write_bytes(docker_save(saved))
            daemon.ok("load", "-i", str(archive), timeout=600)
            archive.unlink()
            daemon.ok("push", f"{registry.host}/{name}:1", timeout=600)
    finally:
        daemon.stop()


def logship_run(root: Path, registry: Registry) -> Figures:
    daemon = Daemon(root)
    daemon.start()
    try:
        env = daemon.env()
        logship = [sys.executable, "-m", "logship"]
        a = timed([*logship, "pull", f"{registry.host}/a:1"], env)
        b = timed([*logship, "pull", f"{registry.host}/b:1"], env)
        return Figures(a, b, disk_mib(daemon.data_root / "images"))
    finally:
        daemon.stop()


def dockerd_run(root: Path, registry: Registry) -> Figures:
    with Dockerd(root, install_if_missing=True, extra_args=["--insecure-registry", registry.host]) as docker:
        before = disk_mib(docker.data_root)
        a = timed_docker(docker, "pull", f"{registry.host}/a:1")
        b = timed_docker(docker, "pull", f"{registry.host}/b:1")
        return Figures(a, b, disk_mib(docker.data_root) - before)


def timed_docker(docker: Dockerd, *args: str) -> float:
    started = time.perf_counter()
    docker.cli(*args, timeout=1800)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dockerd", action="store_true", help="pull the same images with a real dockerd")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pull-") as tmp:
        root = Path(tmp)
        a, b = build_images(args.mib, args.layers)
        print(f"image a: {len(a)} layers, {sum(map(len, a)) / (1 << 20):.1f} MiB; image b: a's base + 1 layer, "
              f"{sum(map(len, b)) / (1 << 20):.1f} MiB")  # fmt: skip
        with Registry(root / "registry", "plain") as registry:
            push_images(root, registry, {"a": a, "b": b})
            del a, b
            ours, theirs = [], []
            for run in range(args.runs):
                ours.append(logship_run(root / f"logship-{run}", registry))
                if args.dockerd:
                    theirs.append(dockerd_run(root / f"dockerd-{run}", registry))
        median = Figures(
            *(statistics.median(getattr(f, key) for f in ours) for key in ("pull_a_s", "pull_b_s", "disk_mib"))
        )
        print(f"logship, median of {args.runs}: pull a {median.pull_a_s:.2f} s, pull b {median.pull_b_s:.2f} s, "
              f"disk {median.disk_mib:.1f} MiB")  # fmt: skip
        if theirs:
            docker = Figures(
                *(statistics.median(getattr(f, key) for f in theirs) for key in ("pull_a_s", "pull_b_s", "disk_mib"))
            )
            print_side_by_side(
                docker,
                median,
                [
                    ("pull a (s)", lambda f: f.pull_a_s, ".2f", "lower"),
                    ("pull b, sharing a's base (s)", lambda f: f.pull_b_s, ".2f", "lower"),
                    ("disk used by a and b (MiB)", lambda f: f.disk_mib, ".1f", "lower"),
                ],
            )


if __name__ == "__main__":
    os.environ.setdefault("LOGSHIP_NO_AUTOSTART", "1")
    main()

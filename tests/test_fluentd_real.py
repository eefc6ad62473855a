"""Which fluentd the fluentd tests use: the real Fluentd of the peers folder when it can run, else the
in-process receiver, and the choice is said with its reason (a user's clone has no ../shared)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fluentd_real import REPO_ROOT


def kind_with_peers(peers: str) -> str:
    code = "from tests.fluentd_real import fluentd_kind; print(fluentd_kind())"
    env = {"LOGSHIP_PEERS": peers, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_without_the_peers_folder_the_in_process_receiver_is_used_and_the_reason_given(tmp_path: Path) -> None:
    kind = kind_with_peers(str(tmp_path / "nowhere"))
    assert kind.startswith("in-process receiver tests/fluentd_receiver.py (no real Fluentd: ")
    assert f"{tmp_path / 'nowhere' / 'fluentd-1.14.4'} is absent (set LOGSHIP_PEERS" in kind

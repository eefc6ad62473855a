"""Restart policies: Docker's `--restart no|on-failure[:N]|always|unless-stopped`.

This module holds the rules only (plain functions, no tasks, no I/O), so they read like Docker's
documentation and are tested on their own; `ContainerManager` applies them at each exit and when the
daemon starts.

- Checking: `HostConfig.RestartPolicy` is validated at create with Docker's error texts, and the
  `--restart` flag is parsed as the docker CLI parses it.
- Deciding: after an exit the container is restarted when its policy says so and nobody stopped it
  (`stop`, `kill` with SIGKILL or its stop signal, `rm -f`, daemon shutdown). When the daemon starts, a
  stopped container is started again by `always`, by `unless-stopped` unless the user stopped it, and by
  `on-failure` when its last run failed and the user did not stop it.
- Pacing: Docker's back-off. The first restart waits 100 ms, each next one twice as long, at most a
  minute; a run that lasted 10 s or more starts the sequence over. A crash loop therefore costs a few
  restarts a minute, never a tight loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from logship.errors import InvalidParameter

NO = "no"
ALWAYS = "always"
ON_FAILURE = "on-failure"
UNLESS_STOPPED = "unless-stopped"
POLICIES = (NO, ALWAYS, ON_FAILURE, UNLESS_STOPPED)

FIRST_DELAY_S = 0.1
MAX_DELAY_S = 60.0
RESET_AFTER_RUN_S = 10.0


@dataclass(frozen=True)
class Policy:
    name: str = NO
    maximum_retry_count: int = 0  # on-failure only; 0 means no limit

    @classmethod
    def of(cls, host_config: dict[str, Any]) -> Policy:
        """The policy a created container carries (already validated by `normalize`)."""
        raw = host_config.get("RestartPolicy") or {}
        return cls(raw.get("Name") or NO, int(raw.get("MaximumRetryCount") or 0))

    def to_api(self) -> dict[str, Any]:
        return {"Name": self.name, "MaximumRetryCount": self.maximum_retry_count}


def normalize(raw: Any) -> Policy:
    """`HostConfig.RestartPolicy` of a create request, checked with dockerd's messages.

    An absent policy or an empty name means "no" (older clients send `{"Name": ""}`, with any count).
    """
    if raw is None:
        return Policy()
    if not isinstance(raw, dict):
        raise InvalidParameter(
            f'invalid HostConfig.RestartPolicy: expected {{"Name": ..., "MaximumRetryCount": ...}}, got {raw!r}'
        )
    name = raw.get("Name") or ""
    count = raw.get("MaximumRetryCount") or 0
    if not isinstance(name, str):
        raise InvalidParameter(f"invalid HostConfig.RestartPolicy.Name: expected a string, got {name!r}")
    if not isinstance(count, int) or isinstance(count, bool):
        raise InvalidParameter(
            f"invalid HostConfig.RestartPolicy.MaximumRetryCount: expected an integer, got {count!r}"
        )
    if name == "":
        return Policy()
    if name not in POLICIES:
        raise InvalidParameter(
            f"invalid restart policy: unknown policy '{name}'; "
            "use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        )
    if name == ON_FAILURE:
        if count < 0:
            raise InvalidParameter("invalid restart policy: maximum retry count cannot be negative")
    elif count != 0:
        message = "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        raise InvalidParameter(message + (" and cannot be negative" if count < 0 else ""))
    return Policy(name, count)


def parse_flag(text: str) -> dict[str, Any]:
    """`--restart NAME[:COUNT]` as the docker CLI turns it into a request body (the daemon checks the rest).

    Raises ValueError with the docker CLI's message when the text cannot be split.
    """
    name, colon, count_text = text.partition(":")
    if colon and not name:
        raise ValueError("invalid restart policy format: no policy provided before colon")
    count = 0
    if count_text:
        try:
            count = int(count_text)
        except ValueError:
            raise ValueError("invalid restart policy format: maximum retry count must be an integer") from None
    return {"Name": name, "MaximumRetryCount": count}


def restarts_after_exit(policy: Policy, exit_code: int, restart_count: int, manually_stopped: bool) -> bool:
    """Whether a run that just ended, and that nobody is stopping, is followed by another one.

    `restart_count` counts the restarts since the user last started the container, which is what
    on-failure's maximum limits.
    """
    if policy.name == ALWAYS:
        return True
    if policy.name == UNLESS_STOPPED:
        return not manually_stopped
    if policy.name == ON_FAILURE:
        limit = policy.maximum_retry_count
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


def restarts_at_daemon_start(
    policy: Policy, exit_code: int, restart_count: int, manually_stopped: bool, ever_started: bool
) -> bool:
    """Whether the daemon starts a stopped container again when it starts.

    `always` does even after a `stop` (Docker documents this); `unless-stopped` remembers the stop. For
    `on-failure` dockerd looks only at the exit code, so a container the user stopped (exit 137 or 143)
    would come back; logship honours the stop there too.
    """
    if not ever_started:
        return False
    if policy.name == ON_FAILURE and manually_stopped:
        return False
    return restarts_after_exit(policy, exit_code, restart_count, manually_stopped)


def next_delay(previous_s: float, ran_for_s: float) -> float:
    """The back-off before the next restart, given the previous one (0 for none) and how long the run lasted."""
    if ran_for_s >= RESET_AFTER_RUN_S or previous_s <= 0:
        return FIRST_DELAY_S
    return min(previous_s * 2, MAX_DELAY_S)

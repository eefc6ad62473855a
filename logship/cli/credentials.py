"""The CLI's registry credentials, kept as the docker CLI keeps them: a `config.json` with
`{"auths": {"<registry>": {"auth": base64("user:password")}}}`, in `$LOGSHIP_CONFIG` or `~/.logship`
(docker's `$DOCKER_CONFIG` and `~/.docker`), readable by its owner only. The daemon never stores them:
each pull or push sends them in the `X-Registry-Auth` header, as the docker CLI does.

Docker Hub's key is `https://index.docker.io/v1/`, as in Docker's file, so one file can serve both.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CONFIG_ENV = "LOGSHIP_CONFIG"
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io", DOCKER_HUB_KEY)


class CredentialsError(Exception):
    """The credentials file cannot be read or written; the message names it."""


def config_file() -> Path:
    folder = os.environ.get(CONFIG_ENV) or os.path.join(os.path.expanduser("~"), ".logship")
    return Path(folder) / "config.json"


def registry_key(registry: str) -> str:
    """The key a registry's credentials live under: "127.0.0.1:5000", or Docker Hub's URL."""
    if not registry or registry in _HUB_NAMES:
        return DOCKER_HUB_KEY
    host = urlsplit(registry if "://" in registry else f"//{registry}").netloc
    return DOCKER_HUB_KEY if host in _HUB_NAMES else (host or registry)


def load() -> dict[str, Any]:
    path = config_file()
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise CredentialsError(f"cannot read the credentials file {path}: {err}; fix or remove it") from None
    if not isinstance(document, dict):
        raise CredentialsError(f"the credentials file {path} must hold a JSON object; fix or remove it")
    return document


def lookup(registry: str) -> tuple[str, str] | None:
    """(username, password) stored for `registry`, or None."""
    entry = (load().get("auths") or {}).get(registry_key(registry))
    if not isinstance(entry, dict) or not entry.get("auth"):
        return None
    try:
        username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    except ValueError:
        raise CredentialsError(
            f"the auth entry for {registry_key(registry)} in {config_file()} is not base64"
        ) from None
    return username, password


def store(registry: str, username: str, password: str) -> Path:
    document = load()
    auths = document.setdefault("auths", {})
    auths[registry_key(registry)] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    return _write(document)


def remove(registry: str) -> bool:
    document = load()
    auths = document.get("auths") or {}
    if registry_key(registry) not in auths:
        return False
    del auths[registry_key(registry)]
    _write(document)
    return True


def registry_auth_header(registry: str) -> str:
    """The X-Registry-Auth value for `registry`: base64url JSON, as the docker CLI sends it ("e30=", an
    empty object, when nothing is stored)."""
    found = lookup(registry)
    config = {} if found is None else {"username": found[0], "password": found[1], "serveraddress": registry}
    return base64.urlsafe_b64encode(json.dumps(config).encode()).decode()


def _write(document: dict[str, Any]) -> Path:
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(document, indent="\t") + "\n")
        os.replace(temporary, path)
    except OSError as err:
        raise CredentialsError(f"cannot write the credentials file {path}: {err.strerror or err}") from None
    return path

"""Registry credentials and the authentication flows of the distribution spec.

The docker CLI and docker-py send credentials to the daemon in the `X-Registry-Auth` header: base64url
of a JSON AuthConfig (`username`, `password`, `serveraddress`, `identitytoken`, `registrytoken`). The
daemon keeps them only for the one request; they are never logged and never part of an error message
(`Credentials.__repr__` hides them, so a stray log line cannot show them either).

A registry says how it wants to be authenticated in the `WWW-Authenticate` header of a 401: `Basic
realm=...` (send the credentials with every request), or `Bearer realm=...,service=...,scope=...` (ask
the token server at `realm` for a token for `service` and the scopes needed, with the credentials as
basic auth or anonymously, then send `Authorization: Bearer <token>`).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field

from logship.errors import InvalidParameter


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)  # an OAuth refresh token a registry handed out
    registry_token: str = field(default="", repr=False)  # a bearer token to send as it is
    server: str = ""

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)

    def basic(self) -> str:
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()


ANONYMOUS = Credentials()


def decode_registry_auth(header: str | None) -> Credentials:
    """The credentials of an X-Registry-Auth header (anonymous when absent or empty). docker-py and the
    CLI send base64url, with or without padding; some clients send standard base64."""
    if not header or header.strip() in ("", "e30=", "e30"):  # "{}"
        return ANONYMOUS
    text = header.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
        document = json.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidParameter(
            "the X-Registry-Auth header is not base64url-encoded JSON credentials (as the docker CLI sends them)"
        ) from None
    if not isinstance(document, dict):
        raise InvalidParameter("the X-Registry-Auth header must hold a JSON object of credentials")

    def text_of(key: str) -> str:
        value = document.get(key) or ""
        return value if isinstance(value, str) else ""

    auth = text_of("auth")  # "user:password" in base64, as config.json keeps it
    username, password = text_of("username"), text_of("password")
    if auth and not username:
        try:
            username, _, password = base64.b64decode(auth).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidParameter("the X-Registry-Auth header's auth field is not base64 of user:password") from None
    return Credentials(
        username=username,
        password=password,
        identity_token=text_of("identitytoken"),
        registry_token=text_of("registrytoken"),
        server=text_of("serveraddress"),
    )


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer", lower case
    params: dict[str, str]


_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


def parse_challenges(headers: list[str]) -> list[Challenge]:
    """The challenges of WWW-Authenticate headers: `Bearer realm="https://auth",service="registry"`."""
    challenges = []
    for header in headers:
        scheme, _, rest = header.strip().partition(" ")
        params = {}
        for match in _PARAM_RE.finditer(rest):
            value = match.group(2) if match.group(2) is not None else match.group(3)
            params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        challenges.append(Challenge(scheme.lower(), params))
    return challenges

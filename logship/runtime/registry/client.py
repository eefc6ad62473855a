"""HTTP to one repository of one registry: finding the endpoint that answers, authenticating (basic or
bearer token), following redirects (a bounded number), reading documents with a size limit, and
turning the registry's error answers into Docker's messages.

aiohttp does the HTTP; redirects are followed here, not by aiohttp, so that credentials never follow a
redirect to another host (blob storage behind a redirect gets none) and so that their number is bounded
with a clear message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp

from logship.errors import Forbidden, LogshipError, NotFound, SystemError_, Unauthorized
from logship.runtime.registry.auth import Challenge, Credentials, parse_challenges
from logship.runtime.registry.endpoints import Endpoint

log = logging.getLogger("logship.registry")

MAX_REDIRECTS = 10
MAX_MANIFEST_SIZE = 4 << 20  # Docker's limit on a manifest or index
MAX_SMALL_BODY = 1 << 20  # token answers, error answers, configs are read with MAX_CONFIG_SIZE
MAX_CONFIG_SIZE = 8 << 20
CONNECT_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 300.0  # between two reads of a body: a registry that stops sending is given up on
USER_AGENT = "logship (docker-compatible registry client)"


class RegistryError(LogshipError):
    """A registry answered with an error, or could not be reached; the message is Docker's where Docker
    has one."""

    status = 500


def error_for(status: int, message: str) -> LogshipError:
    kinds: dict[int, type[LogshipError]] = {401: Unauthorized, 403: Forbidden, 404: NotFound}
    return kinds.get(status, RegistryError)(message)


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


class Repository:
    """One repository (`library/busybox`) on a registry, for `actions` ("pull" or "pull,push")."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        candidates: list[Endpoint],
        path: str,
        credentials: Credentials,
        actions: str,
    ) -> None:
        self._session = session
        self._candidates = candidates
        self.path = path
        self._credentials = credentials
        self._actions = actions
        self.endpoint: Endpoint | None = None
        self._challenge: Challenge | None = None
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = asyncio.Lock()

    # -- finding the endpoint ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Ping `/v2/` on each candidate endpoint in turn; the first that answers as a registry is used.
        Its 401 challenge, if any, says how to authenticate."""
        failures = []
        for endpoint in self._candidates:
            try:
                response = await self._send("GET", endpoint.url + "/v2/", endpoint, {}, None, authorize=False)
            except RegistryError as err:
                failures.append(str(err))
                log.info("registry endpoint %s: %s", endpoint.url, err)
                continue
            challenges = parse_challenges(response.headers.getall("WWW-Authenticate", []))
            body = await _read_limited(response, MAX_SMALL_BODY)
            if response.status in (200, 401):
                self.endpoint = endpoint
                self._challenge = next((c for c in challenges if c.scheme in ("bearer", "basic")), None)
                return
            failures.append(f"GET {endpoint.url}/v2/: {response.status} {error_text(body) or response.reason}")
        raise RegistryError("; ".join(failures) or "no registry endpoint to try")

    # -- requests ----------------------------------------------------------------------------------------

    async def get_document(self, path: str, accept: list[str], limit: int) -> Answer:
        response = await self.request("GET", path, {"Accept": ", ".join(accept)})
        try:
            declared = response.content_length
            if declared is not None and declared > limit:
                raise RegistryError(
                    f"the registry's answer to GET {self.url(path)} is {declared} bytes, more than the "
                    f"{limit} a {_what(path)} may be: refusing it"
                )
            body = await _read_limited(response, limit, self.url(path))
            return Answer(response.status, response.headers, body, str(response.url))
        finally:
            response.release()

    async def request(
        self, method: str, path: str, headers: Mapping[str, str] | None = None, data: Any = None
    ) -> aiohttp.ClientResponse:
        """`method path` (relative to `/v2/<repository>/`, or an absolute URL from a Location header),
        authenticated, redirects followed. Non-2xx answers are raised as Docker's errors unless the
        caller handles them: 404 on HEAD is returned as it is."""
        endpoint = self._endpoint()
        url = self.url(path)
        for attempt in range(2):
            response = await self._send(method, url, endpoint, dict(headers or {}), data, authorize=True)
            if response.status == 401 and attempt == 0 and self._refresh_challenge(response):
                response.release()
                continue
            return response
        raise AssertionError("unreachable")

    @property
    def lacks_credentials(self) -> bool:
        """The registry wants basic auth and we have nothing to send: Docker's "no basic auth credentials"."""
        return self._challenge is not None and self._challenge.scheme == "basic" and self._credentials.empty

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        if path.startswith("/"):
            return self._endpoint().url + path
        return f"{self._endpoint().url}/v2/{self.path}/{path}"

    def _endpoint(self) -> Endpoint:
        if self.endpoint is None:
            raise SystemError_("the registry repository was used before open()")
        return self.endpoint

    def _refresh_challenge(self, response: aiohttp.ClientResponse) -> bool:
        """A 401 on a request: take the challenge it carries and try once more (a token may have
        expired, or the registry wants another scope)."""
        challenges = parse_challenges(response.headers.getall("WWW-Authenticate", []))
        challenge = next((c for c in challenges if c.scheme in ("bearer", "basic")), None)
        if challenge is None:
            return False
        retry = self._challenge is None or challenge != self._challenge or self._token is not None
        self._challenge = challenge
        self._token = None
        return retry and not (challenge.scheme == "basic" and self._credentials.empty)

    async def _send(
        self,
        method: str,
        url: str,
        endpoint: Endpoint,
        headers: dict[str, str],
        data: Any,
        authorize: bool,
    ) -> aiohttp.ClientResponse:
        origin = urlsplit(url).netloc
        headers.setdefault("User-Agent", USER_AGENT)
        for _ in range(MAX_REDIRECTS + 1):
            sent = dict(headers)
            if authorize and urlsplit(url).netloc == origin:
                authorization = await self._authorization()
                if authorization:
                    sent["Authorization"] = authorization
            tls = endpoint.ssl if url.startswith("https:") else False
            try:
                response = await self._session.request(
                    method,
                    url,
                    headers=sent,
                    data=data,
                    allow_redirects=False,
                    ssl=tls,
                    timeout=aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S),
                )
            except aiohttp.ClientConnectorCertificateError as err:
                raise RegistryError(
                    f'{method.title()} "{url}": tls: failed to verify certificate: {err.certificate_error}; put the '
                    f"CA that signed the registry's certificate in certs.d/{endpoint.host}/ca.crt beside daemon.json, "
                    "or list the registry in insecure-registries"
                ) from None
            except aiohttp.ClientSSLError as err:
                raise RegistryError(f'{method.title()} "{url}": TLS failed: {_ssl_reason(err)}') from None
            except (TimeoutError, aiohttp.ClientError, OSError) as err:
                raise RegistryError(f'{method.title()} "{url}": {_connection_reason(err)}') from None
            if response.status not in (301, 302, 303, 307, 308) or "Location" not in response.headers:
                return response
            location = urljoin(url, response.headers["Location"])
            response.release()
            if urlsplit(location).scheme not in ("http", "https"):
                raise RegistryError(f'{method.title()} "{url}": the registry redirected to {location!r}, not HTTP')
            if response.status == 303:
                method, data = "GET", None
            url = location
        raise RegistryError(
            f'{method.title()} "{url}": stopped after {MAX_REDIRECTS} redirects: the registry or its storage '
            "redirects in a loop"
        )

    # -- authentication ----------------------------------------------------------------------------------

    async def _authorization(self) -> str | None:
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return None if self._credentials.empty else self._credentials.basic()
        if self._credentials.registry_token:
            return "Bearer " + self._credentials.registry_token
        async with self._lock:
            if self._token is None or time.monotonic() > self._token_expires:
                self._token, lifetime = await self._fetch_token(challenge)
                self._token_expires = time.monotonic() + max(lifetime - 10, 5)
            return "Bearer " + self._token

    async def _fetch_token(self, challenge: Challenge) -> tuple[str, float]:
        """The bearer-token flow: GET <realm>?service=...&scope=repository:<path>:<actions>, with the
        credentials as basic auth when there are some (an identity token is exchanged by POST)."""
        realm = challenge.params.get("realm", "")
        if urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryError(f"the registry's token realm {realm!r} is not an http(s) URL")
        service = challenge.params.get("service", "")
        scope = f"repository:{self.path}:{self._actions}" if self.path else challenge.params.get("scope", "")
        endpoint = self._endpoint()
        tls: ssl.SSLContext | bool = endpoint.ssl if realm.startswith("https:") else False
        timeout = aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S)
        try:
            if self._credentials.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": self._credentials.identity_token,
                    "service": service,
                    "client_id": "logship",
                    **({"scope": scope} if scope else {}),
                }
                response = await self._session.post(realm, data=form, ssl=tls, timeout=timeout)
            else:
                query = {"service": service, "client_id": "logship", **({"scope": scope} if scope else {})}
                if not self._credentials.empty:
                    query["account"] = self._credentials.username
                headers = {} if self._credentials.empty else {"Authorization": self._credentials.basic()}
                url = realm + ("&" if "?" in realm else "?") + urlencode(query)
                response = await self._session.get(url, headers=headers, ssl=tls, timeout=timeout, max_redirects=3)
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            raise RegistryError(f'Get "{realm}": {_connection_reason(err)}') from None
        async with response:
            body = await _read_limited(response, MAX_SMALL_BODY, realm)
            if response.status in (401, 403):
                # Docker's words for a token server's refusal, with its "details" when it gives some.
                raise Unauthorized(f'Get "{endpoint.url}/v2/": unauthorized: {_token_refusal(body)}')
            if response.status != 200:
                text = error_text(body) or f"{response.status} {response.reason}"
                raise error_for(response.status, f'Get "{realm}": {text}')
        try:
            document = json.loads(body)
            token = document.get("token") or document.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the token server {realm} answered without a token")
        lifetime = document.get("expires_in")
        return token, float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else 60.0

    async def login_check(self) -> None:
        """`docker login`: the credentials must open the registry (its /v2/, or a token for it)."""
        endpoint = self._endpoint()
        challenge = self._challenge
        if challenge is None:
            return  # a registry without authentication: anything logs in, as with dockerd
        if challenge.scheme == "bearer":
            await self._authorization()
            return
        response = await self._send("GET", endpoint.url + "/v2/", endpoint, {}, None, authorize=True)
        async with response:
            if response.status != 200:
                raise Unauthorized(
                    f"login attempt to {endpoint.url}/v2/ failed with status: {response.status} {response.reason}"
                )


async def raise_for_answer(response: aiohttp.ClientResponse, method: str, what: str) -> None:
    """Raise Docker's error for a non-2xx answer, with the registry's own error text."""
    if response.status < 300:
        return
    body = await _read_limited(response, MAX_SMALL_BODY)
    text = error_text(body) or _status_text(response.status, response.reason)
    url = str(response.url)
    if response.status == 401 and "Authorization" not in response.request_info.headers:
        raise Unauthorized(f'{method.title()} "{url}": no basic auth credentials')
    raise error_for(response.status, f"{what}: {text}" if what else f'{method.title()} "{url}": {text}')


def error_text(body: bytes) -> str:
    """The registry's errors as Docker shows them: "manifest unknown: manifest unknown"."""
    try:
        errors = json.loads(body).get("errors") or []
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace").strip() if body.strip() else ""
    texts = []
    for error in errors:
        if isinstance(error, dict):
            code = str(error.get("code", "unknown")).replace("_", " ").lower()
            texts.append(f"{code}: {error.get('message', '')}")
    return "; ".join(texts)


async def _read_limited(response: aiohttp.ClientResponse, limit: int, url: str = "") -> bytes:
    chunks = []
    size = 0
    async for chunk in response.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            response.close()
            raise RegistryError(
                f"the registry's answer to {url or response.url} is more than {limit} bytes, the most logship "
                "accepts for it: refusing it (a hostile or broken registry)"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _status_text(status: int, reason: str | None) -> str:
    """An answer without a body (HEAD): the registry's error code for its status, as Docker words it."""
    if status == 401:
        return "unauthorized: authentication required"
    if status == 403:
        return "denied: requested access to the resource is denied"
    return f"{status} {reason}"


def _token_refusal(body: bytes) -> str:
    try:
        document = json.loads(body)
        details = document.get("details") or error_text(body)
    except (ValueError, AttributeError):
        details = ""
    return str(details) if details else "authentication required"


def _what(path: str) -> str:
    return "manifest" if "/manifests/" in f"/{path}" else "document"


def _connection_reason(err: BaseException) -> str:
    if isinstance(err, asyncio.TimeoutError):
        return "timed out waiting for the registry"
    if isinstance(err, aiohttp.ClientConnectorError):
        return f"dial tcp {err.host}:{err.port}: {err.os_error.strerror or err.os_error}"
    if isinstance(err, aiohttp.ServerDisconnectedError):
        return "the registry closed the connection"
    return str(err) or type(err).__name__


def _ssl_reason(err: aiohttp.ClientSSLError) -> str:
    inner = getattr(err, "os_error", None)
    if isinstance(inner, ssl.SSLError) and inner.reason:
        if inner.reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"):
            return "http: server gave HTTP response to HTTPS client"
        return inner.reason.lower().replace("_", " ")
    return str(err)

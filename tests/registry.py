"""A real registry for tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1, storing into a
temporary directory, in one of four modes:

- "plain": plain HTTP (an insecure registry, as loopback registries are for dockerd);
- "tls": HTTPS with a certificate from a throwaway CA (tests/tls.py);
- "basic": HTTPS plus htpasswd basic auth (user `alice`, password `secret`);
- "token": HTTPS plus `auth: token`, behind `TokenIssuer`, a small token server written here from the
  distribution token spec (no packaged one exists): it checks alice's password and signs RS256 JWTs with
  a key whose certificate the registry trusts (`rootcertbundle`), naming it by its libtrust key ID.

Stopped (and its storage removed with the directory) when the `with` block ends.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.tls import OPENSSL, make_certificate

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
HTPASSWD = shutil.which("htpasswd") or "/usr/bin/htpasswd"
USER, PASSWORD = "alice", "secret"
SERVICE = "logship-test-registry"
ISSUER = "logship-test-issuer"


def available() -> bool:
    return Path(REGISTRY).exists() and Path(HTPASSWD).exists()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Registry:
    def __init__(self, root: Path, mode: str = "plain") -> None:
        self.root = root
        self.mode = mode
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.issuer: TokenIssuer | None = None
        self.ca: Path | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'http' if self.mode == 'plain' else 'https'}://{self.host}"

    def __enter__(self) -> Registry:
        self.root.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.root / "storage")}, "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": "logship-tests"},
        }
        if self.mode != "plain":
            cert, key, ca = make_certificate(self.root / "tls")
            self.ca = Path(ca)
            config["http"]["tls"] = {"certificate": cert, "key": key}
        if self.mode == "basic":
            htpasswd = self.root / "htpasswd"
            subprocess.run([HTPASSWD, "-Bbc", str(htpasswd), USER, PASSWORD], check=True, capture_output=True)
            config["auth"] = {"htpasswd": {"realm": "logship-test", "path": str(htpasswd)}}
        if self.mode == "token":
            self.issuer = TokenIssuer(self.root / "token").start()
            config["auth"] = {
                "token": {
                    "realm": self.issuer.realm,
                    "service": SERVICE,
                    "issuer": ISSUER,
                    "rootcertbundle": str(self.issuer.certificate),
                }
            }
        (self.root / "config.yml").write_text(json.dumps(config))  # JSON is YAML
        with (self.root / "registry.log").open("ab") as log:
            self.process = subprocess.Popen(
                [REGISTRY, "serve", str(self.root / "config.yml")], stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        self._wait()
        return self

    def _wait(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {(self.root / 'registry.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not listen in time")

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.issuer is not None:
            self.issuer.stop()

    def certs_d(self, config_dir: Path) -> None:
        """Trust this registry's CA the way dockerd and logship read it: certs.d/<host:port>/ca.crt beside
        daemon.json."""
        assert self.ca is not None
        target = config_dir / "certs.d" / self.host
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.ca, target / "ca.crt")

    def delete_tag(self, repository: str, tag: str) -> None:
        """Delete what a tag names (the registry's DELETE takes the manifest's digest)."""
        assert self.mode == "plain", "only used against the plain registry"
        accept = "application/vnd.docker.distribution.manifest.v2+json"
        request = urllib.request.Request(f"{self.url}/v2/{repository}/manifests/{tag}", headers={"Accept": accept})
        with urllib.request.urlopen(request) as answer:
            digest = answer.headers["Docker-Content-Digest"]
        urllib.request.urlopen(
            urllib.request.Request(f"{self.url}/v2/{repository}/manifests/{digest}", method="DELETE")
        )

    def put(self, repository: str, path: str, data: bytes, content_type: str) -> None:
        """Put a blob (path "blobs/<digest>") or manifest (path "manifests/<ref>") as it is (plain mode)."""
        if path.startswith("blobs/"):
            digest = path.removeprefix("blobs/")
            start = urllib.request.Request(f"{self.url}/v2/{repository}/blobs/uploads/", method="POST", data=b"")
            with urllib.request.urlopen(start) as answer:
                location = answer.headers["Location"]
            location = location if location.startswith("http") else self.url + location
            sep = "&" if "?" in location else "?"
            upload = urllib.request.Request(
                f"{location}{sep}digest={digest}",
                method="PUT",
                data=data,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data))},
            )
            urllib.request.urlopen(upload).close()
            return
        request = urllib.request.Request(
            f"{self.url}/v2/{repository}/{path}", method="PUT", data=data, headers={"Content-Type": content_type}
        )
        urllib.request.urlopen(request).close()


class TokenIssuer:
    """The token server of the registry's `auth: token` mode: GET /token?service=&scope=, with alice's
    password as basic auth (or none, for anonymous pulls, which get no access)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.key = root / "issuer.key"
        self.certificate = root / "issuer.pem"
        subprocess.run([OPENSSL, "genrsa", "-out", str(self.key), "2048"], check=True, capture_output=True)
        subprocess.run(
            [OPENSSL, "req", "-x509", "-new", "-key", str(self.key), "-out", str(self.certificate), "-days", "7",
             "-subj", "/CN=logship test token issuer"],
            check=True, capture_output=True,
        )  # fmt: skip
        self.kid = _libtrust_key_id(self.certificate)
        self.requests: list[dict[str, Any]] = []
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                authorization = self.headers.get("Authorization", "")
                account = ""
                if authorization.startswith("Basic "):
                    user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
                    if (user, password) != (USER, PASSWORD):
                        self._answer(401, {"details": "incorrect username or password"})
                        return
                    account = user
                issuer.requests.append({"account": account, "scope": query.get("scope", [])})
                access = []
                for scope in query.get("scope", []):
                    kind, _, rest = scope.partition(":")
                    name, _, actions = rest.rpartition(":")
                    granted = actions.split(",") if account else []
                    access.append({"type": kind, "name": name, "actions": granted})
                token = issuer.sign(account, access)
                self._answer(200, {"token": token, "access_token": token, "expires_in": 300})

            def _answer(self, status: int, document: dict[str, Any]) -> None:
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def start(self) -> TokenIssuer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def sign(self, subject: str, access: list[dict[str, Any]]) -> str:
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        claims = {
            "iss": ISSUER, "sub": subject, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
            "jti": os.urandom(8).hex(), "access": access,
        }  # fmt: skip
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = subprocess.run(
            [OPENSSL, "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(), check=True, capture_output=True,
        ).stdout  # fmt: skip
        return f"{signing_input}.{_b64(signature)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _libtrust_key_id(certificate: Path) -> str:
    """libtrust's key ID, by which distribution finds a token's signing key: base32 of the first 240 bits
    of sha256(DER public key), in groups of four joined by ':'."""
    public = subprocess.run(
        [OPENSSL, "x509", "-in", str(certificate), "-pubkey", "-noout"], check=True, capture_output=True
    ).stdout
    der = subprocess.run([OPENSSL, "pkey", "-pubin", "-outform", "DER"], input=public, check=True, capture_output=True)
    text = base64.b32encode(hashlib.sha256(der.stdout).digest()[:30]).decode()
    return ":".join(text[i : i + 4] for i in range(0, len(text), 4))

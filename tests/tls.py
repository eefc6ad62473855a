"""Throwaway TLS certificates for tests, made with the `openssl` command line.

`make_certificate(directory)` writes a self-signed CA and a server certificate for 127.0.0.1 and localhost
signed by it. A server loads (cert, key); a client trusts the CA, through an explicit CA path or, for Go and
OpenSSL clients, SSL_CERT_FILE=<ca>. For mutual TLS, `make_client_certificate` signs a client certificate
with that CA (its key is `ca.key` beside `ca.pem`), and `make_ca` makes another, unrelated CA.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
DAYS = "7"
# P-256 keys: much faster to make than RSA, and accepted by Go's and Python's TLS.
EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

SERVER_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""

CLIENT_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


def make_certificate(directory: str | os.PathLike[str]) -> tuple[str, str, str]:
    """Create ca.pem, server.pem and server.key in `directory`; returns (cert_path, key_path, ca_path).

    The server certificate names 127.0.0.1 and localhost in subjectAltName (Go ignores the common name) and
    carries key identifiers, which strict X.509 checking (Python 3.13's default) requires.
    """
    folder = Path(directory)
    ca_cert, ca_key = make_ca(folder)
    cert, key = _signed(folder, "server", "localhost", SERVER_EXTENSIONS, ca_cert, ca_key)
    return cert, key, ca_cert


def make_ca(directory: str | os.PathLike[str], name: str = "logship test CA") -> tuple[str, str]:
    """Create a self-signed CA as ca.pem and ca.key in `directory`; returns (ca_cert, ca_key)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = folder / "ca.key", folder / "ca.pem"
    _openssl(
        "req", "-x509", *EC_KEY, "-keyout", ca_key, "-out", ca_cert, "-days", DAYS,
        "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return str(ca_cert), str(ca_key)


def make_client_certificate(
    directory: str | os.PathLike[str], ca_cert: str, ca_key: str, name: str = "client"
) -> tuple[str, str]:
    """Create `<name>.pem` and `<name>.key` in `directory`: a client certificate (extendedKeyUsage
    clientAuth, common name `name`) signed by the given CA; returns (cert_path, key_path)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    return _signed(folder, name, name, CLIENT_EXTENSIONS, ca_cert, ca_key)


def _signed(folder: Path, stem: str, common_name: str, extensions: str, ca_cert: str, ca_key: str) -> tuple[str, str]:
    key, request, cert = folder / f"{stem}.key", folder / f"{stem}.csr", folder / f"{stem}.pem"
    extensions_file = folder / f"{stem}.ext"
    extensions_file.write_text(extensions)
    _openssl("req", "-new", *EC_KEY, "-keyout", key, "-out", request, "-subj", f"/CN={common_name}")
    _openssl(
        "x509", "-req", "-in", request, "-CA", ca_cert, "-CAkey", ca_key, "-set_serial", str(_serial()),
        "-days", DAYS, "-extfile", extensions_file, "-out", cert,
    )  # fmt: skip
    return str(cert), str(key)


def _serial() -> int:
    # A fresh serial each time, so a client that cached an earlier certificate never confuses the two.
    return int.from_bytes(os.urandom(8), "big") >> 1


def _openssl(*arguments: str | Path) -> None:
    result = subprocess.run([OPENSSL, *map(str, arguments)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        command = " ".join(map(str, arguments[:2]))
        raise RuntimeError(f"openssl {command} failed ({result.returncode}): {result.stderr.strip()}")

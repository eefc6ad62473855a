"""The daemon served over TCP with mutual TLS, as dockerd does with `-H tcp://... --tlsverify`.

Certificates are made here with openssl: a CA, the daemon's certificate for 127.0.0.1 signed by it, a
client certificate signed by it, and a client certificate signed by another, unrelated CA. The real docker
CLI and logship's own CLI connect with the good client certificate; clients without one, or with the
foreign one, are turned away at the TLS handshake. Plain TCP is refused unless asked for, and then warned
about.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import tls
from tests.harness import LOGSHIP, Daemon, Result

pytestmark = pytest.mark.integration

DOCKER = "/usr/local/bin/docker"
needs_docker = pytest.mark.skipif(
    not os.path.exists(DOCKER), reason=f"the real docker CLI is not installed at {DOCKER}"
)


@dataclass(frozen=True)
class Certificates:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    foreign_cert: str  # a client certificate signed by a CA the daemon has never heard of
    foreign_key: str

    def daemon_flags(self) -> list[str]:
        return ["--tlsverify", "--tlscacert", self.ca, "--tlscert", self.server_cert, "--tlskey", self.server_key]

    def client_flags(self) -> list[str]:
        return ["--tlsverify", "--tlscacert", self.ca, "--tlscert", self.client_cert, "--tlskey", self.client_key]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    if shutil.which("openssl") is None:
        pytest.skip("openssl makes the test certificates and is not installed")
    ours = tmp_path_factory.mktemp("ours")
    server_cert, server_key, ca = tls.make_certificate(ours)
    client_cert, client_key = tls.make_client_certificate(ours, ca, str(ours / "ca.key"))
    theirs = tmp_path_factory.mktemp("theirs")
    foreign_ca, foreign_ca_key = tls.make_ca(theirs, name="someone else's CA")
    foreign_cert, foreign_key = tls.make_client_certificate(theirs, foreign_ca, foreign_ca_key, name="stranger")
    return Certificates(ca, server_cert, server_key, client_cert, client_key, foreign_cert, foreign_key)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Remote:
    """A daemon serving its unix socket and a tcp:// host with mutual TLS."""

    daemon: Daemon
    tcp: str


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory, certificates: Certificates) -> Iterator[Remote]:
    tcp = f"tcp://127.0.0.1:{free_port()}"
    daemon = Daemon(tmp_path_factory.mktemp("remote"), extra_args=["-H", tcp, *certificates.daemon_flags()])
    daemon.start()
    try:
        daemon.import_busybox()
        yield Remote(daemon, tcp)
    finally:
        daemon.stop()


def clean_env(root: Path) -> dict[str, str]:
    """The environment without any DOCKER_*/LOGSHIP_* settings of the machine, and a HOME of our own so
    that no ~/.docker or ~/.logship certificates take part."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DOCKER_", "LOGSHIP_"))}
    home = root / "home"
    home.mkdir(exist_ok=True)
    return {**env, "HOME": str(home), "DOCKER_CONFIG": str(root / "docker-config"), "LOGSHIP_NO_AUTOSTART": "1"}


def docker(root: Path, *args: str, input: bytes | None = None) -> Result:
    done = subprocess.run([DOCKER, *args], input=input, capture_output=True, env=clean_env(root), timeout=60)
    return Result(done.returncode, done.stdout, done.stderr)


def logship(root: Path, *args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> Result:
    full_env = {**clean_env(root), **(env or {})}
    done = subprocess.run([*LOGSHIP, *args], input=input, capture_output=True, env=full_env, timeout=60)
    return Result(done.returncode, done.stdout, done.stderr)


def succeeded(result: Result, what: str) -> str:
    assert result.code == 0, f"{what} failed ({result.code}): {result.err}"
    return result.out


def start_refused(daemon: Daemon, *args: str) -> Result:
    """Run `logship daemon` with these arguments, expecting it to stop before serving anything."""
    daemon.root.mkdir(parents=True, exist_ok=True)
    daemon.config_file.write_text(json.dumps(daemon.config))
    command = [*LOGSHIP, "daemon", "-H", daemon.host, "--data-root", str(daemon.data_root)]
    command += ["--config-file", str(daemon.config_file), *args]
    done = subprocess.run(command, capture_output=True, env=clean_env(daemon.root), timeout=60)
    return Result(done.returncode, done.stdout, done.stderr)


# ---- the docker CLI ---------------------------------------------------------------------------------------


@needs_docker
def test_docker_cli_with_tlsverify_runs_attaches_lists_and_reads_logs(
    remote: Remote, certificates: Certificates
) -> None:
    def ok(*args: str, input: bytes | None = None) -> str:
        return succeeded(
            docker(remote.daemon.root, *certificates.client_flags(), "-H", remote.tcp, *args, input=input),
            f"docker {' '.join(args)}",
        )

    version = json.loads(ok("version", "--format", "{{json .}}"))
    assert version["Server"]["ApiVersion"] == "1.47"
    # An attach hijacks the connection: output, stdin and the exit code all travel over TLS.
    assert ok("run", "--rm", "busybox", "echo", "over tls") == "over tls\n"
    assert ok("run", "-i", "--rm", "busybox", "tr", "a-z", "A-Z", input=b"shout\n") == "SHOUT\n"
    failing = docker(
        remote.daemon.root, *certificates.client_flags(), "-H", remote.tcp, "run", "--rm", "busybox", "sh", "-c",
        "echo err >&2; exit 3",
    )  # fmt: skip
    assert (failing.code, failing.stderr) == (3, b"err\n")
    ok("run", "-d", "--name", "tls_docker_running", "busybox", "sleep", "60")
    assert "tls_docker_running" in ok("ps")
    ok("rm", "-f", "tls_docker_running")
    ok("run", "-d", "--name", "tls_docker", "busybox", "sh", "-c", "echo one; echo two >&2")
    assert ok("wait", "tls_docker") == "0\n"
    assert "tls_docker" in ok("ps", "-a")
    logs = docker(remote.daemon.root, *certificates.client_flags(), "-H", remote.tcp, "logs", "tls_docker")
    assert (logs.code, logs.stdout, logs.stderr) == (0, b"one\n", b"two\n")
    # The same API on every host: the unix socket sees what the TLS clients did.
    assert "tls_docker" in remote.daemon.ok("ps", "-a")
    ok("rm", "tls_docker")


@needs_docker
def test_docker_cli_without_a_client_certificate_is_rejected(remote: Remote, certificates: Certificates) -> None:
    refused = docker(remote.daemon.root, "--tlsverify", "--tlscacert", certificates.ca, "-H", remote.tcp, "ps")
    assert refused.code != 0 and "tls: certificate required" in refused.err
    assert "refused a TLS connection from 127.0.0.1" in remote.daemon.daemon_log()


@needs_docker
def test_docker_cli_with_a_certificate_from_another_ca_is_rejected(remote: Remote, certificates: Certificates) -> None:
    refused = docker(
        remote.daemon.root, "--tlsverify", "--tlscacert", certificates.ca, "--tlscert", certificates.foreign_cert,
        "--tlskey", certificates.foreign_key, "-H", remote.tcp, "run", "--rm", "busybox", "echo", "nope",
    )  # fmt: skip
    assert refused.code != 0 and "tls: unknown certificate authority" in refused.err
    assert "nope" not in refused.out


@needs_docker
def test_docker_cli_without_tls_is_told_the_daemon_speaks_https(remote: Remote) -> None:
    plain = docker(remote.daemon.root, "-H", remote.tcp, "ps")
    assert plain.code != 0 and "Client sent an HTTP request to an HTTPS server." in plain.err


# ---- logship's CLI ----------------------------------------------------------------------------------------


def test_logship_cli_with_tls_flags_runs_attaches_lists_and_reads_logs(
    remote: Remote, certificates: Certificates
) -> None:
    def ok(*args: str, input: bytes | None = None) -> str:
        result = logship(remote.daemon.root, "-H", remote.tcp, *certificates.client_flags(), *args, input=input)
        return succeeded(result, f"logship {' '.join(args)}")

    assert "Server:" in ok("version")
    assert ok("run", "--rm", "busybox", "echo", "over tls") == "over tls\n"
    assert ok("run", "-i", "--rm", "busybox", "tr", "a-z", "A-Z", input=b"quiet\n") == "QUIET\n"
    ok("run", "-d", "--name", "tls_flags", "busybox", "sh", "-c", "echo first; echo second")
    assert ok("wait", "tls_flags").strip() == "0"
    assert "tls_flags" in ok("ps", "-a")
    assert ok("logs", "tls_flags") == "first\nsecond\n"
    ok("rm", "tls_flags")


def test_logship_cli_takes_its_certificates_from_logship_cert_path(remote: Remote, certificates: Certificates) -> None:
    cert_dir = remote.daemon.root / "cert-path"
    cert_dir.mkdir(exist_ok=True)
    shutil.copy(certificates.ca, cert_dir / "ca.pem")
    shutil.copy(certificates.client_cert, cert_dir / "cert.pem")
    shutil.copy(certificates.client_key, cert_dir / "key.pem")
    env = {"LOGSHIP_HOST": remote.tcp, "LOGSHIP_TLS_VERIFY": "1", "LOGSHIP_CERT_PATH": str(cert_dir)}

    def ok(*args: str, input: bytes | None = None) -> str:
        return succeeded(logship(remote.daemon.root, *args, input=input, env=env), f"logship {' '.join(args)}")

    assert "Server:" in ok("version")
    assert ok("run", "--name", "tls_env", "busybox", "echo", "from env") == "from env\n"
    assert "tls_env" in ok("ps", "-a")
    assert ok("logs", "tls_env") == "from env\n"
    ok("rm", "tls_env")
    # The flag form reads the same folder: --tlsverify alone is enough.
    flags_only = logship(
        remote.daemon.root, "-H", remote.tcp, "--tlsverify", "version", env={"LOGSHIP_CERT_PATH": str(cert_dir)}
    )
    assert flags_only.code == 0, flags_only.err


def test_logship_cli_explains_each_tls_refusal_without_a_traceback(remote: Remote, certificates: Certificates) -> None:
    root = remote.daemon.root
    no_certificate = logship(root, "-H", remote.tcp, "--tlsverify", "--tlscacert", certificates.ca, "ps")
    assert no_certificate.code == 1
    assert "requires a TLS client certificate" in no_certificate.err and "--tlscert" in no_certificate.err

    foreign = logship(
        root, "-H", remote.tcp, "--tlsverify", "--tlscacert", certificates.ca, "--tlscert", certificates.foreign_cert,
        "--tlskey", certificates.foreign_key, "ps",
    )  # fmt: skip
    assert foreign.code == 1 and "rejected our TLS client certificate" in foreign.err

    untrusted_daemon = logship(
        root, "-H", remote.tcp, "--tlsverify", "--tlscacert", str(Path(certificates.foreign_cert).parent / "ca.pem"),
        "--tlscert", certificates.client_cert, "--tlskey", certificates.client_key, "ps",
    )  # fmt: skip
    assert untrusted_daemon.code == 1 and "we do not trust its TLS certificate" in untrusted_daemon.err

    plain = logship(root, "-H", remote.tcp, "ps")
    assert plain.code == 1 and "speaks TLS and we sent plain HTTP" in plain.err

    missing = logship(root, "-H", remote.tcp, "--tlsverify", "--tlscacert", str(root / "nosuch.pem"), "ps")
    assert missing.code == 1 and f"cannot read the TLS CA certificate {root / 'nosuch.pem'}" in missing.err

    for result in (no_certificate, foreign, untrusted_daemon, plain, missing):
        assert "Traceback" not in result.err


# ---- starting the daemon: plain TCP, daemon.json, bad files -----------------------------------------------


def test_plain_tcp_without_the_opt_in_stops_the_daemon_with_a_clear_error(new_daemon: Daemon) -> None:
    tcp = f"tcp://127.0.0.1:{free_port()}"
    refused = start_refused(new_daemon, "-H", tcp)
    assert refused.code == 1
    assert f"refusing to serve {tcp} without TLS" in refused.err
    assert "--tlsverify" in refused.err and "--insecure-tcp" in refused.err
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", int(tcp.rsplit(":", 1)[1]))) != 0  # nothing listens


@needs_docker
def test_plain_tcp_with_the_opt_in_serves_and_warns_in_the_daemon_log(new_daemon: Daemon) -> None:
    tcp = f"tcp://127.0.0.1:{free_port()}"
    new_daemon.extra_args = ["-H", tcp, "--insecure-tcp"]
    new_daemon.start()
    new_daemon.import_busybox()
    assert "serves the API over plain TCP (--insecure-tcp)" in new_daemon.daemon_log()
    assert "controls this machine as root" in new_daemon.daemon_log()
    root = new_daemon.root
    assert succeeded(docker(root, "-H", tcp, "run", "--rm", "busybox", "echo", "plain"), "docker run") == "plain\n"
    assert succeeded(logship(root, "-H", tcp, "run", "--rm", "busybox", "echo", "plain"), "logship run") == "plain\n"


@needs_docker
def test_daemon_json_keys_configure_mutual_tls(new_daemon: Daemon, certificates: Certificates) -> None:
    tcp = f"tcp://127.0.0.1:{free_port()}"
    new_daemon.config = {
        "tlsverify": True,
        "tlscacert": certificates.ca,
        "tlscert": certificates.server_cert,
        "tlskey": certificates.server_key,
    }
    new_daemon.extra_args = ["-H", tcp]
    new_daemon.start()
    version = docker(new_daemon.root, *certificates.client_flags(), "-H", tcp, "version", "--format", "{{.Server.Os}}")
    assert succeeded(version, "docker version") == "linux\n"
    refused = docker(new_daemon.root, "--tlsverify", "--tlscacert", certificates.ca, "-H", tcp, "version")
    assert refused.code != 0 and "tls: certificate required" in refused.err


def test_a_tls_key_both_in_daemon_json_and_as_a_flag_is_an_error(
    new_daemon: Daemon, certificates: Certificates
) -> None:
    new_daemon.config = {"tlsverify": True, "tlscacert": certificates.ca}
    refused = start_refused(new_daemon, "-H", f"tcp://127.0.0.1:{free_port()}", *certificates.daemon_flags())
    assert refused.code == 1
    assert "specified both as a flag and in the configuration file" in refused.err
    assert "tlsverify: (from flag: True, from file: True)" in refused.err and "tlscacert" in refused.err


def test_insecure_tcp_in_daemon_json_is_the_same_opt_in(new_daemon: Daemon) -> None:
    tcp = f"tcp://127.0.0.1:{free_port()}"
    new_daemon.config = {"insecure-tcp": True}
    new_daemon.extra_args = ["-H", tcp]
    new_daemon.start()
    assert "serves the API over plain TCP" in new_daemon.daemon_log()
    assert "Server:" in succeeded(logship(new_daemon.root, "-H", tcp, "version"), "logship version")


def test_missing_or_unusable_certificate_files_stop_the_daemon_naming_the_file(
    new_daemon: Daemon, certificates: Certificates
) -> None:
    tcp = f"tcp://127.0.0.1:{free_port()}"
    missing = new_daemon.root / "missing.pem"
    no_file = start_refused(
        new_daemon, "-H", tcp, "--tlsverify", "--tlscacert", certificates.ca, "--tlscert", str(missing),
        "--tlskey", certificates.server_key,
    )  # fmt: skip
    assert no_file.code == 1 and f"cannot read the TLS certificate {missing}" in no_file.err

    not_pem = new_daemon.root / "garbage.pem"
    not_pem.write_text("this is not a certificate\n")
    garbage = start_refused(
        new_daemon, "-H", tcp, "--tlsverify", "--tlscacert", str(not_pem), "--tlscert", certificates.server_cert,
        "--tlskey", certificates.server_key,
    )  # fmt: skip
    assert garbage.code == 1 and f"{not_pem} is not a PEM CA certificate" in garbage.err

    mismatched = start_refused(
        new_daemon, "-H", tcp, "--tlsverify", "--tlscacert", certificates.ca, "--tlscert", certificates.server_cert,
        "--tlskey", certificates.client_key,
    )  # fmt: skip
    assert mismatched.code == 1
    assert f"the TLS private key {certificates.client_key} does not belong to the certificate" in mismatched.err


def test_tls_without_verify_serves_any_client_and_warns(new_daemon: Daemon, certificates: Certificates) -> None:
    tcp = f"tcp://127.0.0.1:{free_port()}"
    new_daemon.extra_args = [
        "-H",
        tcp,
        "--tls",
        "--tlscert",
        certificates.server_cert,
        "--tlskey",
        certificates.server_key,
    ]
    new_daemon.start()
    assert "over TLS without verifying clients" in new_daemon.daemon_log()
    # A client with no certificate of its own gets in; it still checks the daemon's certificate.
    served = logship(new_daemon.root, "-H", tcp, "--tlsverify", "--tlscacert", certificates.ca, "version")
    assert "Server:" in succeeded(served, "logship version")

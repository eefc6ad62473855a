"""Networks as Docker users know them, with real netavark, aardvark-dns and pasta: containers talk by name
on user-defined networks, published ports answer on the host's loopback, `--internal` has no way out,
a network's bridge goes with its last container, and a daemon killed with -9 leaves every container's
connectivity in place.

Traffic stays on the host's loopback and inside the namespaces these tests make (logship's own, the
containers'); no test resolves a name aardvark-dns would have to ask the host's name servers about.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from logship.runtime import netavark, netns
from tests.harness import Daemon, docker, docker_ok, needs_docker
from tests.hostnet import fetch, free_port, host_network

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        bool(netavark.missing_tools()) or shutil.which("pasta") is None,
        reason="needs netavark, aardvark-dns and passt (.ci/setup installs them)",
    ),
]

UDPECHO_SOURCE = Path(__file__).parent / "helpers" / "udpecho.c"
HTTPD = ["busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]  # serves the container's /etc/hostname


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with Daemon(tmp_path_factory.mktemp("networks"), bridge=True).started() as started:
        yield started


def wait_for(host: str) -> str:
    """A container's shell waits until HOST's httpd (just started) accepts connections."""
    return f"for i in $(seq 20); do nc -w 1 {host} 80 </dev/null && break; sleep 0.1; done;"


def namespace(daemon: Daemon) -> Path:
    return daemon.data_root / "network" / "netns" / "logship"


def in_namespace(daemon: Daemon, *argv: str) -> str:
    done = subprocess.run(["nsenter", f"--net={netns.path(namespace(daemon))}", *argv], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_two_containers_on_a_user_defined_network_talk_by_name_and_alias(daemon: Daemon) -> None:
    daemon.ok("network", "create", "talk")
    daemon.ok("run", "-d", "--name", "web", "--network", "talk", "--network-alias", "www", *HTTPD)
    try:
        script = (
            f"{wait_for('web')}"
            "wget -q -O- http://web/hostname; wget -q -O- http://www/hostname;"
            "printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc web 80 | head -1;"
            "hostname -f"  # its own name, from its /etc/hosts
        )
        client = ["--network", "talk", "--hostname", "probe", "--domainname", "example.com"]
        out = daemon.ok("run", "--rm", *client, "busybox", "sh", "-c", script)
        short_id = daemon.inspect("web")["Id"][:12]
        assert out.splitlines() == [short_id, short_id, "HTTP/1.1 200 OK", "probe.example.com"]
        web = daemon.inspect("web")["NetworkSettings"]["Networks"]["talk"]
        assert web["Aliases"] == ["www"] and web["DNSNames"] == ["web", "www", short_id]
        hosts = daemon.ok("exec", "web", "cat", "/etc/hosts").splitlines()
        assert hosts[-1] == f"{web['IPAddress']}\t{short_id}"
        resolv = daemon.ok("exec", "web", "cat", "/etc/resolv.conf")
        assert f"nameserver {web['Gateway']}\n" in resolv and resolv.endswith("options ndots:0\n")
    finally:
        daemon.ok("rm", "-f", "web")
        daemon.ok("network", "rm", "talk")


def test_a_published_port_answers_on_the_hosts_loopback(daemon: Daemon) -> None:
    port = free_port()
    daemon.ok("run", "-d", "--name", "pub", "-p", f"127.0.0.1:{port}:80", "--expose", "90", *HTTPD)
    try:
        short_id = daemon.inspect("pub")["Id"][:12]
        answer = fetch(port)
        assert answer.startswith("HTTP/1.1 200 OK") and answer.endswith(short_id + "\n")
        settings = daemon.inspect("pub")["NetworkSettings"]
        assert settings["Ports"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}], "90/tcp": None}
        assert settings["IPAddress"].startswith("172.17.") and settings["Networks"]["bridge"]["Gateway"] == "172.17.0.1"
        assert daemon.ok("port", "pub").strip() == f"80/tcp -> 127.0.0.1:{port}"
        assert f"90/tcp, 127.0.0.1:{port}->80/tcp" in daemon.ok("ps")
        for matching in (f"publish={port}", f"publish={port - 1}-{port}/tcp", "expose=90", "expose=80/tcp"):
            assert daemon.ok("ps", "-q", "--filter", matching).strip() == short_id, matching
        for other in ("publish=80", f"publish={port}/udp", "expose=91"):
            assert daemon.ok("ps", "-q", "--filter", other) == "", other
        bad = daemon.cli("ps", "--filter", "publish=http")
        assert bad.code == 1 and "invalid filter 'publish=http'" in bad.err
        busy = daemon.cli("run", "--rm", "-p", f"127.0.0.1:{port}:80", "busybox", "true")
        assert busy.code == 125 and f"Bind for 127.0.0.1:{port} failed: port is already allocated" in busy.err
    finally:
        daemon.ok("rm", "-f", "pub")
    with pytest.raises(AssertionError):
        fetch(port, timeout=0.5)  # the forwarder went with the container


@pytest.fixture(scope="module")
def udpecho(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/helpers/udpecho.c built static, to bind-mount into a busybox container."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("needs gcc to build tests/helpers/udpecho.c (installed by .ci/setup)")
    binary = tmp_path_factory.mktemp("udpecho") / "udpecho"
    built = subprocess.run([gcc, "-static", "-O2", "-o", str(binary), str(UDPECHO_SOURCE)], capture_output=True)
    if built.returncode != 0:
        pytest.skip(f"cannot build a static udpecho (libc6-dev's libc.a?): {built.stderr.decode()[-300:]}")
    return binary


def test_publish_all_picks_free_ports_and_udp_goes_both_ways(daemon: Daemon, udpecho: Path) -> None:
    daemon.ok("run", "-d", "--name", "pall", "-P", "--expose", "80", *HTTPD)
    udp = free_port()
    echo = ["-v", f"{udpecho}:/udpecho:ro", "-p", f"127.0.0.1:{udp}:7/udp", "busybox", "/udpecho", "7"]
    daemon.ok("run", "-d", "--name", "echo", *echo)
    try:
        port = int(daemon.inspect("pall")["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])
        assert port >= 1024 and fetch(port).startswith("HTTP/1.1 200 OK")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.settimeout(0.5)
            for _ in range(20):  # until the server has bound its port (a datagram before that is lost)
                sender.sendto(b"datagram\n", ("127.0.0.1", udp))
                try:
                    reply, source = sender.recvfrom(100)
                    break
                except TimeoutError:
                    continue
            else:
                raise AssertionError(f"no answer from the container's UDP server: {daemon.cli('logs', 'echo')}")
        assert reply == b"datagram\n" and source == ("127.0.0.1", udp)
        assert "datagram" in daemon.ok("logs", "echo")
    finally:
        daemon.ok("rm", "-f", "pall", "echo")


def test_an_internal_network_has_no_way_out(daemon: Daemon) -> None:
    daemon.ok("network", "create", "--internal", "closed")
    daemon.ok("network", "create", "open")
    daemon.ok("run", "-d", "--name", "inside", "--network", "closed", *HTTPD)
    daemon.ok("run", "-d", "--name", "outside", "--network", "open", *HTTPD)
    try:
        other = daemon.inspect("outside")["NetworkSettings"]["Networks"]["open"]["IPAddress"]
        script = (
            f"ip route; {wait_for('inside')}"
            "wget -q -O- http://inside/hostname; nc -w 2 "
            + other
            + " 80 </dev/null && echo reached || echo unreachable"
        )
        out = daemon.ok("run", "--rm", "--network", "closed", "busybox", "sh", "-c", script)
        assert "default" not in out  # no route out: nothing leaves the subnet
        assert daemon.inspect("inside")["Id"][:12] in out and out.strip().endswith("unreachable")
        assert daemon.inspect("closed")["Internal"] is True
    finally:
        daemon.ok("rm", "-f", "inside", "outside")
        daemon.ok("network", "rm", "closed", "open")


def test_a_networks_bridge_and_rules_go_with_its_last_container(daemon: Daemon) -> None:
    created = daemon.ok("network", "create", "--subnet", "10.231.7.0/24", "--label", "team=logs", "brief")
    bridge = "br-" + created.strip()[:12]
    daemon.ok("run", "-d", "--name", "keeper", "busybox", "sleep", "600")  # keeps logship's namespace up
    daemon.ok("run", "-d", "--name", "b1", "--network", "brief", "--ip", "10.231.7.50", "busybox", "sleep", "600")
    daemon.ok("run", "-d", "--name", "b2", "--network", "brief", "busybox", "sleep", "600")
    try:
        assert daemon.inspect("b1")["NetworkSettings"]["Networks"]["brief"]["IPAddress"] == "10.231.7.50"
        assert daemon.inspect("b2")["NetworkSettings"]["Networks"]["brief"]["IPAddress"] == "10.231.7.2"
        network = json.loads(daemon.ok("network", "inspect", "brief"))[0]
        assert sorted(c["Name"] for c in network["Containers"].values()) == ["b1", "b2"]
        assert network["Labels"] == {"team": "logs"} and network["IPAM"]["Config"][0]["Gateway"] == "10.231.7.1"
        assert bridge in in_namespace(daemon, "ip", "-br", "link") and "10.231.7.0/24" in in_namespace(
            daemon, "iptables-save"
        )
        in_use = daemon.cli("network", "rm", "brief")
        assert in_use.code == 1 and "has active endpoints" in in_use.err
        daemon.ok("rm", "-f", "b1")
        assert bridge in in_namespace(daemon, "ip", "-br", "link")
        daemon.ok("rm", "-f", "b2")
        assert bridge not in in_namespace(daemon, "ip", "-br", "link")
        assert "10.231.7.0/24" not in in_namespace(daemon, "iptables-save")
        assert json.loads(daemon.ok("network", "inspect", "brief"))[0]["Containers"] == {}
    finally:
        daemon.cli("rm", "-f", "keeper", "b1", "b2")
    # The last bridged container gone, logship's namespace goes too, with its pasta.
    assert not namespace(daemon).exists()
    assert not list((daemon.data_root / "network" / "netns").iterdir())
    assert "brief" in daemon.ok("network", "prune", "-f") and "brief" not in daemon.ok("network", "ls")


def test_connect_and_disconnect_a_running_container(daemon: Daemon) -> None:
    since = str(int(time.time()) - 1)
    daemon.ok("network", "create", "extra")
    daemon.ok("run", "-d", "--name", "joiner", "busybox", "sleep", "600")
    daemon.ok("run", "-d", "--name", "target", "--network", "extra", *HTTPD)
    try:
        daemon.ok("network", "connect", "--alias", "late", "extra", "joiner")
        script = f"{wait_for('target')} wget -q -O- target/hostname"
        assert daemon.ok("exec", "joiner", "sh", "-c", script).strip() == daemon.inspect("target")["Id"][:12]
        networks = daemon.inspect("joiner")["NetworkSettings"]["Networks"]
        assert sorted(networks) == ["bridge", "extra"] and networks["extra"]["Aliases"] == ["late"]
        extra_id = networks["extra"]["NetworkID"]
        for value in ("extra", extra_id[:6]):
            on_extra = daemon.ok("ps", "-q", "--no-trunc", "--filter", f"network={value}").split()
            assert sorted(on_extra) == sorted(daemon.inspect(name)["Id"] for name in ("joiner", "target"))
        assert networks["extra"]["IPAddress"] in daemon.ok("exec", "joiner", "cat", "/etc/hosts")
        assert "eth1" in daemon.ok("exec", "joiner", "ls", "/sys/class/net")
        again = daemon.cli("network", "connect", "extra", "joiner")
        assert again.code == 1 and "endpoint with name joiner already exists in network extra" in again.err
        daemon.ok("network", "disconnect", "extra", "joiner")
        assert "eth1" not in daemon.ok("exec", "joiner", "ls", "/sys/class/net")
        assert sorted(daemon.inspect("joiner")["NetworkSettings"]["Networks"]) == ["bridge"]
        until = str(int(time.time()) + 1)
        template = "{{.Action}} {{.Actor.Attributes.name}}"
        events = daemon.ok(
            "events", "--since", since, "--until", until, "--filter", "network=extra", "--format", template
        )
        assert events.splitlines() == ["create extra", "connect extra", "connect extra", "disconnect extra"]
    finally:
        daemon.ok("rm", "-f", "joiner", "target")
        daemon.ok("network", "rm", "extra")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--network", "nowhere"], "network nowhere not found"),
        (["--ip", "172.17.0.9"], "user specified IP address is supported on user defined networks only"),
        (["--network-alias", "x"], "network-scoped alias is supported only for containers in user defined networks"),
        (["-p", "192.0.2.1:8080:80"], "logship publishes ports on the host's IPv4 loopback only"),
        (["-p", "80/sctp"], "invalid proto: sctp"),
    ],
    ids=["unknown network", "--ip on the default bridge", "alias on the default bridge", "remote address", "sctp"],
)
def test_what_cannot_be_done_is_a_clear_error(daemon: Daemon, args: list[str], message: str) -> None:
    result = daemon.cli("run", "--rm", *args, "busybox", "true")
    assert result.code == 125 and message in result.err and "Traceback" not in result.err


def test_network_commands_answer_as_dockerd(daemon: Daemon) -> None:
    duplicate = daemon.cli("network", "create", "bridge")
    assert duplicate.code == 1 and "network with name bridge already exists" in duplicate.err
    builtin = daemon.cli("network", "rm", "host")
    assert builtin.code == 1 and "host is a pre-defined network and cannot be removed" in builtin.err
    missing = daemon.cli("network", "inspect", "nope")
    assert missing.code == 1 and "No such network: nope" in missing.err
    daemon.ok("network", "create", "--subnet", "10.232.0.0/16", "first")
    try:
        overlap = daemon.cli("network", "create", "--subnet", "10.232.5.0/24", "second")
        assert overlap.code == 1 and "Pool overlaps with other one on this address space" in overlap.err
        listed = daemon.ok("network", "ls").splitlines()
        assert listed[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
        assert [line.split()[1] for line in listed[1:]] == ["bridge", "first", "host", "none"]
    finally:
        daemon.ok("network", "rm", "first")


@needs_docker
def test_the_docker_cli_sees_networks_as_dockerd_shows_them(daemon: Daemon) -> None:
    """Key for key against a dockerd's answers (tests/fixtures/docker-api/dockerd-keys.json)."""
    keys = json.loads((Path(__file__).parent / "fixtures/docker-api/dockerd-keys.json").read_text())["network"]
    docker_ok(daemon, "network", "create", "--label", "k=v", "shapes")
    port = free_port()
    docker_ok(daemon, "run", "-d", "--name", "shaped", "--network", "shapes", "-p", f"127.0.0.1:{port}:80", *HTTPD)
    try:
        network = json.loads(docker_ok(daemon, "network", "inspect", "shapes"))[0]
        assert sorted(network) == keys[""]
        assert sorted(network["IPAM"]) == keys["IPAM"] and sorted(network["IPAM"]["Config"][0]) == keys["IPAM.Config"]
        assert sorted(next(iter(network["Containers"].values()))) == keys["Containers.*"]
        assert docker_ok(daemon, "port", "shaped", "80").strip() == f"127.0.0.1:{port}"
        listed = docker_ok(daemon, "ps", "--format", "{{.Names}} {{.Ports}} {{.Networks}}").split()
        assert listed == ["shaped", f"127.0.0.1:{port}->80/tcp", "shapes"]
        assert fetch(port).startswith("HTTP/1.1 200 OK")
        assert docker_ok(daemon, "network", "ls", "--filter", "label=k=v", "--format", "{{.Name}}") == "shapes\n"
        docker_ok(daemon, "network", "disconnect", "shapes", "shaped")
        assert docker_ok(daemon, "inspect", "--format", "{{json .NetworkSettings.Networks}}", "shaped") == "{}\n"
        docker_ok(daemon, "restart", "-t", "0", "shaped")  # on no network, it starts on its own again (dockerd)
        networks = json.loads(docker_ok(daemon, "inspect", "--format", "{{json .NetworkSettings.Networks}}", "shaped"))
        assert sorted(networks) == ["shapes"] and networks["shapes"]["IPAddress"]
        assert fetch(port).startswith("HTTP/1.1 200 OK")
    finally:
        docker(daemon, "rm", "-f", "shaped")
        docker(daemon, "network", "rm", "shapes")


def test_docker_py_drives_the_networks_api_as_with_dockerd(daemon: Daemon) -> None:
    """docker-py's networks API: create with IPAM and labels, list filtered (each entry with the keys dockerd
    gives), connect with an alias and an address, disconnect, prune."""
    docker_sdk = pytest.importorskip("docker")
    keys = json.loads((Path(__file__).parent / "fixtures/docker-api/dockerd-keys.json").read_text())["network"]
    client = docker_sdk.DockerClient(base_url=daemon.host)
    pool = docker_sdk.types.IPAMPool(subnet="10.233.0.0/24", gateway="10.233.0.254")
    try:
        network = client.networks.create(
            "sdk", labels={"made-by": "docker-py"}, ipam=docker_sdk.types.IPAMConfig(pool_configs=[pool])
        )
        listed = client.api.networks(filters={"label": "made-by=docker-py"})
        assert [entry["Name"] for entry in listed] == ["sdk"] and sorted(listed[0]) == keys["list"]
        assert [n.name for n in client.networks.list(filters={"type": "custom", "label": "made-by"})] == ["sdk"]
        container = client.containers.run("busybox", ["sleep", "600"], detach=True, name="sdk-joiner")
        network.connect(container, aliases=["joined"], ipv4_address="10.233.0.9")
        container.reload()
        endpoint = container.attrs["NetworkSettings"]["Networks"]["sdk"]
        assert endpoint["IPAddress"] == "10.233.0.9" and endpoint["Gateway"] == "10.233.0.254"
        assert endpoint["Aliases"] == ["joined"] and endpoint["IPAMConfig"] == {"IPv4Address": "10.233.0.9"}
        network.reload()
        assert [c.name for c in network.containers] == ["sdk-joiner"]
        assert client.networks.prune(filters={"label": "made-by"})["NetworksDeleted"] is None  # in use: kept
        network.disconnect(container)
        container.reload()
        assert sorted(container.attrs["NetworkSettings"]["Networks"]) == ["bridge"]
        container.remove(force=True)
        assert client.networks.prune(filters={"label": "made-by=docker-py"})["NetworksDeleted"] == ["sdk"]
        assert client.networks.list(names=["sdk"]) == []
    finally:
        daemon.cli("rm", "-f", "sdk-joiner")
        daemon.cli("network", "rm", "sdk")
        client.close()


@pytest.mark.parametrize("kept_by", ["mounts", "holder processes"])
def test_a_daemon_killed_with_9_leaves_connectivity_in_place(tmp_path: Path, kept_by: str) -> None:
    """The namespaces are mounted files (or, as a rootless daemon keeps them, held by processes of their
    own), pasta and aardvark-dns are daemons of their own, and the bridges live in logship's namespace: none
    of them needs the daemon. A restarted daemon finds the containers' addresses and ports in their
    network.json and their networks are torn down as they end."""
    before = host_network()
    port = free_port()
    holders = {netns.HOLDER_ENV: "1"} if kept_by == "holder processes" else {}
    daemon = Daemon(tmp_path / "logship", bridge=True, extra_env=holders)
    daemon.config = {"live-restore": True}
    with daemon.started():
        daemon.ok("network", "create", "survive")
        daemon.ok("run", "-d", "--name", "web", "--network", "survive", "-p", f"127.0.0.1:{port}:80", *HTTPD)
        short_id = daemon.inspect("web")["Id"][:12]
        assert fetch(port).endswith(short_id + "\n")
        daemon.kill9()
        assert fetch(port).endswith(short_id + "\n")  # no daemon: the forwarder and the bridge still serve
        daemon.start()
        assert fetch(port).endswith(short_id + "\n")
        out = daemon.ok("run", "--rm", "--network", "survive", "busybox", "wget", "-q", "-O-", "http://web/hostname")
        assert out.strip() == short_id
        taken = daemon.cli("run", "--rm", "-p", f"127.0.0.1:{port}:80", "busybox", "true")
        assert "port is already allocated" in taken.err  # the restarted daemon knows the port is held
        daemon.ok("rm", "-f", "web")
        assert not (daemon.data_root / "network" / "netns" / "logship").exists()
    assert host_network() == before

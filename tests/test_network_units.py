"""The pure parts of networking, without namespaces: `-p` as the docker CLI parses it, port bindings and their
checks, address allocation, and /etc/hosts and /etc/resolv.conf as dockerd writes them."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from logship.cli.netflags import parse_expose, parse_publish
from logship.daemon import netfiles, ports
from logship.daemon.netattach import namespace_port
from logship.daemon.networks import NetworkStore
from logship.errors import Conflict, Forbidden, InvalidParameter


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("80", [("80/tcp", "", "")]),
        ("8080:80", [("80/tcp", "", "8080")]),
        ("127.0.0.1:8080:80/udp", [("80/udp", "127.0.0.1", "8080")]),
        ("127.0.0.1::80", [("80/tcp", "127.0.0.1", "")]),
        ("[::1]:8080:80", [("80/tcp", "::1", "8080")]),
        ("8000-8001:80-81", [("80/tcp", "", "8000"), ("81/tcp", "", "8001")]),
        ("8000-8010:80", [("80/tcp", "", "8000-8010")]),
    ],
)
def test_publish_flags_become_dockers_port_bindings(value: str, expected: list[tuple[str, str, str]]) -> None:
    assert parse_publish(value) == expected


def test_bad_publish_and_expose_flags_name_the_problem() -> None:
    with pytest.raises(click.BadParameter, match="invalid ranges"):
        parse_publish("8000-8002:80-81")
    with pytest.raises(click.BadParameter, match="invalid containerPort"):
        parse_publish("8080:http")
    assert parse_expose("90-91/udp") == ["90/udp", "91/udp"]


def test_port_bindings_are_checked_at_create() -> None:
    given = {"PortBindings": {"80": [{"HostIp": "", "HostPort": "8080"}], "53/udp": None}}
    assert ports.port_bindings(given) == {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "", "HostPort": ""}],
    }
    with pytest.raises(InvalidParameter, match=r"host's IPv4 loopback only.*-p 127\.0\.0\.1:8080:80"):
        ports.port_bindings({"PortBindings": {"80/tcp": [{"HostIp": "10.0.0.1", "HostPort": "8080"}]}})
    with pytest.raises(InvalidParameter, match="invalid hostPort: 70000"):
        ports.port_bindings({"PortBindings": {"80/tcp": [{"HostPort": "70000"}]}})


def test_resolved_bindings_use_loopback_and_skip_taken_ports() -> None:
    exposed = {"80/tcp": {}, "90/tcp": {}}
    bindings = {"80/tcp": [{"HostIp": "", "HostPort": "18080-18082"}]}
    resolved = ports.resolve(exposed, bindings, False, taken={("127.0.0.1", 18080, "tcp")})
    assert resolved == [ports.Binding(80, "tcp", "127.0.0.1", 18081)]
    assert ports.settings_ports(exposed, resolved) == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18081"}],
        "90/tcp": None,
    }
    with pytest.raises(Conflict, match=r"Bind for 127\.0\.0\.1:18080 failed: port is already allocated"):
        ports.resolve({}, {"80/tcp": [{"HostIp": "", "HostPort": "18080"}]}, False, {("127.0.0.1", 18080, "tcp")})


def test_a_namespace_port_is_never_below_its_host_port() -> None:
    binding = ports.Binding(80, "udp", "127.0.0.2", 8080)
    assert namespace_port(binding, set()) == 8080
    assert namespace_port(binding, {(8080, "udp"), (8081, "udp")}) == 8082
    assert namespace_port(binding, {(8080, "tcp")}) == 8080


def test_addresses_are_the_lowest_free_or_the_one_asked_for(tmp_path: Path) -> None:
    store = NetworkStore(tmp_path)
    network = store.create({"Name": "net", "IPAM": {"Config": [{"Subnet": "10.9.0.0/29", "Gateway": "10.9.0.6"}]}})
    assert [store.lease(network, f"c{n}") for n in range(3)] == ["10.9.0.1", "10.9.0.2", "10.9.0.3"]
    assert store.lease(network, "c3", "10.9.0.5") == "10.9.0.5"
    with pytest.raises(Conflict, match=r"Address already in use: 10\.9\.0\.5"):
        store.lease(network, "c4", "10.9.0.5")
    with pytest.raises(InvalidParameter, match="not a usable address"):
        store.lease(network, "c4", "10.9.0.6")  # the gateway
    store.release(network.id, "10.9.0.2", "c1")
    assert store.lease(network, "c5") == "10.9.0.2"
    assert store.lease(network, "c6") == "10.9.0.4"
    with pytest.raises(Conflict, match="no available IPv4 addresses"):
        store.lease(network, "c7")


def test_networks_get_free_subnets_and_refuse_overlaps(tmp_path: Path) -> None:
    store = NetworkStore(tmp_path)
    first, second = store.create({"Name": "a"}), store.create({"Name": "b"})
    assert first.subnet != second.subnet and first.subnet != "172.17.0.0/16"
    with pytest.raises(Forbidden, match="Pool overlaps"):
        store.create({"Name": "c", "IPAM": {"Config": [{"Subnet": first.subnet}]}})
    with pytest.raises(InvalidParameter, match="not a network address"):
        store.create({"Name": "d", "IPAM": {"Config": [{"Subnet": "10.1.2.3/24"}]}})
    with pytest.raises(InvalidParameter, match="user specified IP address is supported only"):
        store.lease(first, "x", "172.18.0.9")
    again = NetworkStore(tmp_path)  # definitions persist
    assert sorted(n.name for n in again.all()) == ["a", "b", "bridge", "host", "none"]


def test_etc_files_are_dockers() -> None:
    hosts = netfiles.hosts("web", "example.com", ["10.1.0.2"])
    assert hosts.endswith("ff02::2\tip6-allrouters\n10.1.0.2\tweb.example.com web\n")
    host = "search corp.example\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0 ndots:2\n"
    assert netfiles.resolv_conf([], host) == "search corp.example\nnameserver 10.0.0.2\noptions edns0 ndots:2\n"
    assert netfiles.resolv_conf([], "nameserver 127.0.0.1\n") == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    user = netfiles.resolv_conf(["10.1.0.1"], host)
    assert user == "search corp.example\nnameserver 10.1.0.1\noptions edns0 ndots:0\n"

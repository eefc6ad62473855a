"""Docker's cap-add / cap-drop rules: which capabilities a container ends up with."""

from __future__ import annotations

import pytest

from logship.errors import InvalidParameter
from logship.runtime import capabilities
from logship.runtime.capabilities import DEFAULT_CAPABILITIES
from logship.runtime.spawn import validate_capabilities


def test_without_add_or_drop_a_container_gets_dockers_fourteen_defaults() -> None:
    assert capabilities.resolve([], []) == list(DEFAULT_CAPABILITIES)
    assert len(DEFAULT_CAPABILITIES) == 14
    assert capabilities.mask_of(capabilities.numbers(DEFAULT_CAPABILITIES)) == 0xA80425FB


def test_names_are_case_insensitive_and_the_cap_prefix_is_optional() -> None:
    assert capabilities.normalize(["net_admin", "CAP_sys_time", "Cap_Syslog"]) == [
        "CAP_NET_ADMIN",
        "CAP_SYS_TIME",
        "CAP_SYSLOG",
    ]


def test_cap_add_appends_to_the_defaults_and_cap_drop_removes_from_them() -> None:
    caps = capabilities.resolve(["NET_ADMIN"], ["chown", "KILL"])
    assert caps == [c for c in DEFAULT_CAPABILITIES if c not in ("CAP_CHOWN", "CAP_KILL")] + ["CAP_NET_ADMIN"]


def test_adding_a_default_capability_does_not_list_it_twice() -> None:
    assert capabilities.resolve(["CHOWN"], []) == list(DEFAULT_CAPABILITIES)


def test_cap_add_all_means_every_known_capability_except_those_dropped() -> None:
    caps = capabilities.resolve(["ALL"], ["SYS_ADMIN"])
    assert caps == [c for c in capabilities.known_capabilities() if c != "CAP_SYS_ADMIN"]


def test_cap_drop_all_keeps_only_what_is_added() -> None:
    assert capabilities.resolve(["NET_BIND_SERVICE"], ["all"]) == ["CAP_NET_BIND_SERVICE"]
    assert capabilities.resolve([], ["ALL"]) == []


def test_add_all_wins_over_drop_all() -> None:
    assert capabilities.resolve(["ALL"], ["ALL"]) == capabilities.known_capabilities()


@pytest.mark.parametrize(
    ("cap_add", "cap_drop", "message"),
    [
        (["foo"], [], 'unknown capability: "CAP_FOO"'),
        (["CAP_ALL"], [], 'unknown capability: "CAP_ALL"'),
        ([], ["net-admin"], 'unknown capability: "CAP_NET-ADMIN"'),
        (["bad_add"], ["bad_drop"], 'unknown capability: "CAP_BAD_DROP"'),  # drops are checked first
    ],
)
def test_an_unknown_capability_is_refused_with_dockers_message(
    cap_add: list[str], cap_drop: list[str], message: str
) -> None:
    with pytest.raises(InvalidParameter) as raised:
        validate_capabilities(cap_add, cap_drop)
    assert str(raised.value) == message
    assert raised.value.status == 400


def test_only_capabilities_the_kernel_knows_are_valid() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as last_cap:
        assert len(capabilities.known_capabilities()) == int(last_cap.read()) + 1


def test_the_container_never_gets_more_than_the_daemon_holds() -> None:
    held = capabilities.bounding_set_of_this_process()
    assert set(capabilities.for_container(["ALL"], [])) == held & set(range(len(capabilities.known_capabilities())))


@pytest.mark.skipif(
    capabilities.CAPABILITY_NAMES.index("CAP_SYS_RESOURCE") in capabilities.bounding_set_of_this_process(),
    reason="this process holds CAP_SYS_RESOURCE",
)
def test_explicitly_adding_a_capability_the_daemon_lacks_is_an_error() -> None:
    with pytest.raises(InvalidParameter, match="cannot give the container CAP_SYS_RESOURCE"):
        capabilities.for_container(["SYS_RESOURCE"], [])

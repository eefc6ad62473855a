"""Docker's seccomp profile format, read as it is: which rules apply to a container (moby's rules on
capabilities and architectures), what a malformed profile is told, and that libseccomp compiles the
result. The filter's effect inside real containers is tested in tests/test_confinement.py."""

from __future__ import annotations

import json
import platform

import pytest

from logship.errors import InvalidParameter
from logship.runtime import capabilities, seccomp

DEFAULT_CAPS = frozenset(capabilities.DEFAULT_CAPABILITIES)


def default_profile() -> dict[str, object]:
    return json.loads(seccomp.default_profile_text())


def allowed_names(caps: frozenset[str]) -> set[str]:
    profile = default_profile()
    rules = seccomp._selected_rules(profile["syscalls"], caps, "amd64")  # type: ignore[arg-type]
    return {name for rule in rules if rule["action"] == "SCMP_ACT_ALLOW" for name in seccomp._names(rule)}


def test_the_shipped_default_profile_is_dockers() -> None:
    profile = default_profile()
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == 1
    assert any(entry["architecture"] == "SCMP_ARCH_X86_64" for entry in profile["archMap"])  # type: ignore[index, union-attr]


def test_capability_rules_follow_the_containers_capabilities_as_in_moby() -> None:
    default = allowed_names(DEFAULT_CAPS)
    for refused in ("mount", "unshare", "setns", "bpf", "perf_event_open", "reboot", "keyctl", "add_key", "umount2"):
        assert refused not in default
    assert {"read", "write", "execve", "clone", "socket", "chroot"} <= default  # chroot: CAP_SYS_CHROOT is default
    with_admin = allowed_names(DEFAULT_CAPS | {"CAP_SYS_ADMIN"})
    assert {"mount", "unshare", "setns", "umount2"} <= with_admin
    assert "reboot" in allowed_names(DEFAULT_CAPS | {"CAP_SYS_BOOT"})
    assert "bpf" in allowed_names(DEFAULT_CAPS | {"CAP_BPF"})
    assert "keyctl" not in allowed_names(DEFAULT_CAPS | {"CAP_SYS_ADMIN"})  # in no rule at all


def test_excluded_capabilities_drop_a_rule() -> None:
    def clone3_errno(caps: frozenset[str]) -> bool:
        rules = seccomp._selected_rules(default_profile()["syscalls"], caps, "amd64")  # type: ignore[arg-type]
        return any(rule["action"] == "SCMP_ACT_ERRNO" and "clone3" in seccomp._names(rule) for rule in rules)

    assert clone3_errno(DEFAULT_CAPS)  # ENOSYS, so that libc falls back to clone
    assert not clone3_errno(DEFAULT_CAPS | {"CAP_SYS_ADMIN"})


def test_arch_rules_apply_to_their_architecture_only() -> None:
    profile = default_profile()["syscalls"]
    amd64 = {n for rule in seccomp._selected_rules(profile, DEFAULT_CAPS, "amd64") for n in seccomp._names(rule)}  # type: ignore[arg-type]
    arm64 = {n for rule in seccomp._selected_rules(profile, DEFAULT_CAPS, "arm64") for n in seccomp._names(rule)}  # type: ignore[arg-type]
    assert "arch_prctl" in amd64 and "arch_prctl" not in arm64


@pytest.mark.skipif(platform.machine() not in seccomp.NATIVE_SCMP_ARCH, reason="libseccomp arch unknown here")
def test_the_default_profile_compiles_to_a_bpf_program_once_per_capability_set() -> None:
    text = seccomp.default_profile_text()
    program, flags = seccomp.compile_profile(text, DEFAULT_CAPS)
    assert flags == 0 and len(program) % 8 == 0 and len(program) > 8 * 100
    assert seccomp.compile_profile(text, DEFAULT_CAPS)[0] is program  # cached
    assert seccomp.compile_profile(text, DEFAULT_CAPS | {"CAP_SYS_ADMIN"})[0] != program


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ("{not json", "Decoding seccomp profile failed"),
        ("[]", "must be a JSON object"),
        ('{"defaultAction": "SCMP_ACT_NOPE"}', "'SCMP_ACT_NOPE' is not a seccomp action"),
        (
            '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "ALLOW"}]}',
            "syscalls[0].action",
        ),
        ('{"defaultAction": "SCMP_ACT_ALLOW", "colour": 1}', "unknown field 'colour'"),
        ('{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"], "archMap": [{}]}', "use either"),
        (
            '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO", '
            '"args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}',
            "'index' must be 0 to 5",
        ),
        ('{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"}', "SCMP_ACT_NOTIFY"),
    ],
)
def test_a_bad_profile_is_refused_naming_the_field(profile: str, message: str) -> None:
    with pytest.raises(InvalidParameter, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        seccomp.check_profile(profile)


def test_a_users_small_profile_compiles_with_args_and_errno() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}],
            },
            {"names": ["no_such_call_anywhere"], "action": "SCMP_ACT_ERRNO"},
        ],
    }
    program, _ = seccomp.compile_profile(json.dumps(profile), DEFAULT_CAPS)
    assert len(program) > 0

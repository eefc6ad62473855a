"""The create fields that confine a container, checked as dockerd checks them: Config.User,
HostConfig.GroupAdd, SecurityOpt, Ulimits, ShmSize, ReadonlyRootfs, Init and Privileged.

`--security-opt` takes Docker's values: `no-new-privileges[=true|false]`, `seccomp=unconfined`,
`seccomp=builtin` (the default profile), and `seccomp=<profile JSON>` (the docker CLI reads a profile
file and sends its JSON; docker-py sends what it is given). logship has no AppArmor and no SELinux:
`apparmor=unconfined` and `label=disable` say what is already true and are accepted; any other
AppArmor profile or SELinux label is refused rather than silently not applied.

Where logship differs on purpose: no_new_privs is on unless `no-new-privileges=false` is given
(dockerd's default is off), because a container can otherwise regain privileges through a setuid
binary of its image.
"""

from __future__ import annotations

import re
from typing import Any

from logship import ulimits
from logship.errors import InvalidParameter
from logship.runtime.seccomp import check_profile

ULIMIT_NAMES = ulimits.NAMES
DEFAULT_SHM_SIZE = 64 * 1024 * 1024  # dockerd's, shown in inspect when none was asked for
_USER_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$")


def check_user(user: str) -> str:
    """`name|uid[:group|gid]`; the names are looked up in the image's files at start."""
    name, sep, group = user.partition(":")
    for part, what in ((name, "user"), (group, "group")):
        if part and not _USER_PART.fullmatch(part):
            raise InvalidParameter(f"invalid {what} {part!r} in --user {user!r}: use a name or a number")
    if sep and not group:
        raise InvalidParameter(f"invalid --user {user!r}: a group must follow the ':'")
    return user


def check_group_add(groups: list[str]) -> list[str]:
    for group in groups:
        if not _USER_PART.fullmatch(group):
            raise InvalidParameter(f"invalid --group-add {group!r}: use a group name or a number")
    return groups


def check_ulimits(value: Any) -> list[dict[str, Any]]:
    """HostConfig.Ulimits: [{"Name", "Soft", "Hard"}] with units.ParseUlimit's rules."""
    if not value:
        return []
    if not isinstance(value, list):
        raise InvalidParameter(f"invalid HostConfig.Ulimits: expected a list, got {value!r}")
    result = []
    seen = set()
    for item in value:
        if not isinstance(item, dict):
            raise InvalidParameter(f"invalid ulimit {item!r}: expected an object with Name, Soft and Hard")
        name, soft, hard = item.get("Name"), item.get("Soft"), item.get("Hard")
        if name not in ULIMIT_NAMES:
            raise InvalidParameter(f"invalid ulimit type: {name} (known: {', '.join(ULIMIT_NAMES)})")
        for limit in (soft, hard):
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < -1:
                raise InvalidParameter(
                    f"invalid ulimit {name}: limits must be integers (-1 for unlimited), got {limit!r}"
                )
        assert isinstance(soft, int) and isinstance(hard, int)
        if hard != -1 and (soft == -1 or soft > hard):
            raise InvalidParameter(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        if name in seen:
            raise InvalidParameter(f"ulimit {name} is given twice")
        seen.add(name)
        result.append({"Name": name, "Hard": hard, "Soft": soft})
    return result


def parse_security_opts(options: list[str]) -> dict[str, Any]:
    """What the runtime makes of SecurityOpt: {"no_new_privs": bool, "seccomp": "default" | "unconfined"
    | <profile JSON>}. dockerd's messages for malformed entries."""
    result: dict[str, Any] = {"no_new_privs": True, "seccomp": "default"}
    for option in options:
        if option == "no-new-privileges":
            result["no_new_privs"] = True
            continue
        if option == "disable":
            continue  # the old spelling of label=disable
        if "=" in option:
            key, _, value = option.partition("=")
        elif ":" in option:
            key, _, value = option.partition(":")
        else:
            raise InvalidParameter(
                f"invalid --security-opt 1: {option!r}: use no-new-privileges, seccomp=unconfined or seccomp=<profile>"
            )
        if key == "no-new-privileges":
            if value.lower() not in ("1", "t", "true", "0", "f", "false"):
                raise InvalidParameter(f"invalid --security-opt 2: {option!r}: no-new-privileges takes true or false")
            result["no_new_privs"] = value.lower() in ("1", "t", "true")
        elif key == "seccomp":
            if value in ("unconfined", "builtin", ""):
                result["seccomp"] = "unconfined" if value == "unconfined" else "default"
            else:
                check_profile(value)
                result["seccomp"] = value
        elif key == "apparmor":
            if value != "unconfined":
                raise InvalidParameter(
                    f"--security-opt {option!r}: logship does not use AppArmor, so no AppArmor profile can be applied "
                    "(apparmor=unconfined is accepted)"
                )
        elif key == "label":
            if value != "disable":
                raise InvalidParameter(
                    f"--security-opt {option!r}: logship does not use SELinux, so no label can be applied "
                    "(label=disable is accepted)"
                )
        else:
            raise InvalidParameter(
                f"invalid --security-opt 2: {option!r}: logship knows no-new-privileges, seccomp, apparmor and label"
            )
    return result


def check_shm_size(value: Any) -> int:
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidParameter("SHM size can not be less than 0")
    return value


def security_host_config(host_config: dict[str, Any], security_opt: list[str]) -> dict[str, Any]:
    """The confining HostConfig fields, normalized for the record (and inspect) as dockerd shows them."""
    privileged = bool(host_config.get("Privileged"))
    parse_security_opts(security_opt)  # refused here, at create, not at start
    group_add = host_config.get("GroupAdd") or []
    if not isinstance(group_add, list) or not all(isinstance(group, str) for group in group_add):
        raise InvalidParameter(f"invalid HostConfig.GroupAdd: expected a list of strings, got {group_add!r}")
    init = host_config.get("Init")
    return {
        "Privileged": privileged,
        "ReadonlyRootfs": bool(host_config.get("ReadonlyRootfs")),
        "SecurityOpt": security_opt or None,
        "GroupAdd": check_group_add(group_add) or None,
        "Ulimits": check_ulimits(host_config.get("Ulimits")) or None,
        "ShmSize": check_shm_size(host_config.get("ShmSize")) or DEFAULT_SHM_SIZE,
        "Init": None if init is None else bool(init),
    }

"""local's options: unknown keys fail at create, bad values at start, with the texts of Docker's local
driver (which differ from json-file's); defaults 20 MiB x 5 files, compressed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from logship.drivers import local, registry
from logship.drivers.local.options import rotation_of
from logship.drivers.options import validate
from logship.drivers.util.logfile import Rotation
from logship.errors import InvalidParameter
from logship.pipeline.info import ContainerInfo

MIB = 1024 * 1024


def start_error(opts: dict[str, str], tmp_path: Path) -> str:
    info = ContainerInfo("f" * 64, "/c", config=opts, container_dir=str(tmp_path))
    with pytest.raises(InvalidParameter) as caught:
        asyncio.run(local.new(info))
    return str(caught.value)


def test_the_registry_serves_local_as_a_factory() -> None:
    assert "local" in registry.names()
    factory = registry.get("local")
    assert factory is local and factory.name == "local"


def test_every_documented_key_is_accepted_at_create() -> None:
    local.validate_options(
        {
            "max-file": "3",
            "max-size": "10m",
            "compress": "false",
            "tag": "{{.Name}}",
            "labels": "a,b",
            "labels-regex": "^a",
            "env": "A",
            "env-regex": "^A",
        }
    )


def test_an_unknown_key_is_refused_at_create_with_the_local_drivers_own_wording() -> None:
    with pytest.raises(InvalidParameter, match=r"^unknown log opt 'foo' for log driver local$"):
        local.validate_options({"foo": "1"})
    with pytest.raises(InvalidParameter, match=r"^unknown log opt 'fluentd-address' for log driver local$"):
        validate("local", {"mode": "non-blocking", "fluentd-address": "x"})


def test_the_common_options_reach_local_through_the_shared_validation() -> None:
    validate("local", {"mode": "non-blocking", "max-buffer-size": "4m", "max-size": "1m", "cache-disabled": "true"})


def test_values_are_not_checked_at_create() -> None:
    local.validate_options({"max-size": "abc", "max-file": "-3", "compress": "maybe"})


def test_defaults_are_20_mib_five_files_compressed() -> None:
    assert rotation_of({}) == Rotation(max_size=20 * MIB, max_files=5, compress=True)
    assert rotation_of({}) == local.DEFAULT_ROTATION


@pytest.mark.parametrize(
    ("opts", "rotation"),
    [
        ({"max-size": "10m"}, Rotation(10_000_000, 5, True)),  # decimal units, as json-file
        ({"max-size": "1k", "max-file": "2"}, Rotation(1000, 2, True)),
        ({"max-file": "1", "compress": "false"}, Rotation(20 * MIB, 1, False)),
        ({"max-file": "0", "compress": "false"}, Rotation(20 * MIB, 1, False)),
        ({"max-size": "0"}, Rotation(-1, 5, True)),  # no rotation
        ({"max-file": "+7", "compress": "1"}, Rotation(20 * MIB, 7, True)),
    ],
)
def test_values_are_parsed_as_docker_parses_them(opts: dict[str, str], rotation: Rotation) -> None:
    assert rotation_of(opts) == rotation


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"max-size": "abc"}, "invalid value for max-size: abc: invalid size: 'abc'"),
        ({"max-size": "-1"}, "invalid value for max-size: -1: invalid size: '-1'"),
        ({"max-file": "x"}, 'invalid value for max-file: x: strconv.Atoi: parsing "x": invalid syntax'),
        ({"max-file": ""}, 'invalid value for max-file: : strconv.Atoi: parsing "": invalid syntax'),
        (
            {"max-file": "99999999999999999999"},
            'invalid value for max-file: 99999999999999999999: strconv.Atoi: parsing "99999999999999999999": '
            "value out of range",
        ),
        (
            {"compress": "maybe"},
            'invalid boolean value for compress: strconv.ParseBool: parsing "maybe": invalid syntax',
        ),
        ({"max-file": "-1", "compress": "false"}, "max-file must not be negative"),
        ({"max-file": "1"}, "compression cannot be enabled when max file count is 1"),
        ({"max-file": "0"}, "compression cannot be enabled when max file count is 1"),
        ({"max-file": "-1"}, "max-file must not be negative"),  # checked before compression
        ({"max-size": "abc", "max-file": "x"}, "invalid value for max-size: abc: invalid size: 'abc'"),
        ({"labels-regex": "("}, "invalid labels-regex '(': missing ), unterminated subpattern at position 0"),
    ],
)
def test_bad_values_fail_at_start_with_dockers_texts(opts: dict[str, str], message: str, tmp_path: Path) -> None:
    assert start_error(opts, tmp_path) == message
    assert not (tmp_path / "local-logs").exists()


def test_a_container_without_a_directory_is_refused_with_a_clear_error() -> None:
    info = ContainerInfo("f" * 64, "/c")
    with pytest.raises(InvalidParameter, match=r"container_dir is empty"):
        asyncio.run(local.new(info))

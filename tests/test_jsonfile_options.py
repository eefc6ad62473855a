"""json-file's options: unknown keys fail at create, bad values at start, with Docker's texts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from logship.drivers import jsonfile, registry
from logship.drivers.jsonfile.options import rotation_of
from logship.drivers.options import validate
from logship.drivers.util.logfile import Rotation
from logship.errors import InvalidParameter
from logship.pipeline.info import ContainerInfo


def start(opts: dict[str, str], tmp_path: Path) -> None:
    info = ContainerInfo("f" * 64, "/c", config=opts, log_path=str(tmp_path / "c-json.log"))

    async def scenario() -> None:
        driver = await jsonfile.new(info)
        await driver.close()

    asyncio.run(scenario())


def start_error(opts: dict[str, str], tmp_path: Path) -> str:
    with pytest.raises(InvalidParameter) as caught:
        start(opts, tmp_path)
    return str(caught.value)


def test_the_registry_serves_json_file_as_a_factory() -> None:
    factory = registry.get("json-file")
    assert factory.name == "json-file"
    assert factory is jsonfile


def test_every_documented_key_is_accepted_at_create() -> None:
    jsonfile.validate_options(
        {
            "max-file": "3",
            "max-size": "10m",
            "compress": "true",
            "tag": "{{.Name}}",
            "labels": "a,b",
            "labels-regex": "^a",
            "env": "A",
            "env-regex": "^A",
        }
    )


def test_an_unknown_key_is_refused_at_create_with_dockers_text() -> None:
    with pytest.raises(InvalidParameter, match=r"^unknown log opt 'foo' for json-file log driver$"):
        jsonfile.validate_options({"foo": "1"})


def test_the_common_options_reach_json_file_through_the_shared_validation() -> None:
    validate("json-file", {"mode": "non-blocking", "max-buffer-size": "4m", "max-size": "1m"})


def test_values_are_not_checked_at_create() -> None:
    jsonfile.validate_options({"max-size": "abc", "max-file": "-3", "compress": "maybe"})


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"max-size": "abc"}, "invalid size: 'abc'"),
        ({"max-size": "-1"}, "invalid size: '-1'"),
        ({"max-size": "0"}, "max-size must be a positive number"),
        ({"max-file": "0"}, "max-file cannot be less than 1"),
        ({"max-file": "x"}, 'strconv.Atoi: parsing "x": invalid syntax'),
        ({"max-file": " 2"}, 'strconv.Atoi: parsing " 2": invalid syntax'),
        ({"compress": "maybe"}, 'strconv.ParseBool: parsing "maybe": invalid syntax'),
        (
            {"compress": "true", "max-size": "1m"},
            "compress cannot be true when max-file is less than 2 or max-size is not set",
        ),
        (
            {"compress": "true", "max-file": "3"},
            "compress cannot be true when max-file is less than 2 or max-size is not set",
        ),
    ],
)
def test_bad_values_fail_the_start_with_dockers_text(opts: dict[str, str], message: str, tmp_path: Path) -> None:
    assert start_error(opts, tmp_path) == message
    assert not (tmp_path / "c-json.log").exists()


def test_a_bad_tag_template_fails_the_start() -> None:
    with pytest.raises(InvalidParameter, match=r"unknown field \.Nope"):
        start({"tag": "{{.Nope}}"}, Path("/nonexistent"))


def test_a_bad_labels_regex_fails_the_start_naming_the_option(tmp_path: Path) -> None:
    assert "labels-regex" in start_error({"labels-regex": "("}, tmp_path)


def test_max_size_is_decimal() -> None:
    assert rotation_of({"max-size": "1k"}).max_size == 1000
    assert rotation_of({"max-size": "10m"}).max_size == 10_000_000
    assert rotation_of({"max-size": "1KiB"}).max_size == 1000


def test_defaults_never_rotate() -> None:
    assert rotation_of({}) == Rotation(max_size=-1, max_files=1, compress=False)


def test_compress_false_is_fine_without_rotation() -> None:
    assert rotation_of({"compress": "false"}).compress is False


def test_a_full_rotation_setting() -> None:
    assert rotation_of({"max-size": "1m", "max-file": "+3", "compress": "1"}) == Rotation(1_000_000, 3, True)

"""daemon.json and daemon flags: Docker's keys, and every mistake named with what to do about it."""

from __future__ import annotations

from pathlib import Path

import pytest

from logship.settings import Flags, SettingsError, load


def config(tmp_path: Path, text: str) -> Flags:
    path = tmp_path / "daemon.json"
    path.write_text(text)
    return Flags(config_file=str(path), data_root=None if "data-root" in text else str(tmp_path / "root"))


def test_defaults_are_json_file_info_level_and_a_socket(tmp_path: Path) -> None:
    settings = load(config(tmp_path, "{}"))
    assert settings.log_driver == "json-file"
    assert settings.log_opts == {}
    assert settings.log_level == "info"
    assert settings.daemon_log_path == tmp_path / "root" / "daemon.log"
    assert settings.hosts and settings.hosts[0].startswith("unix://")


def test_docker_keys_are_read(tmp_path: Path) -> None:
    settings = load(
        config(
            tmp_path,
            f"""{{
        "log-driver": "json-file",
        "log-opts": {{"max-size": "10m", "max-file": "3", "mode": "non-blocking", "max-buffer-size": "4m"}},
        "log-level": "debug",
        "data-root": "{tmp_path}/data",
        "hosts": ["unix://{tmp_path}/s.sock"]
    }}""",
        )
    )
    assert settings.log_opts["max-file"] == "3"
    assert settings.log_level == "debug"
    assert settings.data_root == tmp_path / "data"
    assert settings.hosts == [f"unix://{tmp_path}/s.sock"]


def test_malformed_json_names_the_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"line 3 column 5"):
        load(config(tmp_path, '{\n  "log-level": "info",\n    oops\n}'))


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"don't match any configuration option: log-drivr"):
        load(config(tmp_path, '{"log-drivr": "json-file"}'))


def test_log_opts_values_must_be_strings_as_in_docker(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"'max-file'.*must be strings.*\"max-file\": \"3\""):
        load(config(tmp_path, '{"log-opts": {"max-file": 3}}'))


def test_a_key_given_as_flag_and_in_the_file_is_an_error(tmp_path: Path) -> None:
    flags = config(tmp_path, '{"log-level": "warn"}')
    flags.log_level = "debug"
    with pytest.raises(SettingsError, match=r"both as a flag and in the configuration file: log-level"):
        load(flags)


def test_bad_log_level_uses_dockers_text(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"invalid logging level: loud"):
        load(config(tmp_path, '{"log-level": "loud"}'))


def test_unknown_driver_and_unknown_opt_stop_the_daemon_with_dockers_texts(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError, match=r"failed to set log opts: logger: no log driver named 'nope' is registered"
    ):
        load(config(tmp_path, '{"log-driver": "nope"}'))
    with pytest.raises(SettingsError, match=r"unknown log opt 'max-sise' for json-file log driver"):
        load(config(tmp_path, '{"log-opts": {"max-sise": "1m"}}'))
    with pytest.raises(SettingsError, match=r"max-buffer-size option is only supported with 'mode=non-blocking'"):
        load(config(tmp_path, '{"log-opts": {"max-buffer-size": "1m"}}'))


def test_an_explicit_config_file_that_is_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"unable to read configuration file .*nope.json"):
        load(Flags(config_file=str(tmp_path / "nope.json"), data_root=str(tmp_path)))


def test_wrong_types_are_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"invalid value for 'live-restore'.*expected true or false"):
        load(config(tmp_path, '{"live-restore": "yes"}'))

"""`docker import --change`: the Dockerfile instructions logship honours (CMD, ENTRYPOINT, ENV, LABEL,
WORKDIR) applied to an image's container config, with Docker's word splitting and variable expansion."""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any

from logship.errors import InvalidParameter

# ---------------------------------------------------------------------------------------------------------
# `--change`: the Dockerfile instructions `docker import` accepts that logship honours.
# ---------------------------------------------------------------------------------------------------------

SUPPORTED_CHANGES = ("CMD", "ENTRYPOINT", "ENV", "LABEL", "WORKDIR")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_]+")


def apply_changes(container_config: dict[str, Any], changes: Sequence[str]) -> None:
    """Apply `--change` instructions, in order, to the "config" part of an image config.

    Variables in ENV, LABEL and WORKDIR expand from the ENV set so far, as in a Dockerfile; CMD and
    ENTRYPOINT take the JSON form (`["a","b"]`) or the shell form (run by `/bin/sh -c`).
    """
    cmd_set = False
    for change in changes:
        match = re.match(r"\s*(\S+)\s*(.*?)\s*$", change, re.DOTALL)
        if match is None:
            continue  # a blank change, as an empty Dockerfile line, does nothing
        keyword, rest = match.group(1).upper(), match.group(2)
        if keyword not in SUPPORTED_CHANGES:
            raise InvalidParameter(
                f"{keyword.lower()} is not a valid change command: logship supports {', '.join(SUPPORTED_CHANGES)}"
            )
        if not rest:
            raise InvalidParameter(f"{keyword} requires at least one argument")
        env = _env_as_mapping(container_config.get("Env") or [])
        if keyword == "CMD":
            container_config["Cmd"] = _command(keyword, rest)
            cmd_set = True
        elif keyword == "ENTRYPOINT":
            container_config["Entrypoint"] = _command(keyword, rest)
            if not cmd_set:
                container_config["Cmd"] = None  # an image's CMD belongs to its old entrypoint
        elif keyword == "ENV":
            for name, value in _name_values(keyword, rest, env):
                _set_env(container_config, name, value)
        elif keyword == "LABEL":
            labels = dict(container_config.get("Labels") or {})
            labels.update(_name_values(keyword, rest, env))
            container_config["Labels"] = labels
        else:
            container_config["WorkingDir"] = _working_dir(
                container_config.get("WorkingDir") or "", _expand_word(rest, env)
            )


def _command(keyword: str, rest: str) -> list[str]:
    if rest.startswith("["):
        try:
            value, _ = json.JSONDecoder().raw_decode(rest)
        except ValueError:
            value = None  # not JSON after all: the shell form, as Docker treats it
        if isinstance(value, list):
            if not all(isinstance(item, str) for item in value):
                raise InvalidParameter(
                    f"{keyword}: when using JSON array syntax, arrays must be comprised of strings only"
                )
            return value
    return ["/bin/sh", "-c", rest]


def _env_as_mapping(env: Sequence[str]) -> dict[str, str]:
    pairs = (entry.partition("=") for entry in env)
    return {name: value for name, _, value in pairs}


def _set_env(container_config: dict[str, Any], name: str, value: str) -> None:
    env = list(container_config.get("Env") or [])
    entry = f"{name}={value}"
    for index, existing in enumerate(env):
        if existing.partition("=")[0] == name:
            env[index] = entry
            break
    else:
        env.append(entry)
    container_config["Env"] = env


def _name_values(keyword: str, rest: str, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """`NAME=value ...` pairs, or the old one-pair form `NAME value with spaces`."""
    words = _split_words(rest)
    if "=" not in words[0]:
        pieces = rest.split(None, 1)
        if len(pieces) < 2:
            raise InvalidParameter(f"{keyword} must have two arguments: {keyword} NAME=value")
        return [(_expand_word(pieces[0], env), _expand_word(pieces[1], env))]
    pairs = []
    for word in words:
        if "=" not in word:
            raise InvalidParameter(f'Syntax error - can\'t find = in "{word}". Must be of the form: name=value')
        name, _, value = word.partition("=")
        name = _expand_word(name, env)
        if not name:
            raise InvalidParameter(f"{keyword} names can not be blank")
        pairs.append((name, _expand_word(value, env)))
    return pairs


def _split_words(text: str) -> list[str]:
    """Split at unquoted whitespace, keeping quotes and backslashes for _expand_word to interpret."""
    words: list[str] = []
    word = ""
    quote = ""
    quoted = False  # a word made only of quotes ("") is still a word
    index = 0
    while index < len(text):
        char = text[index]
        index += 1
        if quote:
            if char == "\\" and quote == '"' and index < len(text):
                word += char + text[index]
                index += 1
                continue
            if char == quote:
                quote = ""
            word += char
        elif char.isspace():
            if word or quoted:
                words.append(word)
            word, quoted = "", False
        elif char == "\\":
            if index < len(text):
                word += char + text[index]
                index += 1
        else:
            if char in "'\"":
                quote, quoted = char, True
            word += char
    if word or quoted:
        words.append(word)
    return words


def _expand_word(text: str, env: Mapping[str, str]) -> str:
    """One shell word as a Dockerfile reads it: quotes removed, backslash escapes applied and
    `$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME:+alternative}` replaced; whitespace is kept."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            out.append(text[index + 1 : index + 2])
            index += 2
        elif char == "'":
            end = text.find("'", index + 1)
            if end < 0:
                raise InvalidParameter(
                    f"unexpected end of statement while looking for matching single-quote in {text!r}"
                )
            out.append(text[index + 1 : end])
            index = end + 1
        elif char == '"':
            index += 1
            while True:
                if index >= len(text):
                    raise InvalidParameter(
                        f"unexpected end of statement while looking for matching double-quote in {text!r}"
                    )
                char = text[index]
                if char == '"':
                    index += 1
                    break
                if char == "\\" and text[index + 1 : index + 2] in ('"', "$", "\\"):
                    out.append(text[index + 1])
                    index += 2
                elif char == "$":
                    value, index = _expand_variable(text, index, env)
                    out.append(value)
                else:
                    out.append(char)
                    index += 1
        elif char == "$":
            value, index = _expand_variable(text, index, env)
            out.append(value)
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _expand_variable(text: str, dollar: int, env: Mapping[str, str]) -> tuple[str, int]:
    """The value of the variable written at text[dollar:] and the index just after it."""
    if text.startswith("{", dollar + 1):
        end = text.find("}", dollar + 2)
        if end < 0:
            raise InvalidParameter(f"missing '}}' in {text!r}")
        body = text[dollar + 2 : end]
        name_match = _NAME_CHARS.match(body)
        name = name_match.group() if name_match else ""
        modifier, word = body[len(name) : len(name) + 2], body[len(name) + 2 :]
        if not name or (modifier and modifier not in (":-", ":+")) or (len(body) > len(name) and not modifier):
            raise InvalidParameter(
                f"bad substitution ${{{body}}} in {text!r}: use $NAME, ${{NAME:-default}} or ${{NAME:+alternative}}"
            )
        value = env.get(name, "")
        if modifier == ":-" and not value:
            value = _expand_word(word, env)
        elif modifier == ":+":
            value = _expand_word(word, env) if value else ""
        return value, end + 1
    match = _NAME_CHARS.match(text, dollar + 1)
    if match is None:
        return "$", dollar + 1  # a lone dollar sign is literal
    return env.get(match.group(), ""), match.end()


def _working_dir(current: str, requested: str) -> str:
    """Docker resolves a relative WORKDIR against the previous one."""
    if requested.startswith("/"):
        return requested
    cleaned = posixpath.normpath(posixpath.join("/", current, requested))
    return "/" + cleaned.lstrip("/")

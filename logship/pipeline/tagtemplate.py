"""Docker's log tag templates (`--log-opt tag='{{.Name}}/{{.ID}}'`), rendered safely.

Docker runs the tag as a Go text/template over its `logger.Info`. This is a small interpreter for the
part of that language tags use: literal text and `{{ ... }}` actions holding pipelines (`a | f x`, the
value on the left becoming the last argument on the right), parentheses, string and integer literals,
comments and the `{{-`/`-}}` whitespace trimming. It can reach only the whitelisted fields below and
call only Docker's template functions: no attribute access, no code execution, and the output is
capped, so a template cannot expand into something huge.

Values follow Go's types and printing: strings, ints, lists (`[a b]`), maps (`map[k:v]`), and the
missing-key value `<no value>`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from logship.errors import InvalidParameter
from logship.pipeline.info import ContainerInfo

DEFAULT_TEMPLATE = "{{.ID}}"
MAX_OUTPUT = 4096  # characters of rendered tag
_MAX_VALUE = 1 << 20  # characters of any intermediate string
_MAX_DEPTH = 32  # nested parentheses


class _NoValue:
    """What Go yields for a missing map key reached as a field (`.ContainerLabels.absent`)."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()

Value: TypeAlias = str | int | list[str] | dict[str, str] | _NoValue

_FIELDS: dict[str, Callable[[ContainerInfo], Value]] = {
    # Docker's accessor methods.
    "ID": lambda info: info.id(),
    "FullID": lambda info: info.full_id(),
    "Name": lambda info: info.name(),
    "ImageID": lambda info: info.short_image_id(),
    "ImageFullID": lambda info: info.image_id,
    "ImageName": lambda info: info.image_name,
    "Command": lambda info: info.command(),
    "Hostname": lambda info: info.hostname(),
    "DaemonName": lambda info: info.daemon_name,
    # Docker's raw Info fields.
    "ContainerID": lambda info: info.container_id,
    "ContainerName": lambda info: info.container_name,
    "ContainerImageID": lambda info: info.image_id,
    "ContainerImageName": lambda info: info.image_name,
    "ContainerEntrypoint": lambda info: info.entrypoint,
    "ContainerArgs": lambda info: list(info.args),
    "ContainerEnv": lambda info: list(info.env),
    "ContainerLabels": lambda info: dict(info.labels),
    "LogPath": lambda info: info.log_path,
}


class TemplateError(Exception):
    """What was wrong with a template; `render_tag` reports it as InvalidParameter."""


# The parsed template: text and actions.


@dataclass(frozen=True)
class _Field:
    names: tuple[str, ...]  # ".ContainerLabels.key" -> ("ContainerLabels", "key")


@dataclass(frozen=True)
class _Literal:
    value: str | int


@dataclass(frozen=True)
class _Function:
    name: str


@dataclass(frozen=True)
class _Command:
    operands: tuple[_Node, ...]  # a function and its arguments, or a single value


@dataclass(frozen=True)
class _Pipeline:
    commands: tuple[_Command, ...]


_Node: TypeAlias = _Field | _Literal | _Function | _Pipeline


def render_tag(template: str, info: ContainerInfo) -> str:
    """The tag for this container; InvalidParameter naming the problem and the template if it is bad."""
    try:
        return _render(_Parser(template).parse(), info)
    except TemplateError as err:
        raise InvalidParameter(f"invalid tag template {_quote(template)}: {err}") from None


def validate_template(template: str) -> None:
    """Check a template's syntax, fields and function names without rendering it (InvalidParameter)."""
    try:
        _Parser(template).parse()
    except TemplateError as err:
        raise InvalidParameter(f"invalid tag template {_quote(template)}: {err}") from None


def _render(parts: Sequence[str | _Pipeline], info: ContainerInfo) -> str:
    out: list[str] = []
    length = 0
    for part in parts:
        text = part if isinstance(part, str) else _print(_run(part, info))
        length += len(text)
        if length > MAX_OUTPUT:
            raise TemplateError(f"the tag would be longer than {MAX_OUTPUT} characters")
        out.append(text)
    return "".join(out)


# Parsing.

_SPACE = " \t\r\n"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FIELD_CHAIN = re.compile(r"(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_NUMBER = re.compile(r"[+-]?[0-9]+(?![0-9A-Za-z_.])")
_KEYWORDS = frozenset(
    {
        "if",
        "else",
        "end",
        "range",
        "with",
        "define",
        "template",
        "block",
        "break",
        "continue",
        "nil",
        "true",
        "false",
    }
)


class _Parser:
    def __init__(self, template: str) -> None:
        self.text = template
        self.pos = 0

    def parse(self) -> list[str | _Pipeline]:
        parts: list[str | _Pipeline] = []
        text = self.text
        while True:
            opening = text.find("{{", self.pos)
            if opening < 0:
                parts.append(text[self.pos :])
                return [part for part in parts if part != ""]
            literal = text[self.pos : opening]
            self.pos = opening + 2
            if self._trim_marker_here():
                literal = literal.rstrip(_SPACE)
                self.pos += 1
            parts.append(literal)
            action = self._action()
            if action is not None:
                parts.append(action)

    def _trim_marker_here(self) -> bool:
        # "{{- " trims the text before; "{{-3}}" is the number -3.
        text, pos = self.text, self.pos
        return text.startswith("-", pos) and pos + 1 < len(text) and text[pos + 1] in _SPACE

    def _action(self) -> _Pipeline | None:
        self._skip_space()
        if self.text.startswith("/*", self.pos):
            self._comment()
            return None
        pipeline = self._pipeline(depth=0)
        if not self._close_action():
            raise TemplateError(f"unexpected {self._describe_here()} in action")
        return pipeline

    def _comment(self) -> None:
        end = self.text.find("*/", self.pos + 2)
        if end < 0:
            raise TemplateError("unclosed comment")
        self.pos = end + 2
        if not self._close_action(allow_space=False):
            raise TemplateError("comment ends before closing delimiter")

    def _close_action(self, allow_space: bool = True) -> bool:
        """Consume the closing delimiter (with its trim marker) if it is next."""
        start = self.pos
        if allow_space:
            self._skip_space()
        text, pos = self.text, self.pos
        if text.startswith("}}", pos):
            self.pos = pos + 2
            return True
        if text.startswith(" -}}", pos) or (text.startswith("-}}", pos) and pos > 0 and text[pos - 1] in _SPACE):
            self.pos = text.index("}}", pos) + 2
            while self.pos < len(text) and text[self.pos] in _SPACE:
                self.pos += 1
            return True
        if pos >= len(text):
            raise TemplateError("unclosed action (missing }})")
        self.pos = start
        return False

    def _skip_space(self) -> None:
        text = self.text
        while self.pos < len(text) and text[self.pos] in _SPACE:
            self.pos += 1

    def _at_pipeline_end(self) -> bool:
        text, pos = self.text, self.pos
        if pos >= len(text):
            raise TemplateError("unclosed action (missing }})")
        return text.startswith(("}}", ")", "|", "-}}"), pos)

    def _pipeline(self, depth: int) -> _Pipeline:
        if depth > _MAX_DEPTH:
            raise TemplateError(f"more than {_MAX_DEPTH} nested parentheses")
        commands = [self._command(depth)]
        while self.text.startswith("|", self.pos):
            self.pos += 1
            commands.append(self._command(depth))
        return _Pipeline(tuple(commands))

    def _command(self, depth: int) -> _Command:
        operands: list[_Node] = []
        while True:
            self._skip_space()
            if self._at_pipeline_end():
                break
            operands.append(self._operand(depth))
        if not operands:
            raise TemplateError("missing value for command")
        return _Command(tuple(operands))

    def _operand(self, depth: int) -> _Node:
        text, pos = self.text, self.pos
        char = text[pos]
        if char == "(":
            self.pos += 1
            inner = self._pipeline(depth + 1)
            self._skip_space()
            if not text.startswith(")", self.pos):
                raise TemplateError(f"unclosed left paren, found {self._describe_here()}")
            self.pos += 1
            return inner
        if char == '"':
            return _Literal(self._quoted_string())
        if char == "`":
            end = text.find("`", pos + 1)
            if end < 0:
                raise TemplateError("unterminated raw quoted string")
            self.pos = end + 1
            return _Literal(text[pos + 1 : end])
        number = _NUMBER.match(text, pos)
        if number:
            self.pos = number.end()
            return _Literal(int(number.group()))
        if char == ".":
            chain = _FIELD_CHAIN.match(text, pos)
            if not chain:
                raise TemplateError(
                    '"." on its own (the whole container info) is not supported; use a field such as .ID'
                )
            self.pos = chain.end()
            names = tuple(chain.group()[1:].split("."))
            if names[0] not in _FIELDS:
                raise TemplateError(f"unknown field .{names[0]}; valid fields are {_field_list()}")
            return _Field(names)
        ident = _IDENT.match(text, pos)
        if ident:
            name = ident.group()
            if name in _KEYWORDS:
                raise TemplateError(f'"{name}" is not supported in tag templates')
            if name not in _FUNCTIONS:
                raise TemplateError(
                    f'function "{name}" not defined; available functions: {", ".join(sorted(_FUNCTIONS))}'
                )
            self.pos = ident.end()
            return _Function(name)
        if char == "$":
            raise TemplateError("variables ($) are not supported in tag templates")
        if char == "'":
            raise TemplateError("character constants are not supported in tag templates; use a string")
        raise TemplateError(f"unexpected {self._describe_here()} in action")

    def _quoted_string(self) -> str:
        text = self.text
        out = bytearray()
        pos = self.pos + 1
        while True:
            if pos >= len(text) or text[pos] == "\n":
                raise TemplateError("unterminated quoted string")
            char = text[pos]
            if char == '"':
                self.pos = pos + 1
                return out.decode("utf-8", "replace")
            if char != "\\":
                out += char.encode("utf-8", "surrogatepass")
                pos += 1
                continue
            escape = _ESCAPE.match(text, pos)
            if not escape:
                raise TemplateError(f"invalid escape {text[pos : pos + 2]!r} in quoted string")
            out += _unescape(escape.group())
            pos = escape.end()

    def _describe_here(self) -> str:
        if self.pos >= len(self.text):
            return "end of template"
        return repr(self.text[self.pos : self.pos + 10])


_ESCAPE = re.compile(r"\\(?:[abfnrtv\\'\"]|x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|[0-7]{3})")
_SIMPLE_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, "'": 39, '"': 34}


def _unescape(escape: str) -> bytes:
    kind = escape[1]
    if kind in _SIMPLE_ESCAPES:
        return bytes([_SIMPLE_ESCAPES[kind]])
    if kind == "x":
        return bytes([int(escape[2:], 16)])
    if kind in "uU":
        code = int(escape[2:], 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise TemplateError(f"invalid escape {escape!r} in quoted string")
        return chr(code).encode("utf-8")
    code = int(escape[1:], 8)
    if code > 255:
        raise TemplateError(f"invalid escape {escape!r} in quoted string")
    return bytes([code])


def _field_list() -> str:
    return ", ".join("." + name for name in sorted(_FIELDS))


# Running.


def _run(pipeline: _Pipeline, info: ContainerInfo) -> Value:
    value = _run_command(pipeline.commands[0], info, None)
    for command in pipeline.commands[1:]:
        value = _run_command(command, info, value)
    return value


def _run_command(command: _Command, info: ContainerInfo, piped: Value | None) -> Value:
    """`piped` is the value of the previous stage, None for the first one."""
    head, *rest = command.operands
    if isinstance(head, _Function):
        args = [_evaluate(operand, info) for operand in rest]
        if piped is not None:
            args.append(piped)
        return _call(head.name, args)
    if rest:
        raise TemplateError(f"{_describe(head)} is not a function and cannot take arguments")
    if piped is not None:
        raise TemplateError(f"only a function can follow '|', not {_describe(head)}")
    return _evaluate(head, info)


def _evaluate(node: _Node, info: ContainerInfo) -> Value:
    if isinstance(node, _Literal):
        return node.value
    if isinstance(node, _Pipeline):
        return _run(node, info)
    if isinstance(node, _Function):
        return _call(node.name, [])  # Go calls a function named as an argument with no arguments
    value = _FIELDS[node.names[0]](info)
    for key in node.names[1:]:
        if not isinstance(value, dict):
            raise TemplateError(f"can't evaluate field {key} in type {_type_name(value)}")
        value = value.get(key, NO_VALUE)
    return value


def _describe(node: _Node) -> str:
    if isinstance(node, _Field):
        return "." + ".".join(node.names)
    if isinstance(node, _Literal):
        return repr(node.value)
    return "a parenthesized pipeline"


def _type_name(value: Value) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, int):
        return "int"
    if isinstance(value, list):
        return "[]string"
    if isinstance(value, dict):
        return "map[string]string"
    return "<no value>"


def _print(value: Value) -> str:
    """Go's fmt %v."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + " ".join(value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{value[key]}" for key in sorted(value)) + "]"
    return str(value) if isinstance(value, int) else "<no value>"


# Docker's template functions (daemon/logger/templates) and text/template's `index`.


@dataclass(frozen=True)
class _Signature:
    params: tuple[str, ...]  # Go type names; "any" takes anything
    function: Callable[..., Value]
    variadic: bool = False  # the last parameter repeats (index's keys)


def _call(name: str, args: list[Value]) -> Value:
    signature = _FUNCTIONS[name]
    params = signature.params
    if signature.variadic:
        if len(args) < len(params) - 1:
            raise TemplateError(f"wrong number of args for {name}: want at least {len(params) - 1} got {len(args)}")
    elif len(args) != len(params):
        raise TemplateError(f"wrong number of args for {name}: want {len(params)} got {len(args)}")
    for position, value in enumerate(args):
        expected = params[min(position, len(params) - 1)]
        if expected != "any" and _type_name(value) != expected:
            raise TemplateError(
                f"wrong type for argument {position + 1} of {name}: expected {expected}; got {_type_name(value)}"
            )
    result = signature.function(*args)
    if isinstance(result, str) and len(result) > _MAX_VALUE:
        raise TemplateError(f"{name} produced more than {_MAX_VALUE} characters")
    return result


def _index(item: Value, *keys: Value) -> Value:
    for key in keys:
        if isinstance(item, dict):
            if not isinstance(key, str):
                raise TemplateError(f"error calling index: value has type {_type_name(key)}; should be string")
            item = item.get(key, "")  # Go gives the zero value for a missing key
        elif isinstance(item, list):
            if not isinstance(key, int):
                raise TemplateError(f"error calling index: cannot index slice/array with type {_type_name(key)}")
            if not 0 <= key < len(item):
                raise TemplateError(f"error calling index: index out of range: {key}")
            item = item[key]
        elif isinstance(item, _NoValue):
            raise TemplateError("error calling index: index of untyped nil")
        else:
            raise TemplateError(f"error calling index: can't index item of type {_type_name(item)}")
    return item


def _json(value: Value) -> str:
    """encoding/json with HTML escaping off, as Docker's `json` function."""
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(map(_json_string, value)) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_json_string(k)}:{_json_string(value[k])}" for k in sorted(value)) + "}"
    return "null"


_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in range(0x20)}
_JSON_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", ord('"'): '\\"', ord("\\"): "\\\\"})
_JSON_ESCAPES.update({0x2028: "\\u2028", 0x2029: "\\u2029"})
_JSON_ESCAPES.update({code: "\\ufffd" for code in range(0xD800, 0xE000)})


def _json_string(text: str) -> str:
    return '"' + text.translate(_JSON_ESCAPES) + '"'


def _split(text: str, separator: str) -> list[str]:
    return list(text) if separator == "" else text.split(separator)


def _join(items: list[str], separator: str) -> str:
    if sum(map(len, items)) + len(separator) * max(len(items) - 1, 0) > _MAX_VALUE:
        raise TemplateError(f"join would produce more than {_MAX_VALUE} characters")
    return separator.join(items)


def _map_runes(text: str, convert: Callable[[str], str]) -> str:
    # Go maps rune by rune; Python's multi-character mappings ("ß".upper() == "SS") are not taken.
    return "".join(mapped if len(mapped := convert(char)) == 1 else char for char in text)


def _is_separator(char: str) -> bool:
    """Go strings.Title's word boundaries."""
    if char <= "\x7f":
        return not (char.isascii() and (char.isalnum() or char == "_"))
    if char.isalpha() or char.isdecimal():
        return False
    return char.isspace()


def _title(text: str) -> str:
    out = []
    previous = " "
    for char in text:
        out.append(_map_runes(char, str.title) if _is_separator(previous) else char)
        previous = char
    return "".join(out)


def _pad(text: str, prefix: int, suffix: int) -> str:
    if text == "":
        return text
    if prefix < 0 or suffix < 0:
        raise TemplateError("error calling pad: strings: negative Repeat count")
    if prefix + suffix + len(text) > _MAX_VALUE:
        raise TemplateError(f"pad would produce more than {_MAX_VALUE} characters")
    return " " * prefix + text + " " * suffix


def _truncate(text: str, length: int) -> str:
    # Go counts bytes. A cut inside a multi-byte character leaves U+FFFD, where Go would keep bad bytes.
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) < length:
        return text
    if length < 0:
        raise TemplateError(f"error calling truncate: slice bounds out of range [:{length}]")
    return raw[:length].decode("utf-8", "replace")


_FUNCTIONS: dict[str, _Signature] = {
    "index": _Signature(("any", "any"), _index, variadic=True),
    "json": _Signature(("any",), _json),
    "split": _Signature(("string", "string"), _split),
    "join": _Signature(("[]string", "string"), _join),
    "title": _Signature(("string",), _title),
    "lower": _Signature(("string",), lambda text: _map_runes(text, str.lower)),
    "upper": _Signature(("string",), lambda text: _map_runes(text, str.upper)),
    "pad": _Signature(("string", "int", "int"), _pad),
    "truncate": _Signature(("string", "int"), _truncate),
}


def _quote(template: str) -> str:
    shown = template if len(template) <= 200 else template[:200] + "..."
    return '"' + shown.replace("\\", "\\\\").replace('"', '\\"') + '"'

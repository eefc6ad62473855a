"""Docker image references (distribution/reference): parsing, normalisation, and telling a reference
from an image ID or ID prefix."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from logship.errors import InvalidParameter

ID_RE = re.compile(r"^[0-9a-f]{64}$")
HEX_RE = re.compile(r"^[0-9a-f]+$")

# ---------------------------------------------------------------------------------------------------------
# References: Docker's grammar (distribution/reference), normalised as the Docker daemon does.
# ---------------------------------------------------------------------------------------------------------

DEFAULT_DOMAIN = "docker.io"
_LEGACY_DEFAULT_DOMAIN = "index.docker.io"
_OFFICIAL_REPOSITORY_PREFIX = "library/"
_NAME_TOTAL_LENGTH_MAX = 255

_ALPHANUMERIC = r"[a-z0-9]+"
# Docker writes the dash separator as `[-]*`; `-+` accepts the same names without the ambiguity that
# makes a backtracking regex engine take exponential time on long invalid names.
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(rf"^{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?$")
_REMAINDER_RE = re.compile(
    rf"^({_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::([\w][\w.-]{0,127}))?"
    r"(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$",
    re.ASCII,
)
_DIGESTID_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Reference:
    """A normalised image reference: `busybox` is docker.io / library/busybox with no tag yet."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def familiar_name(self) -> str:
        """The name as users write it: docker.io and its library/ prefix left out."""
        if self.domain != DEFAULT_DOMAIN:
            return f"{self.domain}/{self.path}"
        official = self.path.removeprefix(_OFFICIAL_REPOSITORY_PREFIX)
        return official if "/" not in official else self.path

    def with_default_tag(self) -> Reference:
        """Docker's TagNameOnly: a bare name means `:latest`."""
        if self.tag is None and self.digest is None:
            return replace(self, tag="latest")
        return self

    def __str__(self) -> str:
        text = self.familiar_name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str) -> Reference:
    """Parse and normalise a reference as Docker's ParseNormalizedNamed; InvalidParameter with Docker's
    message when it is not one."""
    if ID_RE.match(text):
        raise InvalidParameter(f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_domain(text)
    if remainder.split(":", 1)[0].lower() != remainder.split(":", 1)[0]:
        raise InvalidParameter("invalid reference format: repository name must be lowercase")
    match = _REMAINDER_RE.match(remainder)
    if match is None or not _DOMAIN_RE.match(domain):
        if _REMAINDER_RE.match(remainder.lower()) and _DOMAIN_RE.match(domain):
            raise InvalidParameter("invalid reference format: repository name must be lowercase")
        raise InvalidParameter("invalid reference format")
    path, tag, digest = match.group(1), match.group(2), match.group(3)
    if len(domain) + 1 + len(path) > _NAME_TOTAL_LENGTH_MAX:
        raise InvalidParameter(f"repository name must not be more than {_NAME_TOTAL_LENGTH_MAX} characters")
    return Reference(domain, path, tag, digest)


def _split_domain(text: str) -> tuple[str, str]:
    """The registry part goes before the first "/" only when it looks like a host (has "." or ":", or is
    "localhost"); anything else is a Docker Hub name, official images living under library/."""
    first, slash, rest = text.partition("/")
    if not slash or ("." not in first and ":" not in first and first != "localhost"):
        domain, remainder = DEFAULT_DOMAIN, text
    else:
        domain, remainder = first, rest
    if domain == _LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = _OFFICIAL_REPOSITORY_PREFIX + remainder
    return domain, remainder


def tag_reference(text: str) -> Reference:
    """A reference that may name a tag to create: no digest, and not the ambiguous name "sha256"."""
    reference = parse_reference(text)
    if reference.digest is not None:
        raise InvalidParameter("refusing to create a tag with a digest reference")
    if reference.familiar_name == "sha256":
        raise InvalidParameter("refusing to create an ambiguous tag using digest algorithm as name")
    return reference.with_default_tag()


def parse_reference_or_id(text: str) -> str | Reference:
    """Docker's ParseAnyReference: "sha256:<hex>" for a full ID (with or without the prefix), else a
    normalised reference."""
    if ID_RE.match(text):
        return "sha256:" + text
    if _DIGESTID_RE.match(text):
        return text
    return parse_reference(text)


def is_id_prefix(image_id: str, text: str) -> bool:
    return image_id.startswith(text) or image_id.removeprefix("sha256:").startswith(text)

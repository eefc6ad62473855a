"""Sizes parse as Docker's go-units does: decimal for max-size, binary for buffers and memory."""

from __future__ import annotations

import pytest

from logship.units import SizeError, from_human_size, ram_in_bytes


@pytest.mark.parametrize(
    ("text", "decimal", "binary"),
    [
        ("10", 10, 10),
        ("10k", 10_000, 10_240),
        ("10K", 10_000, 10_240),
        ("10kb", 10_000, 10_240),
        ("10KiB", 10_000, 10_240),
        ("1m", 1_000_000, 1_048_576),
        ("1.5m", 1_500_000, 1_572_864),
        ("2g", 2_000_000_000, 2 << 30),
        ("1 m", 1_000_000, 1_048_576),
    ],
)
def test_sizes(text: str, decimal: int, binary: int) -> None:
    assert from_human_size(text) == decimal
    assert ram_in_bytes(text) == binary


@pytest.mark.parametrize("text", ["-1m", "10q", "", "abc", "m", " 1m", "1m "])
def test_bad_sizes_are_refused_with_dockers_text(text: str) -> None:
    with pytest.raises(SizeError, match=f"invalid size: '{text}'"):
        from_human_size(text)
    with pytest.raises(SizeError):
        ram_in_bytes(text)

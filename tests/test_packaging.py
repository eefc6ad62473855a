"""The distribution ships every package, drivers included: each one is listed in pyproject.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def packages_under(base: Path, name: str) -> set[str]:
    return {
        ".".join((name, *init.parent.relative_to(base).parts))
        for init in base.glob("**/__init__.py")
        if "drivers" not in init.relative_to(base).parts or base.name == "drivers"
    }


def test_every_python_package_is_listed_for_the_wheel() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = packages_under(ROOT / "logship", "logship") | packages_under(ROOT / "drivers", "logship.drivers")
    assert set(setuptools["packages"]) == found
    assert setuptools["package-dir"] == {"logship": "logship", "logship.drivers": "drivers"}

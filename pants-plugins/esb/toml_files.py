"""The TOML files the backend reads (`pyproject.toml`, `uv.lock`), read as uv reads them: TOML
1.0, with `tomli`. Pants' own `toml` library predates TOML 1.0 and fails on files that real
projects publish (e.g. a multi-line array with a comment after its last element)."""

from __future__ import annotations

import tomli


class TomlError(ValueError):
    """A file that is not valid UTF-8 TOML; the message says where."""


def parse_toml(content: bytes) -> dict:
    try:
        return tomli.loads(content.decode())
    except (tomli.TOMLDecodeError, UnicodeDecodeError) as e:
        raise TomlError(str(e)) from None


def toml_table(content: bytes) -> dict:
    """The file's table; empty when it does not parse: the lock check reports such a file with
    its fix."""
    try:
        return parse_toml(content)
    except TomlError:
        return {}

"""Locate the files kittydoit ships: prompt templates, the dodo.py entry point, the example feature.

In an installed wheel they sit inside the package (see ``force-include`` in pyproject.toml); in a source
checkout or an editable install they sit at the top of the repository, one folder up.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent

# name inside the package -> name at the top of a source checkout
_SOURCE_NAMES = {"templates": "templates", "dodo_entry.py": "dodo.py"}


def shipped(name: str) -> Path:
    """Return the path of the shipped file or folder *name* (``templates``, ``dodo_entry.py``, ``example``)."""
    inside = _PACKAGE / name
    if inside.exists():
        return inside
    return _PACKAGE.parent / _SOURCE_NAMES.get(name, name)

"""doit's plugin lookup without ``importlib.metadata``, for the ``kittydoit`` command.

``import doit`` imports ``importlib.metadata`` (in ``doit.plugin``), 25-35 ms on a 2-core machine, and every
command then asks it for doit's four plugin groups (``doit.COMMAND``, ``doit.LOADER``, ``doit.BACKEND``,
``doit.REPORTER``), each a scan of every installed package (2-3 ms). Together that was a tenth of the time from
``kittydoit run`` to the first agent. The ``kittydoit`` command needs one plugin: its dependency database, the
``doit.BACKEND`` named ``kittydoit`` that ``pyproject.toml`` declares for plain ``doit``.

So before doit is imported, :func:`install` puts a stand-in for ``importlib.metadata`` in ``sys.modules``. Its
``entry_points(group=...)`` answers doit's four groups with kittydoit's own plugins. Anything else asked of it
(another group, any other name, by any module) imports the real module, which then takes the stand-in's place.

The price: doit plugins of other packages are not seen by the ``kittydoit`` command. Plain ``doit``, with the
``dodo.py`` that ``kittydoit init`` writes, sees them all.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any, NamedTuple

_NAME = "importlib.metadata"


class EntryPoint(NamedTuple):
    """What doit reads of an entry point (``doit.plugin.PluginDict``)."""

    name: str
    module: str
    attr: str
    group: str


OWN: dict[str, tuple[EntryPoint, ...]] = {
    "doit.BACKEND": (EntryPoint("kittydoit", "kittydoit.db", "DurableSqliteDB", "doit.BACKEND"),),
    "doit.COMMAND": (),
    "doit.LOADER": (),
    "doit.REPORTER": (),
}


class _StandIn(types.ModuleType):
    """``importlib.metadata`` until something but doit's plugin lookup needs the real one."""

    def entry_points(self, **params: Any) -> Any:
        group = params.get("group")
        if set(params) == {"group"} and group in OWN:
            return list(OWN[group])
        return real().entry_points(**params)

    def __getattr__(self, name: str) -> Any:
        if name == "__path__":  # asked by every `from importlib.metadata import ...`: a plain module has none
            raise AttributeError(name)
        return getattr(real(), name)


def install() -> None:
    """Put the stand-in in place, unless ``importlib.metadata`` or doit is imported already (then: nothing)."""
    if _NAME not in sys.modules and "doit" not in sys.modules:
        stand_in = _StandIn(_NAME)
        sys.modules[_NAME] = stand_in
        importlib.metadata = stand_in  # as an import sets it (the real one sets it again)


def real() -> types.ModuleType:
    """Return the real ``importlib.metadata``, importing it in the stand-in's place if need be."""
    if isinstance(sys.modules.get(_NAME), _StandIn):
        del sys.modules[_NAME]
    import importlib.metadata  # noqa: PLC0415

    return importlib.metadata

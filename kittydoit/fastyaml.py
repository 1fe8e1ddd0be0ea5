"""Read a frontmatter block fast, getting exactly what ruamel.yaml's round-trip reader gets, or say it cannot.

Loading a feature reads every WP file's frontmatter, and ruamel.yaml's pure-Python reader takes milliseconds a
file. libyaml (PyYAML's C parser) splits the text into events a hundred times faster; this module builds plain
data from them the way :func:`kittydoit.wpfile.plain` sees ruamel's data, so every value, and so every WP's
digest, is the same. It takes only what both surely read alike: one mapping of string keys holding mappings,
lists and scalars that are strings, null, true/false or plain decimal integers, resolved by YAML 1.2's rules as
ruamel resolves them. Anything else (an anchor, alias or tag, a duplicate or non-string key, a merge key, a float,
a date, a directive, an unusual character, a parse error) returns None, and the caller asks ruamel.yaml, which
also reports what is wrong. Without PyYAML's C extension everything goes to ruamel.yaml.
"""

from __future__ import annotations

import re
from typing import Any

# What ruamel.yaml 1.2 resolves a plain scalar to, when it is not a string (its resolver.py, YAML 1.2 rows).
_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
_INT = re.compile(r"-?[1-9][0-9]*")  # what ruamel gives back as a plain int (0 is a ScalarInt there): read no other
# 1.2's float, int, timestamp, merge and value patterns: such a scalar is left to ruamel. Compiled when first
# needed (re keeps it compiled): compiling it costs more than most commands spend reading frontmatter.
_NOT_STRING = (
    r"""[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN)
    |[-+]?0b[0-1_]+
    |[-+]?0o?[0-7_]+
    |[-+]?[0-9_]+
    |[-+]?0x[0-9a-fA-F_]+
    |[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
    |[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?
     (?:[Tt]|[\ \t]+)[0-9][0-9]?
     :[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?
     (?:[\ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?
    |<<
    |="""
)
# Characters a YAML 1.1 parser (libyaml) and a YAML 1.2 one (ruamel) may read differently: line breaks of 1.1
# only (NEL, LS, PS), and those ruamel refuses (control characters, surrogates, U+FFFE/U+FFFF, the BOM inside).
_UNUSUAL = "[^\t\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
_UNUSUAL_ASCII = "[^\t\n\r\x20-\x7e]"  # the same, for a text that is all ASCII


class _Unsure(Exception):
    """The text holds something this module does not read as ruamel.yaml would."""


def load(text: str) -> dict[str, Any] | None:
    """Return the YAML mapping *text* as plain data, or None when only ruamel.yaml can say what it holds."""
    # re keeps a compiled pattern; the ASCII one compiles in microseconds, the full one in milliseconds
    if re.search(_UNUSUAL_ASCII if text.isascii() else _UNUSUAL, text):
        return None
    try:
        from yaml import YAMLError  # noqa: PLC0415  # PyYAML only when a feature is read
        from yaml._yaml import CParser  # noqa: PLC0415
    except ImportError:  # PyYAML without libyaml (or no PyYAML): the slower reader is as right
        return None
    parser = CParser(text)
    try:
        return _document(parser)
    except (_Unsure, YAMLError):  # ruamel reports the error, in its words
        return None
    finally:
        parser.dispose()


def _document(parser: Any) -> dict[str, Any]:
    from yaml import events  # noqa: PLC0415

    parser.get_event()  # the stream's start
    start = parser.get_event()
    if isinstance(start, events.StreamEndEvent):
        return {}  # only comments, or nothing: ruamel reads None, an empty frontmatter
    if start.explicit or start.version or start.tags:
        raise _Unsure
    data = _node(parser, parser.get_event(), events)
    if not isinstance(data, dict):
        raise _Unsure  # ruamel reports that the frontmatter is not a mapping
    parser.get_event()  # the document's end
    if not isinstance(parser.get_event(), events.StreamEndEvent):
        raise _Unsure  # a second document
    return data


def _node(parser: Any, event: Any, events: Any) -> Any:
    if isinstance(event, events.AliasEvent) or event.anchor is not None or event.tag is not None:
        raise _Unsure
    if isinstance(event, events.ScalarEvent):
        return event.value if event.style else _plain(event.value)
    if isinstance(event, events.SequenceStartEvent):
        items = []
        while not isinstance(event := parser.get_event(), events.SequenceEndEvent):
            items.append(_node(parser, event, events))
        return items
    mapping: dict[str, Any] = {}
    while not isinstance(event := parser.get_event(), events.MappingEndEvent):
        key = _node(parser, event, events)
        if not isinstance(key, str) or key in mapping:
            raise _Unsure  # ruamel refuses a duplicate key; a non-string key becomes a string there
        mapping[key] = _node(parser, parser.get_event(), events)
    return mapping


def _plain(value: str) -> Any:
    """Return the plain (unquoted) scalar *value* as YAML 1.2 reads it, or raise _Unsure for a number or date."""
    if value in _NULL:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    if _INT.fullmatch(value):
        return int(value)
    if value[0] in "-+.0123456789<=" and re.fullmatch(_NOT_STRING, value, re.VERBOSE):
        raise _Unsure
    return value

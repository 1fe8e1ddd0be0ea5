"""Read and edit one work package file, changing only the lines an edit is about.

A WP file is a YAML frontmatter block between ``---`` lines, then a markdown body. spec-kitty and people
edit these files by hand, in several quoting and indentation styles, so kittydoit never re-dumps the whole
frontmatter: ruamel.yaml parses it (values, key positions, comments) and an edit replaces or inserts the
one line of the key it sets, rendered in the quoting style that key (or the file's ``lane``) already uses.
Everything else stays byte for byte, including comments, key order, line endings and a missing final newline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kittydoit import fastyaml
from kittydoit.errors import FeatureError

if TYPE_CHECKING:  # ruamel.yaml is imported when a file is parsed for an edit, not when one is only read
    from ruamel.yaml.comments import CommentedMap

# spec-kitty's key order; a key kittydoit adds goes after the nearest key that precedes it here.
CANONICAL_ORDER = (
    "work_package_id",
    "subtasks",
    "title",
    "phase",
    "lane",
    "assignee",
    "agent",
    "shell_pid",
    "review_status",
    "reviewed_by",
    "review_feedback_file",
    "dependencies",
    "history",
)

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t#]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_MARKS = ("#", " ", "`", "~")  # the first characters a heading or a fence line can have
# A top-level key's line, and a one-line key whose value is a quoted string or a simple plain scalar (see
# WPDocument._update_lines): anything else (comments, block or flow values, anchors, tags) takes ruamel's way.
_KEY_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*):(?:[ \t]|\r?\n|$)")
_ONE_LINE = re.compile(
    r"""[A-Za-z_][A-Za-z0-9_\-]*:[ \t]*("(?:[^"\\\n]|\\.)*"|'(?:[^'\n]|'')*'|[A-Za-z0-9_.:/+\-]*)[ \t]*\r?\n?"""
)


@dataclass(frozen=True)
class Section:
    """A markdown section of the body: its heading level and title, and its line range [start, end)."""

    level: int
    title: str
    start: int
    end: int


def read_raw(path: Path) -> bytes:
    """Return the bytes of *path*, reporting a file that cannot be read as a FeatureError."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise FeatureError(path, f"cannot be read ({error.strerror})") from None


class WPDocument:
    """A work package file split into frontmatter lines, parsed frontmatter and body lines."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        lines = text.splitlines(keepends=True)
        self._bom = ""
        if lines and lines[0].startswith("\ufeff"):
            self._bom, lines[0] = "\ufeff", lines[0][1:]
        if not lines or lines[0].rstrip("\r\n") != "---":
            raise FeatureError(path, "has no YAML frontmatter: the file must start with a '---' line")
        end = next((i for i in range(1, len(lines)) if lines[i].rstrip("\r\n") == "---"), None)
        if end is None:
            raise FeatureError(path, "frontmatter is not closed: add a '---' line after it")
        self.newline = "\r\n" if lines[0].endswith("\r\n") else "\n"
        self._open, self._close = lines[0], lines[end]
        self._fm = lines[1:end]
        self._body = lines[end + 1 :]
        # Reading needs plain values only, which fastyaml gets far faster than ruamel; an edit needs ruamel's
        # key positions, parsed then. A frontmatter fastyaml declines is parsed by ruamel now: a file that does
        # not parse is rejected here.
        self._plain = fastyaml.load("".join(self._fm))
        self._data: CommentedMap | None = None if self._plain is not None else self._parse()

    @property
    def data(self) -> CommentedMap:
        """The round-trip parse of the frontmatter (parsed when first needed, and again after edits)."""
        if self._data is None:
            self._data = self._parse()
        return self._data

    @classmethod
    def read(cls, path: Path) -> WPDocument:
        """Read and parse *path*, reporting unreadable or non-UTF-8 files as a FeatureError."""
        return cls.decode(path, read_raw(path))

    @classmethod
    def decode(cls, path: Path, raw: bytes) -> WPDocument:
        """Parse *raw*, the bytes of *path*, reporting a file that is not UTF-8 as a FeatureError."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise FeatureError(path, f"is not UTF-8 text (byte {error.start}); save it as UTF-8") from None
        return cls(path, text)

    # ---- reading ----------------------------------------------------------------------------------------

    def text(self) -> str:
        """Return the whole file as it now reads."""
        return "".join([self._bom, self._open, *self._fm, self._close, *self._body])

    def get(self, key: str, default: Any = None) -> Any:
        """Return the frontmatter value of *key* as plain Python data."""
        if self._plain is not None:  # a copy, as ruamel's data is copied below
            return plain(self._plain[key]) if key in self._plain else default
        return plain(self.data[key]) if key in self.data else default

    def get_all(self) -> dict[str, object]:
        """Return the whole frontmatter as plain Python data."""
        result: dict[str, object] = plain(self._plain if self._plain is not None else self.data)
        return result

    def body(self) -> str:
        """Return the markdown body."""
        return "".join(self._body)

    def spec(self) -> str:
        """Return the body without the sections kittydoit and spec-kitty write (activity, review feedback)."""
        drop = {"activity log", "review feedback"}
        lines = list(self._body)
        for section in reversed(self.sections()):
            if section.level == 2 and section.title.lower() in drop:
                del lines[section.start : section.end]
        return "".join(lines)

    def section_text(self, title: str) -> str | None:
        """Return the content under the level-2 heading *title*, or None when there is no such section."""
        section = self._find(title)
        if section is None:
            return None
        return "".join(self._body[section.start + 1 : section.end]).strip()

    def sections(self) -> list[Section]:
        """Return the body's markdown sections; headings inside fenced code blocks do not count."""
        heads: list[tuple[int, str, int]] = []
        fenced = False
        # Most lines can start neither a fence nor a heading: only the others are looked at (a WP has hundreds).
        for index, line in [(i, line) for i, line in enumerate(self._body) if line.startswith(_MARKS)]:
            if _FENCE.match(line):
                fenced = not fenced
                continue
            match = None if fenced else _HEADING.match(line.rstrip("\r\n"))
            if match:
                heads.append((len(match.group(1)), match.group(2).strip(), index))
        result = []
        for position, (level, title, start) in enumerate(heads):
            end = next((s for lv, _t, s in heads[position + 1 :] if lv <= level), len(self._body))
            result.append(Section(level, title, start, end))
        return result

    # ---- editing ----------------------------------------------------------------------------------------

    def set(self, key: str, value: str) -> None:
        """Set the top-level *key* to the string *value*, touching only that key's line(s)."""
        self.update({key: value})

    def update(self, fields: Mapping[str, str]) -> None:
        """Set each top-level key of *fields* to its string value, as :meth:`set` does, parsing once.

        Parsing the frontmatter is what an edit costs (ruamel.yaml, a few milliseconds), so keys that exist
        are replaced bottom-up without re-parsing in between: replacing a key's lines moves only the lines
        below them, where the keys already replaced are, so the positions of the keys above stay right.
        """
        if self._data is None and self._update_lines(fields):
            return
        changed = {k: v for k, v in fields.items() if k not in self.data or plain(self.data[k]) != v}
        present = [k for k in changed if k in self.data]
        missing = [k for k in changed if k not in present]
        # A key on one line of its own, without a comment, whose new value fits on one line too, moves no other
        # line: the parsed frontmatter stays right once that key's value is read off its new line alone.
        single = not missing and all(self._one_line(k) for k in present)
        lines = {key: self._replace(key, changed[key]) for key in sorted(present, key=self._line, reverse=True)}
        if single and all(line.count("\n") <= 1 for line in lines.values()):
            for key, line in lines.items():
                value = _parse_line(line)[key]
                self.data[key] = value
                if self._plain is not None:
                    self._plain[key] = plain(value)
        elif present:
            self._edited()
        for key in missing:  # each insertion needs the positions of the keys now there
            line = f"{key}: {_render(changed[key], self._style(key))}{self.newline}"
            self._fm.insert(self._insert_at(key), line)
            self._edited()

    def _update_lines(self, fields: Mapping[str, str]) -> bool:
        """Set *fields* by replacing lines alone, without ruamel's parse, when that is certain to write what
        :meth:`update` writes with it; return whether it was done.

        Certain means: the frontmatter was read by fastyaml (plain values, no comments, anchors or tags), its
        top-level keys are exactly the lines that start with ``key:`` at the left margin, in order, and each key
        to change exists and takes exactly one line holding a quoted or simple plain scalar. That is what lane
        moves meet in spec-kitty's own files: a new WP's first move then needs no ruamel parse (5 ms).
        """
        known = self._plain
        if known is None:
            return False
        changed = {k: v for k, v in fields.items() if k not in known or plain(known[k]) != v}
        rows = {match.group(1): i for i, line in enumerate(self._fm) if (match := _KEY_LINE.match(line))}
        if list(rows) != list(known) or any(k not in rows for k in changed):
            return False
        edits = {}
        for key in changed:
            row = rows[key]
            value = _ONE_LINE.fullmatch(self._fm[row])
            if value is None or (row + 1 < len(self._fm) and not _KEY_LINE.match(self._fm[row + 1])):
                return False
            text = value.group(1)
            edits[row] = (key, '"' if text.startswith('"') else "'" if text.startswith("'") else "plain")
        for row, (key, style) in edits.items():
            line = self._fm[row]
            ending = line[len(line.rstrip("\r\n")) :] or self.newline
            self._fm[row] = f"{key}: {_render(changed[key], style)}{ending}"
            known[key] = changed[key]
        return True

    def _edited(self) -> None:
        """Forget both parses of the frontmatter: the lines changed (ruamel parses them again when asked)."""
        self._plain = None
        self._data = None

    def _replace(self, key: str, value: str) -> str:
        """Replace the lines of the existing *key*; return the new line (``self.data`` stays as it was)."""
        start = self.data.lc.key(key)[0]
        end = self._key_end(key)
        comment = self._eol_comment(key, start)
        ending = self._fm[end - 1][len(self._fm[end - 1].rstrip("\r\n")) :] or self.newline
        line = f"{key}: {_render(value, self._style(key))}{comment}{ending}"
        self._fm[start:end] = [line]
        return line

    def _line(self, key: str) -> int:
        return int(self.data.lc.key(key)[0])

    def _one_line(self, key: str) -> bool:
        """Tell whether *key* and its value take exactly one line, with no comment."""
        return key not in self.data.ca.items and self._key_end(key) == self._line(key) + 1

    def append_activity(self, entry: str) -> None:
        """Add ``- entry`` as the last line of the ``## Activity Log`` section, creating it when missing."""
        line = f"- {entry}{self.newline}"
        section = self._find("Activity Log")
        if section is None:
            self._terminate_body()
            if self._body and self._body[-1].strip():
                self._body.append(self.newline)
            self._body += [f"## Activity Log{self.newline}", self.newline, line]
            return
        last = max((i for i in range(section.start + 1, section.end) if self._body[i].strip()), default=None)
        at = section.start + 1 if last is None else last + 1
        if not self._body[at - 1].endswith("\n"):
            self._body[at - 1] += self.newline
        self._body.insert(at, line)
        if last is None:
            self._body.insert(at, self.newline)

    def replace_section(self, title: str, content: str) -> None:
        """Replace the content of the ``## title`` section, or add the section after the title's intro.

        A section that ended in a ``---`` separator keeps it. Headings inside *content* are demoted below
        level 2, so the section still ends where it did when it is replaced again.
        """
        nl = self.newline
        block = [f"{text}{nl}" for text in _demote_headings(content.strip("\n")).split("\n")]
        section = self._find(title)
        if section is None:
            sections = self.sections()
            first = next((s for s in sections if s.level == 1), None)
            after = first.start if first else -1
            at = next((s.start for s in sections if s.level == 2 and s.start > after), len(self._body))
            self._terminate_body()
            lead = [nl] if at and self._body[at - 1].strip() else []
            self._body[at:at] = [*lead, f"## {title}{nl}", nl, *block, nl]
            return
        tail = [line for line in self._body[section.start + 1 : section.end] if line.strip()]
        separator = [nl, f"---{nl}"] if tail and tail[-1].strip() == "---" else []
        ends_file = section.end == len(self._body)
        new = [nl, *block, *separator]
        if not ends_file:
            new.append(nl)
        self._body[section.start + 1 : section.end] = new

    # ---- internals --------------------------------------------------------------------------------------

    def _parse(self) -> CommentedMap:
        from ruamel.yaml.comments import CommentedMap  # noqa: PLC0415  # see the imports
        from ruamel.yaml.error import YAMLError  # noqa: PLC0415

        try:
            data = _round_trip("".join(self._fm))
        except YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"line {mark.line + 2}: " if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise FeatureError(self.path, f"frontmatter is not valid YAML ({where}{problem})") from None
        if data is None:
            return CommentedMap()
        if not isinstance(data, CommentedMap):
            kind = "list" if isinstance(data, list) else type(data).__name__
            raise FeatureError(self.path, f"frontmatter must be a mapping of keys to values, not a {kind}")
        return data

    def _key_lines(self) -> list[int]:
        return sorted(self.data.lc.key(k)[0] for k in self.data)

    def _key_end(self, key: str) -> int:
        start = self.data.lc.key(key)[0]
        end = next((line for line in self._key_lines() if line > start), len(self._fm))
        while end - 1 > start and (not self._fm[end - 1].strip() or self._fm[end - 1].startswith("#")):
            end -= 1
        return end

    def _eol_comment(self, key: str, line: int) -> str:
        item = self.data.ca.items.get(key)
        token = item[2] if item and len(item) > 2 else None
        if token is None or token.start_mark.line != line:
            return ""
        text = self._fm[line].rstrip("\r\n")
        column = token.start_mark.column
        return text[len(text[:column].rstrip()) :]

    def _style(self, key: str) -> str:
        from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString  # noqa: PLC0415

        value = self.data.get(key) if key in self.data else self.data.get("lane")
        if isinstance(value, DoubleQuotedScalarString):
            return '"'
        if isinstance(value, SingleQuotedScalarString):
            return "'"
        if key in self.data or isinstance(value, str):
            return "plain"
        return '"'

    def _insert_at(self, key: str) -> int:
        rank = CANONICAL_ORDER.index(key) if key in CANONICAL_ORDER else len(CANONICAL_ORDER)
        before = [k for k in CANONICAL_ORDER[:rank] if k in self.data]
        if before:
            return self._key_end(before[-1])
        after = [self.data.lc.key(k)[0] for k in CANONICAL_ORDER[rank + 1 :] if k in self.data]
        return min(after) if after else len(self._fm)

    def _find(self, title: str) -> Section | None:
        wanted = title.lower()
        return next((s for s in self.sections() if s.level == 2 and s.title.lower() == wanted), None)

    def _terminate_body(self) -> None:
        if self._body and not self._body[-1].endswith("\n"):
            self._body[-1] += self.newline


def _round_trip(text: str) -> Any:
    """Return ruamel.yaml's round-trip parse of *text*, quotes kept (what edits need to write a key back alike)."""
    from ruamel.yaml import YAML  # noqa: PLC0415  # see the imports

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    return yaml.load(text)


def _parse_line(line: str) -> CommentedMap:
    """Return the round-trip parse of one ``key: value`` line, as the whole frontmatter's parse would hold it."""
    from ruamel.yaml.comments import CommentedMap  # noqa: PLC0415  # see the imports

    data = _round_trip(line)
    if not isinstance(data, CommentedMap):
        raise FeatureError(None, f"kittydoit wrote a line that is not a mapping: {line!r}")
    return data


def _demote_headings(text: str) -> str:
    """Push markdown headings outside code blocks down two levels (``## x`` -> ``#### x``)."""
    lines, fenced = [], False
    for line in text.split("\n"):
        if _FENCE.match(line):
            fenced = not fenced
        lines.append("##" + line if not fenced and _HEADING.match(line) else line)
    return "\n".join(lines)


def plain(value: Any) -> Any:
    """Return ruamel round-trip data as plain dicts, lists and scalars."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _render(value: str, style: str) -> str:
    if style == "'" and "\n" not in value:
        return "'" + value.replace("'", "''") + "'"
    if style == "plain" and _plain_ok(value):
        return value
    # A JSON string is a valid YAML double-quoted scalar.
    return json.dumps(value, ensure_ascii=False)


def _plain_ok(value: str) -> bool:
    if not value or value != value.strip() or "\n" in value or value[0] in "&*!|>'\"%@`#-?:,[]{}":
        return False
    fast = fastyaml.load(f"k: {value}\n")  # as ruamel reads it, when it surely can say
    if fast is not None:
        return fast == {"k": value}
    from ruamel.yaml import YAML  # noqa: PLC0415  # see the imports
    from ruamel.yaml.error import YAMLError  # noqa: PLC0415

    try:
        return bool(YAML(typ="safe").load(f"k: {value}") == {"k": value})
    except YAMLError:
        return False

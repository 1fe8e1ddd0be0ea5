"""fastyaml reads every frontmatter as ruamel.yaml's round-trip reader does, or declines it.

A WP's digest is computed from its frontmatter values: a value read differently would make every WP of every
user stale on upgrade. So the fast reader is compared with ruamel on every WP file of the corpus, and on
frontmatters made to hit where YAML readers differ (YAML 1.1 against 1.2, numbers, dates, anchors, tags,
duplicate keys, unusual characters).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import CORPUS, wp_text
from ruamel.yaml import YAML
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver

from kittydoit import fastyaml, feature
from kittydoit.errors import FeatureError
from kittydoit.wpfile import WPDocument, plain

pytest.importorskip("yaml._yaml", reason="PyYAML's C extension (libyaml) is what fastyaml uses")

CORPUS_WPS = sorted(p for p in CORPUS.rglob("WP*.md") if p.parent.name == "tasks" or p.parent.parent.name == "tasks")


def frontmatter(text: str) -> str:
    lines = text.splitlines(keepends=True)
    end = next(i for i in range(1, len(lines)) if lines[i].rstrip("\r\n") == "---")
    return "".join(lines[1:end])


def ruamel_plain(text: str) -> Any:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    data = yaml.load(text)
    return {} if data is None else plain(data)


def typed(value: Any) -> Any:
    """Return *value* with the type of every part spelt out, so that 1, True and '1' never compare equal."""
    if isinstance(value, dict):
        return ("dict", [(typed(k), typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, repr(value))


def test_the_corpus_is_there() -> None:
    assert len(CORPUS_WPS) > 200


@pytest.mark.parametrize("path", CORPUS_WPS, ids=lambda p: str(p.relative_to(CORPUS)))
def test_every_corpus_wp_reads_as_ruamel_reads_it(path: Path) -> None:
    fm = frontmatter(path.read_text(encoding="utf-8"))
    fast = fastyaml.load(fm)
    if fast is not None:
        assert typed(fast) == typed(ruamel_plain(fm))


@pytest.mark.parametrize("path", CORPUS_WPS, ids=lambda p: str(p.relative_to(CORPUS)))
def test_every_corpus_wp_has_the_digest_and_fields_of_ruamel(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mission = "v3" in path.relative_to(CORPUS).parts
    lane = path.parent.name if path.parent.name in feature.LANES else None
    fast = feature._wp_from_doc(path, lane, WPDocument.read(path), mission=mission)
    monkeypatch.setattr(fastyaml, "load", lambda text: None)  # every frontmatter to ruamel, as before fastyaml
    slow = feature._wp_from_doc(path, lane, WPDocument.read(path), mission=mission)
    assert fast.digest == slow.digest
    assert typed(dict(fast.fields)) == typed(dict(slow.fields))
    assert (fast.id, fast.title, fast.lane, fast.dependencies, fast.spec) == (
        slow.id, slow.title, slow.lane, slow.dependencies, slow.spec,
    )  # fmt: skip


def test_most_corpus_wps_take_the_fast_path() -> None:
    fast = [p for p in CORPUS_WPS if fastyaml.load(frontmatter(p.read_text(encoding="utf-8"))) is not None]
    assert len(fast) >= 0.9 * len(CORPUS_WPS)


READ_ALIKE = [
    wp_text("WP01", deps=["WP02", "WP03"]),
    "---\n---\n",
    "---\n# only a comment\n---\n",
    '---\nwork_package_id: WP01\ntitle: "A: b # c"\nlane: planned\ndependencies: []\n---\n',
    "---\ntitle: Status Command & Dashboard\nshell_pid: $$\nagent:\nassignee: ''\n---\n",
    "---\nsubtasks:\n- T01\n- T02\nhistory:\n- timestamp: '2025-12-17T13:15:00Z'\n  lane: planned\n---\n",
    "---\nactivity_log: |-\n  - one – two\n  - three\nnote: >\n  folded\n  text\n\n  more\n---\n",
    "---\nplain: a\n  continued\n  line\nflow: {a: 1, b: [x, 'y', \"z\"]}\n---\n",
    "---\nyes_: yes\nno_: no\non_: on\noff_: Off\ny: y\nn: N\n---\n",  # strings in YAML 1.2
    "---\nt: true\nf: FALSE\nnull1: null\nnull2: ~\nnull3:\ni: 12\nneg: -7\nbig: 123456789012345678901234567890\n---\n",
    "---\nbase_commit: 9dc21ea53ee62dbcabd7a32bb92e119071bbb417\nsha2: 12e45abc\nsurface: .github/workflows/\n---\n",
    "---\ntime: 1:20\nver: 1.2.3\nhref: 1x/\nwords: -x y\nlt: <a>\neq: ==\nq: \"\\u00e9\\t\\x41\"\n---\n",
    "---\n\"quoted key\": 1\n'other': '2'\nnested:\n  deeper:\n    - {k: v}\n---\n",
    "---\nunicode: héllo – wörld ✓ 😀\n---\n",
    "---\r\ncrlf: value\r\nlist:\r\n  - a\r\n---\r\n",
]

DECLINED = [
    "---\nfloat: 1.5\n---\n",
    "---\nexp: 1e3\n---\n",
    "---\noctal: 0o17\n---\n",
    "---\nleading_zero: 012\n---\n",
    "---\nhex: 0x1f\n---\n",
    "---\nunderscore: 1_000\n---\n",
    "---\nplus: +3\n---\n",
    "---\nminus_zero: -0\n---\n",
    "---\nzero: 0\n---\n",  # ruamel makes it a ScalarInt
    "---\ninf: .inf\n---\n",
    "---\ndate: 2025-01-01\n---\n",
    "---\nstamp: 2025-01-01T00:00:00Z\n---\n",
    "---\nstamp: 2025-1-1 10:00:00 +02:00\n---\n",
    "---\na: &x 1\nb: *x\n---\n",
    "---\nbase: &b {x: 1}\nchild:\n  <<: *b\n  y: 2\n---\n",
    "---\ntagged: !!str 12\n---\n",
    "---\nlocal: !thing x\n---\n",
    "---\nset: !!set {a, b}\n---\n",
    "---\n%YAML 1.1\n---\nx: yes\n",
    "---\ndup: 1\ndup: 2\n---\n",
    "---\n1: numeric key\n---\n",
    "---\ntrue: bool key\n---\n",
    "---\n? [complex]\n: key\n---\n",
    "---\n- a list\n- not a mapping\n---\n",
    "---\njust a string\n---\n",
    "---\nnel: a\x85b\n---\n",
    "---\nls: a\u2028b\n---\n",
    "---\nctrl: a\x07b\n---\n",
    "---\nbroken: [unclosed\n---\n",
    "---\nbad:\n\t- tab indented\n---\n",
]


@pytest.mark.parametrize("text", READ_ALIKE)
def test_frontmatters_read_alike(text: str) -> None:
    fm = frontmatter(text)
    fast = fastyaml.load(fm)
    assert fast is not None
    assert typed(fast) == typed(ruamel_plain(fm))


@pytest.mark.parametrize("text", DECLINED)
def test_frontmatters_left_to_ruamel(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fm = frontmatter(text)
    assert fastyaml.load(fm) is None
    path = tmp_path / "WP01-x.md"
    path.write_text(text, encoding="utf-8", newline="")
    try:
        fast = WPDocument.read(path).get_all()
    except FeatureError as error:
        fast = str(error)
    monkeypatch.setattr(fastyaml, "load", lambda text: None)
    try:
        slow = WPDocument.read(path).get_all()
    except FeatureError as error:
        slow = str(error)
    assert typed(fast) == typed(slow)  # the same values, or the same one-line error


SCALARS = [
    "", "~", "null", "Null", "NULL", "nul", "nulls", "true", "True", "TRUE", "tRue", "false", "yes", "no", "on",
    "0", "00", "07", "08", "-0", "+0", "12", "-12", "+12", "1_0", "0b101", "0o7", "0x1F", "0xg", "1.", "1.5",
    ".5", "-.5", "1e5", "1E+5", "1e", "e5", ".inf", "-.Inf", ".nan", ".NaN", "-.nan", "1:30", "1:30:00",
    "190:20:30.15", "2025-01-01", "2025-1-1", "2025-01-01T10:00:00", "2025-01-01 10:00:00.5 -5",
    "2025-01-01t10:00:00Z", "2025-01-01x", "<<", "<", "=", "==", "9dc21ea5", "12e45abc", "12345e678",
    "1.2.3", "v1", "-x", "+x", ".x", ".github", "$$", "WP01", "a b",
]


@pytest.mark.parametrize("value", SCALARS)
def test_plain_scalars_resolve_as_ruamel_resolves_them(value: str) -> None:
    tag = str(VersionedResolver().resolve(ScalarNode, value, (True, False)))
    try:
        mine: Any = fastyaml._plain(value)
    except fastyaml._Unsure:
        assert tag not in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:null", "tag:yaml.org,2002:bool")
        return
    kind = {str: "str", type(None): "null", bool: "bool", int: "int"}[type(mine)]
    assert tag == f"tag:yaml.org,2002:{kind}"
    if value:
        assert typed(ruamel_plain(f"k: {value}")["k"]) == typed(mine)


def test_without_libyaml_ruamel_reads_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys  # noqa: PLC0415

    monkeypatch.setitem(sys.modules, "yaml._yaml", None)  # as if PyYAML had been built without libyaml
    assert fastyaml.load("a: 1\n") is None
    doc = WPDocument(Path("WP01-x.md"), wp_text("WP01", deps=["WP02"]))
    assert doc.get("dependencies") == ["WP02"]

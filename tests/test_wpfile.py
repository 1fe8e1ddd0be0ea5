"""Round-trip edits of WP files: exactly the lines an edit is about change, byte for byte."""

from __future__ import annotations

import difflib
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import CORPUS, wp_text

from kittydoit.errors import FeatureError
from kittydoit.feature import load_feature
from kittydoit.lanes import Lanes
from kittydoit.wpfile import WPDocument, plain

CORPUS_WPS = sorted(CORPUS.rglob("WP*.md"))
# Lane moves edit 0.x frontmatter only: a 3.x mission's lanes live in its event log (kittydoit.lanes.eventlog).
LANE_WPS = [p for p in CORPUS_WPS if not p.relative_to(CORPUS).parts[0].startswith("v3")]


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """Return (removed, added) lines between two texts."""
    removed, added = [], []
    for line in difflib.ndiff(before.splitlines(keepends=True), after.splitlines(keepends=True)):
        if line.startswith("- "):
            removed.append(line[2:])
        elif line.startswith("+ "):
            added.append(line[2:])
    return removed, added


@pytest.mark.parametrize("path", CORPUS_WPS, ids=lambda p: str(p.relative_to(CORPUS)))
def test_unedited_corpus_file_round_trips(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert WPDocument(path, text).text() == text


@pytest.mark.parametrize("path", LANE_WPS, ids=lambda p: str(p.relative_to(CORPUS)))
def test_lane_move_changes_only_the_lane_line_and_adds_one_activity_line(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    doc = WPDocument(path, text)
    old_lane_line = next(line for line in text.splitlines(keepends=True) if line.startswith("lane:"))
    lane = "for_review" if "doing" in old_lane_line else "doing"
    doc.set("lane", lane)
    doc.append_activity(f"2026-11-27T00:00:00Z – tester – shell_pid=1 – lane={lane} – Started")
    after = doc.text()
    removed, added = changed_lines(text, after)
    assert removed == [old_lane_line]
    quote = old_lane_line.split(":", 1)[1].strip()[0]
    expected_lane = {'"': f'lane: "{lane}"\n', "'": f"lane: '{lane}'\n"}.get(quote, f"lane: {lane}\n")
    assert expected_lane in added
    assert f"- 2026-11-27T00:00:00Z – tester – shell_pid=1 – lane={lane} – Started\n" in added
    others = [a for a in added if a not in (expected_lane,) and "tester" not in a]
    assert all(not a.strip() or a.startswith("## Activity Log") for a in others), others
    assert WPDocument(path, after).get("lane") == lane


def test_quote_styles_and_comments_are_kept(tmp_path: Path) -> None:
    text = (
        "---\n"
        "work_package_id: WP01\n"
        "lane: planned   # kanban column\n"
        "agent: 'claude'\n"
        'shell_pid: "12"\n'
        "history:\n- lane: planned\n"
        "---\nbody\n"
    )
    doc = WPDocument(tmp_path / "WP01-x.md", text)
    doc.set("lane", "for_review")
    doc.set("agent", "it's me")
    doc.set("shell_pid", "4242")
    assert doc.text() == (
        "---\n"
        "work_package_id: WP01\n"
        "lane: for_review   # kanban column\n"
        "agent: 'it''s me'\n"
        'shell_pid: "4242"\n'
        "history:\n- lane: planned\n"
        "---\nbody\n"
    )


def test_plain_style_falls_back_to_quotes_when_needed(tmp_path: Path) -> None:
    doc = WPDocument(tmp_path / "WP01-x.md", "---\nlane: done\nshell_pid: 12\n---\n")
    doc.set("shell_pid", "4242")
    doc.set("lane", "yes: no")
    assert doc.text() == '---\nlane: "yes: no"\nshell_pid: "4242"\n---\n'
    assert doc.get("shell_pid") == "4242"


def test_missing_keys_are_inserted_in_spec_kitty_order(tmp_path: Path) -> None:
    text = '---\nwork_package_id: "WP01"\ntitle: "T"\nlane: "done"\ndependencies: []\nhistory: []\n---\n'
    doc = WPDocument(tmp_path / "WP01-x.md", text)
    doc.set("reviewed_by", "codex")
    doc.set("review_status", "approved")
    assert doc.text() == (
        '---\nwork_package_id: "WP01"\ntitle: "T"\nlane: "done"\n'
        'review_status: "approved"\nreviewed_by: "codex"\ndependencies: []\nhistory: []\n---\n'
    )


def test_crlf_files_stay_crlf(tmp_path: Path) -> None:
    text = wp_text("WP01").replace("\n", "\r\n")
    doc = WPDocument(tmp_path / "WP01-x.md", text)
    doc.set("lane", "doing")
    doc.set("agent", "x")
    doc.append_activity("entry")
    after = doc.text()
    assert "\n" not in after.replace("\r\n", "")
    assert 'lane: "doing"\r\n' in after
    assert after.endswith("- entry\r\n")


def test_file_without_final_newline_gets_the_activity_line_on_its_own_line(tmp_path: Path) -> None:
    doc = WPDocument(tmp_path / "WP01-x.md", "---\nlane: planned\n---\n# T\n\n## Activity Log\n\n- first")
    doc.append_activity("second")
    assert doc.text().endswith("## Activity Log\n\n- first\n- second\n")


def test_activity_section_is_created_when_missing(tmp_path: Path) -> None:
    doc = WPDocument(tmp_path / "WP01-x.md", "---\nlane: planned\n---\n# T\n\nBody.\n")
    doc.append_activity("entry")
    assert doc.text() == "---\nlane: planned\n---\n# T\n\nBody.\n\n## Activity Log\n\n- entry\n"


def test_headings_inside_code_blocks_are_not_sections(tmp_path: Path) -> None:
    body = "# T\n\n```md\n## Activity Log\n```\n\nText.\n\n## Activity Log\n\n- one\n"
    doc = WPDocument(tmp_path / "WP01-x.md", "---\nlane: planned\n---\n" + body)
    doc.append_activity("two")
    assert doc.text().endswith("```md\n## Activity Log\n```\n\nText.\n\n## Activity Log\n\n- one\n- two\n")
    assert "## Activity Log\n```" in doc.spec()


def test_review_feedback_replaces_spec_kitty_placeholder_and_keeps_separator() -> None:
    path = CORPUS / "v0.16.2/kitty-specs/006-per-feature-mission/tasks/WP01-core-mission-discovery.md"
    text = path.read_text(encoding="utf-8")
    doc = WPDocument(path, text)
    doc.replace_section("Review Feedback", "**Status**: changes\n\nAdd tests.")
    after = doc.text()
    removed, added = changed_lines(text, after)
    placeholder = "*[This section is empty initially. Reviewers will populate it if the work is returned from review.]*"
    assert removed == [placeholder + "\n"]
    assert added == ["**Status**: changes\n", "\n", "Add tests.\n"]
    assert "Add tests.\n\n---\n\n## Objectives" in after


def test_review_feedback_section_is_added_after_the_intro_and_never_swallows_text(tmp_path: Path) -> None:
    doc = WPDocument(tmp_path / "WP01-x.md", wp_text("WP01"))
    doc.replace_section("Review Feedback", "Fix it.\n\n## Details\n\nMore.")
    expected = "Do the work of WP01.\n\n## Review Feedback\n\nFix it.\n\n#### Details\n\nMore.\n\n## Activity Log"
    assert expected in doc.text()
    doc.replace_section("Review Feedback", "Fix it again.")
    assert doc.text().count("## Review Feedback") == 1
    assert "Do the work of WP01.\n\n## Review Feedback\n\nFix it again.\n\n## Activity Log" in doc.text()
    assert doc.section_text("Review Feedback") == "Fix it again."
    assert "Do the work of WP01." in doc.spec() and "Fix it" not in doc.spec()


def test_lanes_move_in_lane_folder_layout(tmp_path: Path) -> None:
    tasks = tmp_path / "kitty-specs" / "001-demo" / "tasks"
    (tasks / "planned").mkdir(parents=True)
    (tasks / "planned" / "WP01-a.md").write_text(wp_text("WP01"))
    feature = load_feature(tmp_path, tasks.parent)
    lanes = Lanes(feature, clock=lambda: datetime(2026, 11, 27, tzinfo=UTC))
    lanes.move("WP01", "doing", agent="coder", note="Started")
    assert not (tasks / "planned" / "WP01-a.md").exists()
    moved = tasks / "doing" / "WP01-a.md"
    assert 'lane: "doing"' in moved.read_text()
    assert lanes.lane("WP01") == "doing"
    lanes.approve("WP01", reviewer="critic", note="Fine")
    done = (tasks / "done" / "WP01-a.md").read_text()
    assert 'review_status: "approved"\nreviewed_by: "critic"' in done
    assert "– critic – shell_pid=" in done and "lane=done – Fine" in done


def test_lane_moves_keep_edits_made_by_hand_between_them(tmp_path: Path) -> None:
    tasks = tmp_path / "kitty-specs" / "001-demo" / "tasks"
    tasks.mkdir(parents=True)
    path = tasks / "WP01-a.md"
    path.write_text(wp_text("WP01"))
    lanes = Lanes(load_feature(tmp_path, tasks.parent), clock=lambda: datetime(2026, 11, 27, tzinfo=UTC))
    assert lanes.current("WP01")[1] == "planned"
    lanes.move("WP01", "doing", agent="coder", note="Started")  # reuses the document just read
    assert lanes.lane("WP01") == "doing"
    path.write_text(path.read_text().replace("Do the work of WP01.", "Do the work of WP01, by hand."))
    lanes.move("WP01", "for_review", agent="coder", note="Ready")  # the file changed: read afresh
    text = path.read_text()
    assert "Do the work of WP01, by hand." in text and 'lane: "for_review"' in text
    assert text.count("lane=doing – Started") == 1 and text.rstrip().endswith("lane=for_review – Ready")
    path.write_text(text.replace('lane: "for_review"', 'lane: "planned"'))  # moved back by hand
    assert lanes.lane("WP01") == "planned"


def test_request_changes_records_feedback_like_spec_kitty(tmp_path: Path) -> None:
    tasks = tmp_path / "kitty-specs" / "001-demo" / "tasks"
    tasks.mkdir(parents=True)
    (tasks / "WP01-a.md").write_text(wp_text("WP01", lane="for_review"))
    feature = load_feature(tmp_path, tasks.parent)
    lanes = Lanes(feature, clock=lambda: datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC))
    lanes.request_changes("WP01", reviewer="critic", feedback="Add tests.", feedback_file=tmp_path / "fb.md")
    text = (tasks / "WP01-a.md").read_text()
    fields = 'lane: "planned"\nreview_status: "has_feedback"\nreviewed_by: "critic"\nreview_feedback_file: "fb.md"\n'
    assert fields in text
    section = "**Reviewed by**: critic\n**Status**: ❌ Changes Requested\n**Date**: 2026-11-27T01:02:03Z\n\n"
    section += "Add tests.\n"
    assert "## Review Feedback\n\n" + section in text
    assert text.rstrip().endswith("lane=planned – Changes requested in review")


@pytest.mark.parametrize("path", CORPUS_WPS, ids=lambda p: str(p.relative_to(CORPUS)))
def test_batch_update_edits_exactly_as_one_set_after_another(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    fields = {
        "lane": "done",
        "agent": "it's me",
        "shell_pid": "4242",
        "review_status": "approved",
        "reviewed_by": "reviewer",
        "review_feedback_file": ".kittify/logs/x/WP01-feedback.md",
    }
    one_by_one = WPDocument(path, text)
    for key, value in fields.items():
        one_by_one.set(key, value)
    batch = WPDocument(path, text)
    batch.update(fields)
    assert batch.text() == one_by_one.text()
    assert {k: batch.get(k) for k in fields} == fields


def test_lane_edits_without_a_reparse_write_and_read_as_ruamel_does() -> None:
    """Two shortcuts spare a lane move ruamel's parse: a frontmatter read by fastyaml has one-line keys replaced
    line by line, and a parsed one keeps its parse with the edited key's value read off its new line. On every
    corpus WP file, eight rounds of random edits give the text a document edited through ruamel gives, and the
    values, types and key lines a fresh parse gives."""
    rnd = random.Random(7)  # noqa: S311  # a fixed sample of edits, not a secret
    values = ["doing", "for_review", "done", "claude", "12345", "yes", "a: b", "it's", "", "x#y", '"q"', "0", "1.5",
              "-", "a\\b", "é", "2025-01-01", "null"]  # fmt: skip
    keys = ["lane", "agent", "shell_pid", "review_status", "reviewed_by", "assignee", "title"]
    by_lines = kept = 0

    def typed(data: Any) -> dict[str, tuple[str, Any]]:
        return {k: (type(v).__name__, plain(v)) for k, v in data.items()}

    for path in CORPUS_WPS:
        try:
            doc, through_ruamel = WPDocument.read(path), WPDocument.read(path)
        except FeatureError:
            continue
        assert through_ruamel.data is not None  # parsed by ruamel before any edit
        for _ in range(8):
            fields = {k: rnd.choice(values) for k in rnd.sample(keys, rnd.randint(1, 3))}
            unparsed = doc._data is None
            doc.update(fields)
            through_ruamel.update(fields)
            by_lines += unparsed and doc._data is None
            kept += through_ruamel._data is not None
            assert doc.text() == through_ruamel.text(), path
            fresh = WPDocument(path, doc.text())
            assert doc.get_all() == fresh.get_all() == through_ruamel.get_all(), path
            assert typed(through_ruamel.data) == typed(fresh.data), path
            lines = [through_ruamel.data.lc.key(k)[0] for k in through_ruamel.data]
            assert lines == [fresh.data.lc.key(k)[0] for k in fresh.data], path
    assert by_lines > 100 and kept > 100  # both shortcuts are taken, not only the re-parse

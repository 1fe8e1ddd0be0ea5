"""Reading and checking features: both layouts, the corpus, and every rejection."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import CORPUS, FEATURE, git, make_repo, wp_text

from kittydoit.errors import FeatureError
from kittydoit.feature import find_cycle, find_root, load_feature, select_feature
from kittydoit.lanes import Lanes
from kittydoit.process import ProcessRunner
from kittydoit.wpfile import WPDocument


def write_feature(root: Path, files: dict[str, str | bytes]) -> Path:
    folder = root / "kitty-specs" / FEATURE
    for name, text in files.items():
        path = folder / "tasks" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
    (folder / "tasks").mkdir(parents=True, exist_ok=True)
    return folder


def rejection(tmp_path: Path, files: dict[str, str | bytes]) -> str:
    folder = write_feature(tmp_path, files)
    with pytest.raises(FeatureError) as caught:
        load_feature(tmp_path, folder)
    return str(caught.value)


def test_reads_flat_layout_with_dependencies_and_titles(tmp_path: Path) -> None:
    folder = write_feature(
        tmp_path, {"WP01-a.md": wp_text("WP01"), "WP02-b.md": wp_text("WP02", ["WP01"], title="Second")}
    )
    feature = load_feature(tmp_path, folder)
    assert list(feature.wps) == ["WP01", "WP02"]
    assert feature.wps["WP02"].dependencies == ("WP01",)
    assert feature.wps["WP02"].title == "Second"
    assert feature.layout == "flat"


def test_lane_folder_layout_takes_lane_from_folder(tmp_path: Path) -> None:
    folder = write_feature(
        tmp_path, {"done/WP01-a.md": wp_text("WP01", lane="planned"), "planned/WP02-b.md": wp_text("WP02")}
    )
    feature = load_feature(tmp_path, folder)
    assert feature.layout == "lanes"
    assert feature.wps["WP01"].lane == "done"


# The 0.x corpora; the 3.x missions of corpus/v3 are read by tests/test_eventlog.py until load_feature reads them.
@pytest.mark.parametrize("feature_dir", sorted(p for p in CORPUS.glob("v0*/kitty-specs/*") if p.is_dir()), ids=str)
def test_every_corpus_feature_loads(feature_dir: Path) -> None:
    feature = load_feature(feature_dir.parents[1], feature_dir)
    assert feature.wps
    assert all(wp.title for wp in feature.wps.values())


def test_corpus_dependencies_are_read_in_every_quoting_style() -> None:
    flow = load_feature(CORPUS / "v0.16.2", CORPUS / "v0.16.2/kitty-specs/020-autonomous-multi-agent-orchestrator")
    assert flow.wps["WP06"].dependencies == ("WP02", "WP03", "WP04")
    inline = load_feature(CORPUS / "v0.16.2", CORPUS / "v0.16.2/kitty-specs/017-smarter-feature-merge-with-preflight")
    assert any(wp.dependencies for wp in inline.wps.values())


def test_spec_digest_ignores_bookkeeping_but_not_the_work(tmp_path: Path) -> None:
    folder = write_feature(tmp_path, {"WP01-a.md": wp_text("WP01")})
    before = load_feature(tmp_path, folder).wps["WP01"].digest
    path = folder / "tasks" / "WP01-a.md"
    text = path.read_text()
    path.write_text(text.replace('lane: "planned"', 'lane: "doing"\nagent: "x"') + "- 2026 – x – lane=doing – y\n")
    assert load_feature(tmp_path, folder).wps["WP01"].digest == before
    path.write_text(text.replace("Do the work", "Do more work"))
    assert load_feature(tmp_path, folder).wps["WP01"].digest != before


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"WP01-a.md": "no frontmatter\n"}, "WP01-a.md: has no YAML frontmatter"),
        ({"WP01-a.md": "---\ntitle: x\n"}, "WP01-a.md: frontmatter is not closed"),
        ({"WP01-a.md": "---\ntitle: [x\n---\n"}, "WP01-a.md: frontmatter is not valid YAML (line"),
        (
            {"WP01-a.md": "---\n- a\n- b\n---\n"},
            "WP01-a.md: frontmatter must be a mapping of keys to values, not a list",
        ),
        ({"WPx-a.md": wp_text("WP01")}, "WPx-a.md: file name must start with a WP id"),
        ({"WP01-a.md": wp_text("WP01").replace('"WP01"', '"W1"', 1)}, "work_package_id 'W1' is not WP + digits"),
        ({"WP01-a.md": wp_text("WP02")}, "work_package_id 'WP02' differs from the file name's 'WP01'"),
        ({"WP01-a.md": wp_text("WP01"), "WP01-b.md": wp_text("WP01")}, "WP01 is also defined in WP01-a.md"),
        ({"WP01-a.md": wp_text("WP01", ["WP09"])}, "dependency 'WP09' does not exist (work packages: WP01)"),
        ({"WP01-a.md": wp_text("WP01", ["WP01"])}, "WP01 depends on itself"),
        ({"WP01-a.md": wp_text("WP01", lane="review")}, "lane 'review' is not one of planned, doing, for_review, done"),
        (
            {"WP01-a.md": wp_text("WP01").replace("dependencies: []", "dependencies: WP02")},
            "dependencies must be a list of WP ids",
        ),
        ({"WP01-a.md": wp_text("WP01").encode() + "é".encode("latin-1")}, "WP01-a.md: is not UTF-8 text"),
        ({"README.md": "not a WP"}, "tasks: holds no work packages"),
        ({"waiting/WP01-a.md": wp_text("WP01")}, "waiting: is not a lane folder"),
    ],
)
def test_rejections_name_the_file_and_the_fix(tmp_path: Path, files: dict[str, str | bytes], expected: str) -> None:
    message = rejection(tmp_path, files)
    assert expected in message
    assert "\n" not in message


def test_cycle_is_printed(tmp_path: Path) -> None:
    message = rejection(
        tmp_path,
        {
            "WP01-a.md": wp_text("WP01", ["WP03"]),
            "WP02-b.md": wp_text("WP02", ["WP01"]),
            "WP03-c.md": wp_text("WP03", ["WP02"]),
        },
    )
    assert "dependency cycle WP01 -> WP03 -> WP02 -> WP01" in message


def test_find_cycle_on_acyclic_graph() -> None:
    assert find_cycle({"WP01": [], "WP02": ["WP01"], "WP03": ["WP01", "WP02"]}) is None
    assert find_cycle({"WP01": ["WP02"], "WP02": ["WP01"]}) == ["WP01", "WP02", "WP01"]


def test_missing_kitty_specs(tmp_path: Path) -> None:
    with pytest.raises(FeatureError, match="no kitty-specs/ folder here or above"):
        find_root(tmp_path)


def test_feature_selection(tmp_path: Path) -> None:
    for name in ("001-one", "002-two"):
        (tmp_path / "kitty-specs" / name / "tasks").mkdir(parents=True)
    with pytest.raises(FeatureError, match=r"holds several features; choose one .*: 001-one, 002-two"):
        select_feature(tmp_path, None)
    assert select_feature(tmp_path, "002-two").name == "002-two"
    assert select_feature(tmp_path, "002").name == "002-two"
    with pytest.raises(FeatureError, match="no feature '003'; choose one of: 001-one, 002-two"):
        select_feature(tmp_path, "003")
    shutil.rmtree(tmp_path / "kitty-specs" / "002-two")
    assert select_feature(tmp_path, None).name == "001-one"


V3_MISSIONS = Path(__file__).with_name("corpus") / "v3" / "kitty-specs"


def _mission(root: Path, source: str, folder: str | None = None, **meta: object) -> None:
    """Put the corpus v3 mission *source* (its meta.json, changed by *meta*) under kitty-specs/*folder*."""
    path = root / "kitty-specs" / (folder or source)
    (path / "tasks").mkdir(parents=True)
    data = json.loads((V3_MISSIONS / source / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**data, **meta}))


def test_mission_selection_by_every_3x_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _mission(tmp_path, "080-ci-hardening-and-lint-cleanup")
    _mission(tmp_path, "cascade-org-inert-01M07E9P")
    _mission(tmp_path, "sync-cli-degod-wave4-01M0B0MX", "sync-renamed", mission_slug="sync-cli-degod-wave4-01M0B0MX")
    (tmp_path / "kitty-specs" / "001-old" / "tasks").mkdir(parents=True)  # a 0.x feature: no meta.json
    with pytest.raises(FeatureError, match=r"holds several features; choose one .*: 001-old, 080-ci-hardening"):
        select_feature(tmp_path, None)
    assert select_feature(tmp_path, "cascade-org-inert-01M07E9P").name == "cascade-org-inert-01M07E9P"  # folder
    assert select_feature(tmp_path, "sync-cli-degod-wave4-01M0B0MX").name == "sync-renamed"  # mission_slug
    assert select_feature(tmp_path, "01M07E9P").name == "cascade-org-inert-01M07E9P"  # mid8
    assert select_feature(tmp_path, "01M07E9PV8R2X74SM75BYY279F").name == "cascade-org-inert-01M07E9P"  # mission_id
    assert select_feature(tmp_path, "080").name == "080-ci-hardening-and-lint-cleanup"  # a numbered folder's NNN
    assert select_feature(tmp_path, "001").name == "001-old"
    for other in ("80", "cascade", "01m07e9p"):  # the number as written; a slug's first word is not a number
        with pytest.raises(FeatureError, match=f"no feature '{other}'; choose one of: 001-old, 080-ci"):
            select_feature(tmp_path, other)


def test_ambiguous_mission_name_lists_the_matches(tmp_path: Path) -> None:
    _mission(tmp_path, "cascade-org-inert-01M07E9P")
    _mission(tmp_path, "cascade-org-inert-01M07E9P", "cascade-copy")
    _mission(tmp_path, "080-ci-hardening-and-lint-cleanup")
    (tmp_path / "kitty-specs" / "broken" / "tasks").mkdir(parents=True)
    (tmp_path / "kitty-specs" / "broken" / "meta.json").write_text("{")  # skipped here; loading it reports it
    message = "'01M07E9P' names several features: cascade-copy, cascade-org-inert-01M07E9P; choose one by its folder"
    with pytest.raises(FeatureError, match=message):
        select_feature(tmp_path, "01M07E9P")
    assert select_feature(tmp_path, "cascade-copy").name == "cascade-copy"


def test_schedule_order_is_longest_chain_first(tmp_path: Path) -> None:
    folder = write_feature(
        tmp_path,
        {
            "WP01-a.md": wp_text("WP01"),
            "WP02-b.md": wp_text("WP02"),
            "WP03-c.md": wp_text("WP03", ["WP02"]),
            "WP04-d.md": wp_text("WP04", ["WP03"]),
        },
    )
    feature = load_feature(tmp_path, folder)
    assert feature.chain_lengths() == {"WP01": 1, "WP02": 3, "WP03": 2, "WP04": 1}
    assert feature.schedule_order() == ["WP02", "WP03", "WP01", "WP04"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda t: t.write_text(wp_text("WP03", ["WP02"])), "dependency 'WP02' does not exist"),
        (lambda t: t.write_text("---\nlane: [\n---\n"), "frontmatter is not valid YAML"),
    ],
)
def test_cli_rejects_before_anything_runs_or_changes(tmp_path: Path, mutate, expected: str) -> None:  # type: ignore[no-untyped-def]
    repo = make_repo(tmp_path / "repo", {"WP01": [], "WP03": []})
    mutate(repo.wp_file("WP03"))
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "broken")
    before = git(repo.root, "status", "--porcelain", "--ignored")
    result = repo.kittydoit("-n", "2", "run")
    assert result.returncode == 3
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("ERROR: kitty-specs/001-demo/tasks/WP03-work.md: ")
    assert expected in errors[0]
    assert "Traceback" not in result.stderr
    assert git(repo.root, "status", "--porcelain", "--ignored") == before
    assert not (repo.root / ".worktrees").exists()
    assert repo.calls() == []


def test_cli_reports_missing_kitty_specs(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    repo_like = make_repo(tmp_path / "r", {"WP01": []})
    shutil.rmtree(repo_like.root / "kitty-specs")
    result = repo_like.kittydoit("list")
    assert result.returncode == 3
    assert "no kitty-specs/ folder here or above" in result.stderr
    assert "Traceback" not in result.stderr


def test_cached_load_gives_the_same_work_packages_and_sees_every_change(tmp_path: Path) -> None:
    folder = write_feature(tmp_path, {"WP01-a.md": wp_text("WP01"), "WP02-b.md": wp_text("WP02", ["WP01"])})
    cache = tmp_path / "cache"
    fresh = load_feature(tmp_path, folder)
    first = load_feature(tmp_path, folder, cache=cache)
    assert sorted(p.name for p in cache.iterdir()) == ["feature.json"]  # one file: a thousand cost more to write
    again = load_feature(tmp_path, folder, cache=cache)
    assert again.wps == first.wps == fresh.wps
    (folder / "tasks" / "WP02-b.md").write_text(wp_text("WP02", [], title="Changed"))
    changed = load_feature(tmp_path, folder, cache=cache)
    assert changed.wps["WP02"].title == "Changed" and changed.wps["WP02"].dependencies == ()
    assert changed.wps["WP02"].digest != first.wps["WP02"].digest
    (cache / "feature.json").write_text("{not json")  # a damaged cache is parsed again, never trusted
    assert load_feature(tmp_path, folder, cache=cache).wps["WP01"] == fresh.wps["WP01"]


def test_a_rejected_feature_leaves_no_cache(tmp_path: Path) -> None:
    folder = write_feature(tmp_path, {"WP01-a.md": wp_text("WP01", ["WP09"])})
    with pytest.raises(FeatureError, match="does not exist"):
        load_feature(tmp_path, folder, cache=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_a_lane_move_refreshes_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_feature(tmp_path, {"WP01-a.md": wp_text("WP01")})
    cache = tmp_path / "cache"
    feature = load_feature(tmp_path, folder, cache=cache)
    Lanes(feature, lambda: datetime(2026, 1, 1, tzinfo=UTC)).move("WP01", "doing", agent="a", note="start")
    assert not (cache / "WP01-a.md.json").exists()  # not on the way to the next agent: once it has started
    ProcessRunner().run(["true"], cwd=tmp_path, log_path=tmp_path / "agent.log")
    entry = json.loads((cache / "WP01-a.md.json").read_text())  # a lane move writes the moved WP's entry alone
    with monkeypatch.context() as patched:
        patched.setattr(WPDocument, "decode", None)  # found in the cache: not parsed again
        assert load_feature(tmp_path, folder, cache=cache).wps["WP01"].lane == "doing"
    assert sorted(p.name for p in cache.iterdir()) == ["feature.json"]  # the next load folds it in
    assert json.loads((cache / "feature.json").read_text())["WP01-a.md"] == entry
    assert load_feature(tmp_path, folder).wps["WP01"] == load_feature(tmp_path, folder, cache=cache).wps["WP01"]


def test_a_done_wp_may_depend_on_a_deleted_wp_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = write_feature(
        tmp_path,
        {"WP02-b.md": wp_text("WP02", ["WP01"], lane="done"),
         "WP03-c.md": wp_text("WP03", ["WP01", "WP02"], lane="done"), "WP04-d.md": wp_text("WP04", ["WP02"])},
    )  # fmt: skip
    cache = tmp_path / "cache"
    feature = load_feature(tmp_path, folder, cache=cache)
    assert feature.missing == {"WP02": ("WP01",), "WP03": ("WP01",)}
    assert feature.wps["WP02"].dependencies == () and feature.wps["WP03"].dependencies == ("WP02",)
    assert feature.schedule_order() == ["WP02", "WP03", "WP04"]
    assert [r.getMessage() for r in caplog.records] == [
        f"kitty-specs/{FEATURE}/tasks/{name}: dependency 'WP01' does not exist; {wp} is done, so it is skipped and "
        "nothing waits for WP01"
        for wp, name in (("WP02", "WP02-b.md"), ("WP03", "WP03-c.md"))
    ]
    assert load_feature(tmp_path, folder, cache=cache).wps == feature.wps  # cached as written, filtered again


def test_every_deleted_dependency_of_wps_that_would_run_is_named_at_once(tmp_path: Path) -> None:
    folder = write_feature(
        tmp_path,
        {"WP02-b.md": wp_text("WP02", ["WP01"], lane="doing"), "WP03-c.md": wp_text("WP03", ["WP01", "WP09"]),
         "WP04-d.md": wp_text("WP04", ["WP01"], lane="done")},
    )  # fmt: skip
    with pytest.raises(FeatureError) as caught:
        load_feature(tmp_path, folder, cache=tmp_path / "cache")
    assert str(caught.value).splitlines() == [
        "3 dependencies of work packages that would run do not exist (work packages: WP02, WP03, WP04); remove them "
        "from dependencies (or restore those WP files):",
        f"  - kitty-specs/{FEATURE}/tasks/WP02-b.md: dependency 'WP01' does not exist",
        f"  - kitty-specs/{FEATURE}/tasks/WP03-c.md: dependency 'WP01' does not exist",
        f"  - kitty-specs/{FEATURE}/tasks/WP03-c.md: dependency 'WP09' does not exist",
    ]
    assert not (tmp_path / "cache").exists()
    read = load_feature(tmp_path, folder, strict=False)  # reading the feature never fails for it
    assert read.missing == {"WP02": ("WP01",), "WP03": ("WP01", "WP09"), "WP04": ("WP01",)}

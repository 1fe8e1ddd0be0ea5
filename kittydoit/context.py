"""Everything a run of one feature needs, built once when doit loads the tasks.

:func:`load_context` reads and checks the feature, the agent settings and the prompt templates, and checks the
git repository, so that every mistake in them is reported before any task starts. The :class:`Paths` of a
feature name every file kittydoit writes:

- ``.kittify/logs/<feature>/WPxx-implement.log`` and ``WPxx-review.log``: agent output, as it comes
- ``.kittify/logs/<feature>/WPxx-<phase>.prompt.md``: the last prompt sent for that phase
- ``.kittify/kittydoit/<feature>/markers/WPxx-<phase>.json``: done-markers, doit targets of each phase
- ``.kittify/kittydoit/<feature>/doit.sqlite3``: doit's dependency database for the feature
- ``.kittify/kittydoit/<feature>/run.lock``, ``pids/``, ``locks/``: the running orchestration
- ``.kittify/kittydoit/<feature>/parsed/``: WP files as last parsed, so unchanged ones load without parsing
- ``.worktrees/<feature>-WPxx``: each WP's git worktree, on branch ``<feature>-WPxx``

Logs and state live in a folder per feature, so two features of one repository never share a WP's files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kittydoit.config import Config
from kittydoit.errors import FeatureError
from kittydoit.feature import Feature, find_root, load_feature, select_feature
from kittydoit.git import Git
from kittydoit.process import ProcessRunner
from kittydoit.prompts import Prompts
from kittydoit.settings import Settings, one_line, resolve
from kittydoit.speckitty import SpecKitty

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Paths:
    """The files and folders kittydoit uses for one feature of one repository."""

    root: Path
    feature: str

    @property
    def logs(self) -> Path:
        return self.root / ".kittify" / "logs" / self.feature

    @property
    def state(self) -> Path:
        return self.root / ".kittify" / "kittydoit" / self.feature

    @property
    def db(self) -> Path:
        return self.state / "doit.sqlite3"

    @property
    def run_lock(self) -> Path:
        return self.state / "run.lock"

    @property
    def parsed(self) -> Path:
        return self.state / "parsed"

    @property
    def pids(self) -> Path:
        return self.state / "pids"

    @property
    def git_lock(self) -> Path:
        return self.root / ".kittify" / "kittydoit" / "git.lock"

    def log(self, wp_id: str, phase: str) -> Path:
        return self.logs / f"{wp_id}-{phase}.log"

    def prompt(self, wp_id: str, phase: str) -> Path:
        return self.logs / f"{wp_id}-{phase}.prompt.md"

    def feedback(self, wp_id: str) -> Path:
        return self.logs / f"{wp_id}-feedback.md"

    @property
    def markers(self) -> Path:
        return self.state / "markers"

    def marker(self, wp_id: str, phase: str) -> Path:
        return self.markers / f"{wp_id}-{phase}.json"

    def pid_file(self, wp_id: str) -> Path:
        return self.pids / f"{wp_id}.pid"

    def wp_record(self, wp_id: str) -> Path:
        return self.state / "wps" / f"{wp_id}.json"

    def kept_diff(self, wp_id: str) -> Path:
        """The last diff of the WP's change, shared by its implement and review (see Git.diff)."""
        return self.state / "diffs" / f"{wp_id}.json"

    @property
    def run_file(self) -> Path:
        return self.state / "run.json"

    @property
    def health(self) -> Path:
        return self.state / "agent-health.json"

    @property
    def abort_request(self) -> Path:
        return self.state / "abort-requested"

    def wp_lock(self, wp_id: str) -> Path:
        return self.state / "locks" / f"{wp_id}.lock"

    def branch(self, wp_id: str) -> str:
        return f"{self.feature}-{wp_id}"

    def worktree(self, wp_id: str) -> Path:
        return self.root / ".worktrees" / self.branch(wp_id)

    def rel(self, path: Path) -> str:
        """Return *path* relative to the repository root: the form doit stores and messages show."""
        return os.path.relpath(path, self.root)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Context:
    """The feature, settings and collaborators the tasks of one run share."""

    feature: Feature
    config: Config
    paths: Paths
    prompts: Prompts
    git: Git
    target_branch: str
    runner: ProcessRunner = field(default_factory=ProcessRunner)
    clock: Callable[[], datetime] = utc_now
    main_pid: int = field(default_factory=os.getpid)
    # A 3.x mission's lanes move through spec-kitty: the run's session starts it (kittydoit.speckitty).
    speckitty: SpecKitty | None = None
    settings: Settings | None = None  # where config came from (the file or init's defaults), what stops a run


def load_context(start: Path, feature_name: str | None, *, cache: bool = True, for_run: bool = True) -> Context:
    """Find the repository at or above *start*, then read and check the feature and the settings.

    *for_run*: every problem that would stop a run is an error, found before anything is written (the agent
    settings are checked before the feature, whose loading writes the parse cache). Otherwise the context is
    for reading: agent settings that are missing or broken, and dependencies on WPs that do not exist, are not
    errors (see :mod:`kittydoit.settings` and :func:`kittydoit.feature.load_feature`).
    """
    root = find_root(start)
    folder = select_feature(root, feature_name)
    paths = Paths(root=root, feature=folder.name)
    settings = resolve(root)
    if settings.problem is not None and for_run:
        raise settings.problem
    if settings.problem is not None and settings.source == "file":  # a reader needs no agents: only say it is broken
        log.warning("%s (a run refuses to start until it is fixed)", one_line(settings.problem))
    feature = load_feature(root, folder, cache=paths.parsed if cache else None, strict=for_run)
    config = settings.config
    git = Git(root, paths.git_lock)
    if not git.is_repository():
        raise FeatureError(root, "is not a git repository; run `git init` and commit the feature first")
    target = feature.target_branch or git.current_branch()
    if not target and for_run:
        raise FeatureError(
            folder / "meta.json", "has no target_branch and HEAD is detached; set target_branch, e.g. \"main\""
        )
    if for_run and not git.branch_exists(target or ""):  # reading a feature needs no branch
        raise FeatureError(
            folder / "meta.json" if feature.target_branch else root,
            f"target branch '{target}' does not exist or has no commits; create it or fix target_branch",
        )
    prompts = Prompts(root)
    speckitty = SpecKitty(root) if feature.format == "3.x" else None
    return Context(
        feature=feature, config=config, paths=paths, prompts=prompts, git=git, target_branch=target or "HEAD",
        speckitty=speckitty,
        settings=settings,
    )  # fmt: skip

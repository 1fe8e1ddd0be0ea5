"""The state a feature carries between CI jobs, in git alone: one branch per WP, and a seal at its tip when done.

Each WP job pushes exactly one ref, the WP's branch ``<feature>-WPxx``, with a lease (the tip it fetched), so
parallel jobs never race on a push and two runs of one WP never overwrite each other. A WP is *done* when the
tip of its branch is a seal: an empty commit whose trailers name the feature, the WP, its fingerprint (its spec,
prompt templates and agent settings, as doit's up-to-date check has them) and the tip of every dependency it was
built on::

    kittydoit: WP03 sealed

    Kittydoit-Feature: 001-textkit
    Kittydoit-WP: WP03
    Kittydoit-Fingerprint: 5f0c...
    Kittydoit-Built-On: WP01 9a1b...
    Kittydoit-Implementer: example-coder
    Kittydoit-Reviewer: example-reviewer

Nothing in a seal is specific to spec-kitty 0.x: lanes are not carried on WP branches (the integrate job moves
them once, on the WP files as they are on the target), so 3.x missions, whose lanes live in an event log, carry
the same seals. Up to date, stale (Make-style: a dependency moved) and resume come from :func:`assess`, a pure
function of the branch tips and seals; doit's database lives and dies with each job's machine.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kittydoit.context import Context
from kittydoit.evidence import settings as settings_fingerprints
from kittydoit.feature import Feature, topological_order
from kittydoit.git import Git, GitError

REMOTE = "origin"
_TRAILER = re.compile(r"^Kittydoit-([A-Za-z-]+):[ \t]*(.*?)\s*$", re.MULTILINE)

# What assess() finds for a WP
SEALED = "sealed"  # done, and up to date with its spec, settings and dependencies
STALE = "stale"  # sealed once, but its spec or settings changed, or a dependency moved since
UNFINISHED = "unfinished"  # a branch without its own seal at the tip: an attempt failed, or one is running
MISSING = "missing"  # no branch yet
DONE_BEFORE = "done_before"  # lane done on the target and no branch: finished before or outside kittydoit


@dataclass(frozen=True)
class Seal:
    """What a seal commit says: which WP of which feature, built from what, on which dependency tips."""

    commit: str
    feature: str
    wp: str
    fingerprint: str
    built_on: Mapping[str, str] = field(default_factory=dict)
    implementer: str | None = None
    reviewer: str | None = None

    def message(self) -> str:
        """Return the commit message of this seal (its ``commit`` is what git makes of it)."""
        lines = [
            f"kittydoit: {self.wp} sealed",
            "",
            f"{self.wp} of {self.feature} is implemented and approved; kittydoit ci reads this commit as done.",
            "",
            f"Kittydoit-Feature: {self.feature}",
            f"Kittydoit-WP: {self.wp}",
            f"Kittydoit-Fingerprint: {self.fingerprint}",
        ]
        lines += [f"Kittydoit-Built-On: {dep} {tip}" for dep, tip in sorted(self.built_on.items())]
        lines += [f"Kittydoit-Implementer: {self.implementer}"] if self.implementer else []
        lines += [f"Kittydoit-Reviewer: {self.reviewer}"] if self.reviewer else []
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, commit: str, message: str) -> Seal | None:
        """Return the seal a commit message holds, or None when it is not one."""
        values: dict[str, list[str]] = {}
        for key, value in _TRAILER.findall(message):
            values.setdefault(key.lower(), []).append(value)
        try:
            built_on = dict(item.split(None, 1) for item in values.get("built-on", []))
            return cls(
                commit=commit,
                feature=values["feature"][0],
                wp=values["wp"][0],
                fingerprint=values["fingerprint"][0],
                built_on=built_on,
                implementer=next(iter(values.get("implementer", [])), None),
                reviewer=next(iter(values.get("reviewer", [])), None),
            )
        except (KeyError, ValueError):  # a commit that is not a seal, or a damaged one: not done
            return None


@dataclass(frozen=True)
class WPState:
    """Where one WP stands across jobs, from git alone."""

    wp: str
    status: str
    tip: str | None = None  # its branch's tip on the remote
    seal: Seal | None = None  # the seal at the tip, when there is one that names this WP
    reason: str = ""

    @property
    def usable(self) -> bool:
        """Tell whether dependants may build on this WP (sealed, or done before kittydoit)."""
        return self.status in (SEALED, DONE_BEFORE)


def fingerprint(ctx: Context, wp_id: str) -> str:
    """Return the WP's fingerprint: what doit's up-to-date check compares (spec, templates, agent settings)."""
    data = {"spec": ctx.feature.wps[wp_id].digest, **settings_fingerprints(ctx)}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def assess(
    feature: Feature,
    fingerprints: Mapping[str, str],
    tips: Mapping[str, str | None],
    seals: Mapping[str, Seal | None],
) -> dict[str, WPState]:
    """Return every WP's state from its branch tip and the seal there, dependencies first.

    A seal counts only when it names the WP itself: a WP whose attempt failed before committing anything has
    its branch at a dependency's seal. It is up to date only when its fingerprint is the current one and every
    dependency is usable and still at the tip the seal was built on.
    """
    states: dict[str, WPState] = {}
    for wp_id in topological_order(feature.wps):
        wp = feature.wps[wp_id]
        tip = tips.get(wp_id)
        seal = seals.get(wp_id)
        if seal is not None and (seal.wp != wp_id or seal.feature != feature.slug):
            seal = None
        if tip is None:
            done = wp.lane == "done"
            states[wp_id] = WPState(wp_id, DONE_BEFORE if done else MISSING,
                                    reason="lane done before kittydoit" if done else "not started")  # fmt: skip
            continue
        if seal is None:
            states[wp_id] = WPState(wp_id, UNFINISHED, tip, reason=f"its branch tip {tip[:10]} is not its seal")
            continue
        reason = ""
        if seal.fingerprint != fingerprints[wp_id]:
            reason = "its spec, the prompts or the agent settings changed"
        for dep in wp.dependencies:
            if reason:
                break
            dep_state = states[dep]
            if not dep_state.usable:
                reason = f"runs again after {dep}"
            elif dep_state.tip is not None and seal.built_on.get(dep) != dep_state.tip:
                reason = f"{dep} moved since it was built"
        states[wp_id] = WPState(wp_id, STALE if reason else SEALED, tip, seal, reason or "up to date")
    return states


class Remote:
    """The remote repository a feature's CI jobs share: the WP branches' tips, fetched and pushed with a lease."""

    def __init__(self, git: Git, feature: str, name: str = REMOTE) -> None:
        self.git = git
        self.feature = feature
        self.name = name

    def branch(self, wp_id: str) -> str:
        return f"{self.feature}-{wp_id}"

    def tracking(self, branch: str) -> str:
        return f"refs/remotes/{self.name}/{branch}"

    def fetch(self, branches: Iterable[str]) -> dict[str, str]:
        """Fetch *branches* (those that exist) from the remote; return branch -> tip."""
        wanted = list(branches)
        result = self.git.run("ls-remote", "--heads", self.name, *(f"refs/heads/{b}" for b in wanted), check=False)
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or ["no answer"])[-1]
            raise GitError(
                f"cannot read the branches of remote '{self.name}' ({detail}); kittydoit ci job and integrate run "
                "in a clone whose origin holds the feature's WP branches, as CI checks it out"
            )
        listed = result.stdout
        tips = {}
        for line in listed.splitlines():
            sha, ref = line.split("\t", 1)
            tips[ref.removeprefix("refs/heads/")] = sha
        if tips:
            self.git.run("fetch", "--quiet", "--no-tags", self.name,
                         *(f"+refs/heads/{b}:{self.tracking(b)}" for b in tips))  # fmt: skip
        return {b: tips[b] for b in wanted if b in tips}

    def states(self, ctx: Context, target: str) -> dict[str, WPState]:
        """Fetch the target and every WP branch, and return each WP's state."""
        feature = ctx.feature
        branches = {wp_id: self.branch(wp_id) for wp_id in feature.wps}
        fetched = self.fetch([target, *branches.values()])
        tips = {wp_id: fetched.get(branch) for wp_id, branch in branches.items()}
        seals = {wp_id: self.read_seal(tip) for wp_id, tip in tips.items() if tip}
        prints = {wp_id: fingerprint(ctx, wp_id) for wp_id in feature.wps}
        return assess(feature, prints, tips, seals)

    def read_seal(self, commit: str) -> Seal | None:
        message = self.git.run("show", "-s", "--format=%B", commit).stdout
        return Seal.parse(commit, message)

    def push(self, local: str, branch: str, expected: str | None) -> str | None:
        """Push *local* to *branch* if its tip is still *expected* (None: it must not exist); None when it landed.

        Otherwise return why not: another run of the same WP pushed first, and its work is kept.
        """
        lease = f"--force-with-lease=refs/heads/{branch}:{expected or ''}"
        result = self.git.run("push", "--quiet", "--porcelain", lease, self.name, f"{local}:refs/heads/{branch}",
                              check=False)  # fmt: skip
        if result.returncode == 0:
            return None
        now = self.git.run("ls-remote", "--heads", self.name, f"refs/heads/{branch}", check=False).stdout.split()
        if (now[0] if now else None) != expected:
            return f"{branch} moved on {self.name} since it was fetched (another run pushed to it first)"
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise GitError(f"git push {self.name} {branch} failed: {detail[-1] if detail else result.returncode}")

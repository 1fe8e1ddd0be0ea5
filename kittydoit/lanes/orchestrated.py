"""Lanes of a spec-kitty 3.x mission, moved only through spec-kitty's own orchestrator contract.

kittydoit reads the mission's event log (:mod:`kittydoit.lanes.eventlog`) and never writes it: each move is a
``spec-kitty orchestrator-api`` call (:mod:`kittydoit.speckitty`), so spec-kitty's state machine, guards, locks and
commits apply, and no move needs ``--force``. One WP goes:

1. ``start-implementation`` (planned -> claimed -> in_progress): spec-kitty allocates the WP's execution-lane
   worktree and answers its ``workspace_path``, where the implementer runs; kittydoit makes no worktree of its own;
2. the implementer, then a commit of what it left;
3. ``spec-kitty agent tasks mark-status`` for the WP's ``subtasks`` (the ``for_review`` gate needs them done), then
   ``transition --to for_review``;
4. ``start-review`` (for_review -> in_review), the reviewer in the same worktree;
5. ``transition --to approved`` with a ``review_result`` (verdict approved), or a rejected review's
   ``review-cycle-N.md`` written by spec-kitty's own code and ``transition --to in_progress`` with a
   ``changes_requested`` review result pointing at it, then 2-5 again.

kittydoit stops at ``approved``; ``spec-kitty merge`` lands the mission (and writes ``done``).

Every move carries a ``--policy`` that says what kittydoit runs (:func:`policy`). A WP that kittydoit left claimed,
in progress or in review (its last move carries kittydoit's policy) is picked up again by the next run; one that
someone else holds is reported and left alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kittydoit import __version__
from kittydoit.config import AgentSettings
from kittydoit.feature import Feature, mission_log
from kittydoit.git import Git
from kittydoit.lanes import eventlog
from kittydoit.lanes.base import NO_DETAILS, Feedback, LaneError
from kittydoit.speckitty import SpecKitty, SpecKittyFailure

ORCHESTRATOR_ID = "kittydoit"
IMPLEMENTED = frozenset({"for_review", "in_review"})
FINISHED = frozenset({"approved", "done", "canceled"})
_HELD = frozenset({"claimed", "in_progress", "in_review"})

# Flags (or flag-value pairs) that let an agent act without asking. spec-kitty refuses some of them outright in a
# policy (--yolo, --full-auto, --dangerously-*); the others it records.
_BYPASS_FLAGS = frozenset(
    {"--yolo", "--full-auto", "--dangerously-skip-permissions", "--dangerously-bypass-approvals-and-sandbox",
     "--allow-all-tools", "--force", "--auto", "--trust"}
)  # fmt: skip
_BYPASS_VALUES = {
    "--permission-mode": {"bypassPermissions", "acceptEdits"},
    "--approval-mode": {"yolo", "auto_edit"},
    "-s": {"danger-full-access"},
    "--sandbox": {"danger-full-access"},
}
_READ_ONLY = {  # how a review role is kept from editing, by flag
    "--permission-mode": {"dontAsk", "plan"},
    "--approval-mode": {"plan"},
    "-s": {"read-only"},
    "--sandbox": {"read-only"},
    "--deny-tool": {"write"},
    "--agent": {"plan"},
    "--mode": {"ask"},
}


def policy(agents: Sequence[AgentSettings], role: str) -> dict[str, Any]:
    """Return the ``--policy`` for running *agents* (any of them may run) in *role*: what kittydoit really does.

    ``dangerous_flags`` lists every flag of their command lines that lets an agent act without asking;
    ``approval_mode`` is ``bypassed`` when there is one (``never-asked`` otherwise: headless agents never wait for
    an answer); ``sandbox_mode`` is the agent's own sandbox when it has one (codex ``-s``), ``read-only`` when the
    role's flags keep it from editing, else ``none`` (it runs with the user's rights in the worktree).
    """
    dangerous: list[str] = []
    sandboxes: list[str] = []
    for agent in agents:
        argv = list(agent.spec.args.get(role, ()))
        flags = _bypass_flags(argv)
        dangerous += [f for f in flags if f not in dangerous]
        sandboxes.append(_sandbox(argv))
    return {
        "orchestrator_id": ORCHESTRATOR_ID,
        "orchestrator_version": __version__,
        "agent_family": ",".join(a.id for a in agents) or "none",
        "approval_mode": "bypassed" if dangerous else "never-asked",
        "sandbox_mode": ",".join(dict.fromkeys(sandboxes)) or "none",
        "network_mode": "unrestricted",
        "dangerous_flags": dangerous,
    }


def _bypass_flags(argv: Sequence[str]) -> list[str]:
    found = []
    for index, arg in enumerate(argv):
        if arg in _BYPASS_FLAGS:
            found.append(arg)
        elif arg in _BYPASS_VALUES and index + 1 < len(argv) and argv[index + 1] in _BYPASS_VALUES[arg]:
            found.append(f"{arg} {argv[index + 1]}")
    return found


def _sandbox(argv: Sequence[str]) -> str:
    for index, arg in enumerate(argv[:-1]):
        if arg in ("-s", "--sandbox"):
            return argv[index + 1]
        if arg in _READ_ONLY and argv[index + 1] in _READ_ONLY[arg]:
            return "read-only"
    return "none"


class MissionLanes:
    """The lanes of one 3.x mission: read from its event log, moved through spec-kitty."""

    kind = "spec-kitty 3.x event log"

    def __init__(self, feature: Feature, speckitty: SpecKitty, base_dir: Path) -> None:
        self.feature = feature
        self.sk = speckitty
        self.base_dir = base_dir  # where each WP's review base (the commit before its work) is kept
        self.mission = feature.slug

    # ---- reading ------------------------------------------------------------------------------------------

    def wp_log(self, wp_id: str) -> eventlog.WPLog:
        """Return what the mission's event log says of *wp_id* now."""
        return mission_log(self.feature).get(wp_id) or eventlog.WPLog()

    def lane(self, wp_id: str) -> str:
        return self.wp_log(wp_id).lane

    def implemented_by(self, wp_id: str) -> str | None:
        """Return the implementer when the WP is for_review or in_review, else None."""
        entry = self.wp_log(wp_id)
        if entry.lane not in IMPLEMENTED:
            return None
        done = next((t for t in reversed(entry.transitions) if t.to_lane == "for_review"), None)
        return str(done.actor).split(":", 1)[0] if done is not None and done.actor else "unknown"

    def location(self, wp_id: str) -> str:
        """Return where a person sees and changes the WP's lane."""
        return f"spec-kitty's event log of {self.mission} (`spec-kitty agent tasks status --mission {self.mission}`)"

    def pending_feedback(self, wp_id: str) -> Feedback | None:
        """Return the feedback of the last review when it asked for changes that are not yet implemented."""
        entry = self.wp_log(wp_id)
        result = entry.review_result or {}
        if entry.lane not in ("in_progress", "planned", "claimed") or result.get("verdict") != "changes_requested":
            return None
        text = self._review_cycle_text(str(result.get("reference") or ""))
        return Feedback(text or NO_DETAILS, str(result.get("reviewer") or ""))

    def _review_cycle_text(self, pointer: str) -> str | None:
        prefix = "review-cycle://"
        if not pointer.startswith(prefix):
            return None
        parts = pointer[len(prefix) :].split("/")
        if len(parts) != 3:
            return None
        path = self.feature.path / "tasks" / parts[1] / parts[2]
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            return None
        if text.startswith("---"):
            end = text.find("\n---", 3)
            text = text[end + 4 :] if end >= 0 else text
        return text.strip() or None

    # ---- implementing -------------------------------------------------------------------------------------

    def claim(self, wp_id: str, implementers: Sequence[AgentSettings], git: Git) -> tuple[Path, str] | None:
        """Start (or resume) implementing *wp_id*; return its workspace and the commit its own work starts from."""
        entry = self.wp_log(wp_id)  # read the log once: a coord mission's is a `git show`
        lane, held = entry.lane, _holder(entry)
        if held:
            raise LaneError(
                f"{wp_id} is {lane} by {held}, not by kittydoit; kittydoit leaves it alone. Finish it "
                "there, or move it back to planned in spec-kitty to have kittydoit run it"
            )
        if lane == "blocked":
            raise LaneError(f"{wp_id} is blocked in spec-kitty; unblock it (move it to in_progress) to have it run")
        if lane in IMPLEMENTED:  # implemented already: only its workspace is needed, for the review
            workspace = self.workspace(wp_id)
        else:
            if lane in _HELD:  # kittydoit's own, cut off: keep what the interrupted agent left (spec-kitty
                self._keep_leftovers(wp_id, git)  # refuses to go on in a worktree with uncommitted changes)
            implementing = policy(implementers, "implementation")
            workspace = self._workspace(self._api("start-implementation", wp_id, actor=ORCHESTRATOR_ID,
                                                  policy=implementing))  # fmt: skip
        return workspace, self._base(wp_id, workspace, git)

    def _keep_leftovers(self, wp_id: str, git: Git) -> None:
        try:
            workspace = self.workspace(wp_id)
        except LaneError:
            return  # not allocated yet: nothing can be left in it
        if workspace != self.feature.root:  # never commit in the checkout people work in
            git.commit_all(workspace, f"{wp_id}: work left uncommitted by an interrupted attempt")

    def workspace(self, wp_id: str) -> Path:
        """Return the workspace of a WP that has been started (for its review after a resume)."""
        return self._workspace(self._api("resolve-workspace", wp_id))

    def _workspace(self, data: Mapping[str, Any]) -> Path:
        path = Path(str(data.get("workspace_path") or ""))
        if path.is_dir():
            return path
        # A planning-artifact WP outside every lane: spec-kitty names a folder it does not create and works in
        # the main checkout, as kittydoit then does.
        return self.feature.root

    def _base(self, wp_id: str, workspace: Path, git: Git) -> str:
        """Return the commit *wp_id*'s own change starts from, kept across runs (a lane's WPs share a worktree)."""
        path = self.base_dir / f"{wp_id}.base"
        head = git.rev("HEAD", cwd=workspace)
        try:
            kept = path.read_text(encoding="utf-8").strip()
        except OSError:
            kept = ""
        if kept and git.is_ancestor(kept, head, cwd=workspace):
            return kept
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(head + "\n", encoding="utf-8")
        return head

    def implementing(self, wp_id: str, agent: AgentSettings, note: str) -> None:
        """Nothing to record: start-implementation moved the WP to in_progress when it was claimed."""
        del wp_id, agent, note

    def implemented(self, wp_id: str, agent: AgentSettings) -> None:
        """Mark the WP's subtasks done and move it to for_review."""
        self._mark_subtasks(wp_id)
        self._api("transition", wp_id, "--to", "for_review", actor=_actor(agent, "implementer"),
                  policy=policy([agent], "implementation"), note="Implementation ready for review")  # fmt: skip

    def implementation_failed(self, wp_id: str, agent: str, reason: str) -> None:
        """Move a WP whose implementation failed back to planned, with the reason."""
        if self.lane(wp_id) == "in_progress":
            self._api("transition", wp_id, "--to", "planned", actor=f"{agent}:kittydoit",
                      note=f"kittydoit: implementation failed: {reason}"[:500])  # fmt: skip

    def _mark_subtasks(self, wp_id: str) -> None:
        roster = self.feature.wps[wp_id].fields.get("subtasks")
        ids = [str(s) for s in roster] if isinstance(roster, list) else []
        done = self.wp_log(wp_id).subtasks
        todo = [s for s in ids if done.get(s) != "done"]
        if not todo:
            return
        shared = _shared_subtasks(self.feature, wp_id, todo)
        if shared:
            raise LaneError(
                f"{wp_id}'s subtasks {', '.join(sorted(shared))} are also listed by "
                f"{', '.join(sorted(set(shared.values())))}: spec-kitty's mark-status records them there, so {wp_id} "
                f"can never pass its for_review gate without --force. Give {wp_id}'s subtasks ids of their own "
                f"(its `subtasks:` frontmatter and tasks.md)"
            )
        code, out, err = self.sk.run("agent", "tasks", "mark-status", *todo, "--status", "done",
                                     "--mission", self.mission, "--json")  # fmt: skip
        if code != 0:
            raise LaneError(f"spec-kitty could not mark {wp_id}'s subtasks done: {(err or out).strip()[-300:]}")

    # ---- reviewing ----------------------------------------------------------------------------------------

    def start_review(self, wp_id: str, reviewers: Sequence[AgentSettings]) -> None:
        """Claim the review (for_review -> in_review); a review kittydoit had started is simply continued."""
        entry = self.wp_log(wp_id)
        held = _holder(entry)
        if held:
            raise LaneError(f"{wp_id} is in review by {held}, not by kittydoit; kittydoit leaves it alone")
        if entry.lane == "for_review":
            self._api("start-review", wp_id, actor=ORCHESTRATOR_ID, policy=policy(reviewers, "review"))

    def approve_review(self, wp_id: str, reviewer: AgentSettings, note: str, reference: str) -> None:
        """Record the approving review: lane approved (``spec-kitty merge`` lands it and makes it done)."""
        result = {"reviewer": reviewer.id, "verdict": "approved", "reference": reference}
        self._api("transition", wp_id, "--to", "approved", "--review-result-json", json.dumps(result),
                  actor=_actor(reviewer, "reviewer"), policy=policy([reviewer], "review"),
                  note=note)  # fmt: skip

    def reject_review(self, wp_id: str, reviewer: AgentSettings, feedback: str, feedback_file: Path) -> None:
        """Record a rejected review as spec-kitty does: a review-cycle file, and the WP back in progress."""
        del feedback_file  # kittydoit's copy; spec-kitty's review-cycle file is the one that counts
        stem = self.feature.wps[wp_id].path.stem
        cycle = self.sk.function("review_cycle", {
            "root": str(self.feature.root), "mission": self.mission, "wp_id": wp_id, "wp_slug": stem,
            "body": feedback.rstrip("\n") + "\n", "reviewer": reviewer.id,
        })  # fmt: skip
        pointer = str(cycle.get("pointer") or "")
        result = {"reviewer": reviewer.id, "verdict": "changes_requested", "reference": pointer}
        self._api("transition", wp_id, "--to", "in_progress", "--review-ref", pointer,
                  "--review-result-json", json.dumps(result), actor=_actor(reviewer, "reviewer"),
                  policy=policy([reviewer], "review"), note="Changes requested in review (kittydoit)")  # fmt: skip

    # ---- calls --------------------------------------------------------------------------------------------

    def _api(
        self, verb: str, wp_id: str, *args: str, actor: str | None = None, policy: Mapping[str, Any] | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        argv = ["--mission", self.mission, "--wp", wp_id, *args]
        if actor is not None:
            argv += ["--actor", actor]
        if policy is not None:
            argv += ["--policy", json.dumps(policy)]
        if note:
            argv += ["--note", note]
        try:
            return self.sk.api(verb, *argv)
        except SpecKittyFailure as failure:
            raise LaneError(f"{self.feature.relpath(self.feature.path)}: {wp_id}: {failure}") from None


def _holder(entry: eventlog.WPLog) -> str | None:
    """Return who holds a WP claimed, in progress or in review, unless that is kittydoit (its policy says so)."""
    if entry.lane not in _HELD or (entry.policy_metadata or {}).get("orchestrator_id") == ORCHESTRATOR_ID:
        return None
    return entry.actor or "someone"


def _actor(agent: AgentSettings, role: str) -> str:
    """Return the actor spec-kitty records, in its ``tool:model:profile:role`` shape."""
    return f"{agent.id}:{agent.model or 'default'}:kittydoit:{role}"


def _shared_subtasks(feature: Feature, wp_id: str, ids: Sequence[str]) -> dict[str, str]:
    """Return those of *ids* that a WP before *wp_id* also lists (spec-kitty marks them there), with that WP."""
    shared: dict[str, str] = {}
    for other in feature.wps.values():
        if other.id == wp_id:
            break
        roster = other.fields.get("subtasks")
        for subtask in roster if isinstance(roster, list) else []:
            if str(subtask) in ids and str(subtask) not in shared:
                shared[str(subtask)] = other.id
    return shared


def refused_policies(speckitty: SpecKitty, config: Any) -> list[str]:
    """Return, per agent and role, spec-kitty's refusal of the policy kittydoit would send (none: all accepted)."""
    problems = []
    for role in ("implementation", "review"):
        for agent in config.candidates(role):
            answer = speckitty.function("check_policy", {"policy": policy([agent], role)})
            if answer.get("refused"):
                custom = agent.spec.vendor.startswith("custom:")
                where = f"agents.{agent.id}.command" if custom else f"agents.{agent.id}"
                flags = ", ".join(policy([agent], role)["dangerous_flags"]) or "its flags"
                problems.append(
                    f"{agent.id} ({role}): spec-kitty refuses its policy ({answer['refused']}); remove {flags} from "
                    f"{where} in .kittify/agents.yaml, or disable {agent.id} for 3.x missions"
                )
    return problems

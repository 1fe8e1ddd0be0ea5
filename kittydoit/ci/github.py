"""The feature as a GitHub Actions workflow: a job per WP, ``needs:`` from its dependencies, a final integrate job.

Not a matrix: matrix entries cannot depend on each other. The workflow is started by hand
(``workflow_dispatch``); ``permissions: {}`` at the top and ``contents: write`` only on the jobs that push; each
vendor's secret only in the step that runs agents; logs and reports kept as artifacts, which the integrate job
gathers. Per-vendor caps: a plain ``concurrency`` group holds one running and one pending job and cancels the
next, so it cannot count; with ``queue: max`` (up to 100 waiting jobs) it queues instead, so a vendor capped at K
agents gets K such groups, the WPs assigned to them in turn.
"""

from __future__ import annotations

from typing import Any

from kittydoit.ci.pipeline import PYTHON, Pipeline, to_yaml

NAME = "github"
JOB_LIMIT_MINUTES = 360  # GitHub-hosted runners stop a job after 6 hours


def path(feature: str) -> str:
    return f".github/workflows/kittydoit-{feature}.yml"


def warnings(pipeline: Pipeline) -> list[str]:
    if pipeline.job_minutes <= JOB_LIMIT_MINUTES:
        return []
    return [
        f"a WP's worst case ({pipeline.worst_case_minutes} min with setup {pipeline.job_minutes} min) does not fit "
        f"GitHub's {JOB_LIMIT_MINUTES}-minute job limit on hosted runners; timeout-minutes is {JOB_LIMIT_MINUTES}, "
        "so such a WP is cut off before kittydoit can push its work. Lower timeout_seconds, max_retries or "
        "review_cycles in .kittify/agents.yaml, or run on self-hosted runners"
    ]


def render(pipeline: Pipeline, command: str) -> str:
    """Return the workflow file."""
    minutes = min(pipeline.job_minutes, JOB_LIMIT_MINUTES)
    groups = pipeline.slot_groups()
    jobs: dict[str, Any] = {}
    for job in pipeline.jobs:
        jobs[job.wp] = {
            "name": f"{job.wp}: {job.title}",
            **({"needs": list(job.needs)} if job.needs else {}),
            "runs-on": "ubuntu-latest",
            "timeout-minutes": minutes,
            **({"concurrency": {"group": groups[job.wp], "queue": "max"}} if job.wp in groups else {}),
            "permissions": {"contents": "write"},
            "steps": [
                *_setup(pipeline),
                *_agent_install(pipeline),
                {
                    "name": f"Run {job.wp} (kittydoit: retries, fallback, review cycles; pushes its branch)",
                    "run": pipeline.job_command(job.wp),
                    **({"env": {s: f"${{{{ secrets.{s} }}}}" for s in pipeline.secrets}} if pipeline.secrets else {}),
                },
                {
                    "name": "Keep the logs and the report",
                    "if": "${{ always() }}",
                    "uses": "actions/upload-artifact@v6",
                    "with": {
                        "name": f"{pipeline.artifact}-{job.wp}",
                        "path": "\n".join(pipeline.kept_paths()) + "\n",
                        "if-no-files-found": "ignore",
                    },
                },
            ],
        }
    jobs["integrate"] = {
        "name": f"Integrate {pipeline.feature}",
        "needs": list(pipeline.integrate_needs),
        "if": "${{ !cancelled() }}",
        "runs-on": "ubuntu-latest",
        "timeout-minutes": 30,
        "permissions": {"contents": "write"},
        "steps": [
            *_setup(pipeline),
            {
                "name": "Gather the reports of the WP jobs",
                "uses": "actions/download-artifact@v7",
                "with": {"pattern": f"{pipeline.artifact}-WP*", "merge-multiple": True, "path": ".kittify"},
            },
            {"name": "Merge the sealed WPs, move the lanes, write the summary", "run": pipeline.integrate_command()},
            {
                "name": "Keep the merged report",
                "if": "${{ always() }}",
                "uses": "actions/upload-artifact@v6",
                "with": {"name": f"{pipeline.artifact}-report", "path": ".kittify/reports/\n",
                         "if-no-files-found": "ignore"},
            },
        ],
    }
    document: dict[str, Any] = {
        "name": f"kittydoit {pipeline.feature}",
        "on": {"workflow_dispatch": {}},
        "permissions": {},
        "jobs": jobs,
    }
    return "\n".join([*_header(pipeline, command), *to_yaml(document)]) + "\n"


def _header(pipeline: Pipeline, command: str) -> list[str]:
    lines = [
        f"# Written by `{command}` from kitty-specs/{pipeline.feature}/ ({pipeline.name}).",
        "# Do not edit: change the WPs or .kittify/agents.yaml and run it again; `--check` in your normal CI fails",
        "# when this file no longer matches. Dispatch it from the Actions tab (or `gh workflow run`).",
        "#",
        "# State lives in git only: each WP job pushes its branch <feature>-WPxx with a lease, sealed when done;",
        "# a WP sealed for its current spec, settings and dependencies does no agent work when dispatched again.",
        "# The integrate job merges the sealed branches into <feature>-integration and moves the lanes there.",
        *(f"# {note}" for note in pipeline.notes),
    ]
    if pipeline.secrets:
        lines.append(f"# Secrets to set (repository settings, Actions secrets): {', '.join(pipeline.secrets)}.")
    if pipeline.caps:
        caps = ", ".join(f"{vendor} {n}" for vendor, n in sorted(pipeline.caps.items()))
        lines += [
            f"# Per-vendor caps (max_concurrent in agents.yaml: {caps}) as concurrency groups with queue: max, one",
            "# per agent allowed, the WPs of that implementer's vendor assigned to them in turn: a job waits for its",
            "# own group even while another is free, at most 100 wait per group, and reviewers of another vendor",
            "# are not counted. Agent health (rate-limit cooldowns) is per machine.",
        ]
    return lines


def _setup(pipeline: Pipeline) -> list[dict[str, Any]]:
    return [
        {"name": "Check out the repository with its history", "uses": "actions/checkout@v5",
         "with": {"fetch-depth": 0}},
        {"uses": "actions/setup-python@v6", "with": {"python-version": PYTHON}},
        {"name": "Install kittydoit", "run": pipeline.install},
    ]  # fmt: skip


def _agent_install(pipeline: Pipeline) -> list[dict[str, Any]]:
    if not pipeline.npm_packages:
        return []
    return [{"name": "Install the agent CLIs", "run": "npm install --global " + " ".join(pipeline.npm_packages)}]


"""The feature as a GitLab CI pipeline: a job per WP with ``needs:``, then an integrate job with ``when: always``.

Include the file from ``.gitlab-ci.yml``. GitLab checks out a detached commit and its job token cannot push, so
each job names its branch and, given a ``KITTYDOIT_PUSH_TOKEN`` variable (a project access token with
``write_repository``), pushes with it. Per-vendor caps become resource groups: a vendor capped at K agents gets K
groups, WPs assigned to them in turn; a job waits for its own group (queued, not cancelled), even while another
of that vendor's groups is free. Secrets: GitLab gives CI/CD variables to every job of the pipeline, not to one
step; mask and protect them.
"""

from __future__ import annotations

from typing import Any

from kittydoit.ci.pipeline import PYTHON, Pipeline, to_yaml

NAME = "gitlab"
NEEDS_LIMIT = 50  # GitLab's default limit of needs per job
_BRANCH = 'git checkout -B "$CI_COMMIT_REF_NAME" "$CI_COMMIT_SHA"'
_PUSH_URL = (
    'if [ -n "${KITTYDOIT_PUSH_TOKEN:-}" ]; then git remote set-url origin '
    '"https://kittydoit:${KITTYDOIT_PUSH_TOKEN}@${CI_SERVER_HOST}/${CI_PROJECT_PATH}.git"; fi'
)


def path(feature: str) -> str:
    return f".gitlab/kittydoit-{feature}.yml"


def warnings(pipeline: Pipeline) -> list[str]:
    found = []
    if pipeline.job_minutes > 60:
        found.append(
            f"a WP's worst case with setup is {pipeline.job_minutes} min; GitLab's project timeout is 60 min "
            "unless raised (Settings > CI/CD > General pipelines), and a runner's maximum timeout caps it too"
        )
    crowded = [job.wp for job in pipeline.jobs if len(job.needs) > NEEDS_LIMIT]
    if crowded:
        found.append(f"{', '.join(crowded)} need more than {NEEDS_LIMIT} jobs, GitLab's default limit of needs")
    return found


def render(pipeline: Pipeline, command: str) -> str:
    """Return the pipeline file."""
    setup = [_BRANCH, _PUSH_URL, pipeline.install]
    if pipeline.npm_packages:
        setup += [
            "command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm)",
            "npm install --global " + " ".join(pipeline.npm_packages),
        ]
    hidden = f".kittydoit-{pipeline.feature}"
    document: dict[str, Any] = {
        "stages": ["kittydoit-wps", "kittydoit-integrate"],
        "variables": {"GIT_DEPTH": "0", "GIT_STRATEGY": "clone"},
        hidden: {
            "image": f"python:{PYTHON}",
            "stage": "kittydoit-wps",
            "timeout": f"{pipeline.job_minutes} minutes",
            "before_script": setup,
            "artifacts": {"when": "always", "paths": list(pipeline.kept_paths()), "expire_in": "30 days"},
        },
    }
    # Job names show the titles, and the feature: several features' pipelines may be included in one file.
    names = {job.wp: f"{pipeline.feature} {job.wp}: {job.title}" for job in pipeline.jobs}
    groups = pipeline.slot_groups()
    for job in pipeline.jobs:
        needs = [names[wp] for wp in job.needs]
        entry: dict[str, Any] = {"extends": hidden, "needs": needs, "script": [pipeline.job_command(job.wp)]}
        if job.wp in groups:
            entry["resource_group"] = groups[job.wp]
        document[names[job.wp]] = entry
    integrate: dict[str, Any] = {
        "image": f"python:{PYTHON}",
        "stage": "kittydoit-integrate",
        "when": "always",
        "timeout": "30 minutes",
        "before_script": [_BRANCH, _PUSH_URL, pipeline.install],
        "script": [pipeline.integrate_command()],
        "artifacts": {"when": "always", "paths": [".kittify/reports/"], "expire_in": "30 days"},
    }
    if len(pipeline.jobs) <= NEEDS_LIMIT:
        integrate["needs"] = [names[wp] for wp in pipeline.integrate_needs]  # else it waits for the whole first stage
    document[f"integrate-{pipeline.feature}"] = integrate
    return "\n".join([*_header(pipeline, command), *to_yaml(document)]) + "\n"


def _header(pipeline: Pipeline, command: str) -> list[str]:
    lines = [
        f"# Written by `{command}` from kitty-specs/{pipeline.feature}/ ({pipeline.name}).",
        "# Do not edit: change the WPs or .kittify/agents.yaml and run it again; `--check` fails when this file no",
        "# longer matches. Include it from .gitlab-ci.yml:",
        f"#   include: {{local: {path(pipeline.feature)}}}",
        "# State lives in git only: each WP job pushes its branch <feature>-WPxx with a lease, sealed when done.",
        "# To push, set a masked CI/CD variable KITTYDOIT_PUSH_TOKEN (project access token, write_repository).",
        *(f"# {note}" for note in pipeline.notes),
    ]
    if pipeline.secrets:
        names = ", ".join(pipeline.secrets)
        lines.append(f"# CI/CD variables for the agents: {names} (GitLab gives them to every job).")
    if pipeline.caps:
        caps = ", ".join(f"{vendor} {n}" for vendor, n in sorted(pipeline.caps.items()))
        lines += [
            f"# Per-vendor caps (max_concurrent in agents.yaml: {caps}) as resource groups, one per agent allowed,",
            "# the WPs of that implementer's vendor assigned to them in turn: a job waits for its own group even",
            "# while another is free, and reviewers of another vendor are not counted.",
        ]
    return lines

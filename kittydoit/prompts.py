"""Render the prompts agents get, from jinja2 templates a repository may override.

The shipped templates (``implement.md.j2``, ``reimplement.md.j2``, ``review.md.j2``) live in ``templates/``;
a file of the same name in the repository's ``.kittify/templates/`` takes precedence. Templates are strict:
a misspelt variable is an error naming the template, never an empty stretch of prompt.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import jinja2

from kittydoit.errors import ConfigError
from kittydoit.resources import shipped

IMPLEMENT = "implement.md.j2"
REIMPLEMENT = "reimplement.md.j2"
REVIEW = "review.md.j2"
OVERRIDE_DIR = Path(".kittify") / "templates"


class Prompts:
    """The prompt templates of one repository."""

    def __init__(self, root: Path) -> None:
        self.override_dir = root / OVERRIDE_DIR
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(self.override_dir), str(shipped("templates"))]),
            bytecode_cache=_Compiled(str(_cache_dir())),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,  # noqa: S701 -- prompts are plain text for agents, not HTML
        )

    def source_path(self, name: str) -> Path:
        """Return the file the template *name* is read from."""
        override = self.override_dir / name
        return override if override.is_file() else shipped("templates") / name

    def digest(self, *names: str) -> str:
        """Return a hash of the templates' text: a changed template makes the WPs that use it stale."""
        sha = hashlib.sha256()
        for name in names:
            sha.update(self.source_path(name).read_bytes())
        return sha.hexdigest()

    def render(self, name: str, context: Mapping[str, object]) -> str:
        """Render template *name*; a template error names the template file and the problem."""
        try:
            return self._env.get_template(name).render(context)
        except jinja2.TemplateSyntaxError as error:
            raise ConfigError(self.source_path(name), f"line {error.lineno}: {error.message}") from None
        except jinja2.UndefinedError as error:
            raise ConfigError(
                self.source_path(name), f"{error.message}; use only the variables the shipped template uses"
            ) from None
        except jinja2.TemplateNotFound:
            raise ConfigError(self.source_path(name), "template not found") from None


def _cache_dir() -> Path:
    """Return where compiled templates are kept: the user's cache, shared by every repository (the shipped
    templates are the same everywhere; jinja2 keys each by its name and text, and checks the Python version)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kittydoit" / "templates"


class _Compiled(jinja2.FileSystemBytecodeCache):
    """Templates kept compiled between runs (compiling the three prompts is about 30 ms of every start). A cache
    that cannot be written makes a start slower, nothing else."""

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            Path(self.directory).mkdir(parents=True, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:
            pass

"""spec-kitty itself, for 3.x missions: found on PATH, its orchestrator contract checked, its commands made cheap.

kittydoit never writes a 3.x mission's ``status.events.jsonl`` or ``status.json``: every lane move is a call of
``spec-kitty orchestrator-api`` (and subtask marks ``spec-kitty agent tasks mark-status``), so spec-kitty's own
guards, locks and commits apply. Each such command is a new Python process that spends one and a half to two
seconds starting before its own work (0.05-0.2 s, most of it the git commands spec-kitty runs), so a run starts
:mod:`kittydoit.speckitty_server` once, in spec-kitty's own interpreter, and sends it the same command lines over a
Unix socket, which leaves each call its own work. The plain ``spec-kitty``
command stays the fallback: when the server cannot start, when its answer to ``contract-version`` differs from the
command's, or when it cannot be reached later, calls go to the command, with a line in the log saying so.

:meth:`SpecKitty.start` checks the contract once, before anything starts: spec-kitty missing, or older than contract
:data:`MIN_CONTRACT` (spec-kitty-cli 3.2.6), is refused in one line that says how to install a supported one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import selectors
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kittydoit import __version__
from kittydoit.errors import UserError

log = logging.getLogger(__name__)

MIN_CONTRACT = (1, 3, 0)  # --review-result-json, spec-kitty-cli 3.2.6
INSTALL = "pip install 'spec-kitty-cli>=3.2.6' (or pipx install spec-kitty-cli), so that `spec-kitty` is on PATH"
_SERVER = Path(__file__).with_name("speckitty_server.py")
_CALL_TIMEOUT = 300.0  # a status lock held by a stuck spec-kitty process must not hang a run forever
_START_TIMEOUT = 60.0
_CONTRACT = ("orchestrator-api", "contract-version", "--provider-version", __version__)


class SpecKittyMissing(UserError):
    """spec-kitty is not installed, or too old for kittydoit to drive a 3.x mission."""


class SpecKittyFailure(Exception):
    """A spec-kitty call failed; ``code`` is its error code (``TRANSITION_REJECTED``, ...) when it gave one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class SpecKitty:
    """The spec-kitty a run uses, for the repository at *root*."""

    root: Path
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    binary: str | None = None
    address: str | None = None  # the server's abstract socket, once it answers
    contract: str | None = None
    plain_flag: Path | None = None  # when it exists, every process of the run uses plain commands
    _server: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _check: subprocess.Popen[str] | None = field(default=None, repr=False)
    _served_contract: Any = field(default=None, repr=False)

    # ---- start and stop -----------------------------------------------------------------------------------

    def start(self, log_path: Path | None = None, plain_flag: Path | None = None) -> str:
        """Check spec-kitty's contract and start the server; return a line saying how calls will go.

        The contract is checked through the server as soon as it listens. The plain command's answer is compared
        with the server's while the run goes on (:meth:`compare`): when they differ, *plain_flag* is written and
        every process of the run uses plain commands from then on. Raise SpecKittyMissing when spec-kitty is not
        installed or too old.
        """
        self.binary = shutil.which("spec-kitty", path=self.environ.get("PATH"))
        if self.binary is None:
            raise SpecKittyMissing(None, f"spec-kitty is not installed; 3.x missions run through it. {INSTALL}")
        self.plain_flag = plain_flag
        if plain_flag is not None:
            plain_flag.unlink(missing_ok=True)
        python = _interpreter(Path(self.binary))
        spawned = self._spawn_server(python, log_path) if python else None
        address = self._await_server(spawned) if spawned else None
        served = None
        if address is not None:
            self.address = address
            served = self._served(list(_CONTRACT))
        if served is None:  # no server: the plain command checks the contract, and serves every call
            self.close()
            self.contract = _contract(self._plain(list(_CONTRACT)).stdout, self.binary)
            how = "plain commands" + ("" if python else " (its interpreter was not found)")
            return f"spec-kitty contract {self.contract} at {self.binary}: {how}"
        self.contract = _contract(str(served.get("stdout", "")), self.binary)
        self._served_contract = _data(str(served.get("stdout", "")))
        self._check = subprocess.Popen(
            [self.binary, *_CONTRACT], cwd=self.root, env=self._env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        return f"spec-kitty contract {self.contract} at {self.binary}, served by one long-lived process"

    def compare(self, wait: bool = False) -> None:
        """Once the plain command has answered contract-version, fall back to it for good if the server differs."""
        check = self._check
        if check is None or (not wait and check.poll() is None):
            return
        self._check = None
        try:
            out, _ = check.communicate(timeout=_CALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            check.kill()
            check.communicate()
            return
        if _data(out) != self._served_contract:
            log.warning("spec-kitty's server did not answer as `spec-kitty` does; using plain commands (slower)")
            if self.plain_flag is not None:
                self.plain_flag.parent.mkdir(parents=True, exist_ok=True)
                self.plain_flag.write_text("the server's contract-version differed from `spec-kitty`'s\n")
            self.address = None

    def close(self) -> None:
        """Stop the server (closing its stdin is what stops it)."""
        if self._check is not None:
            self.compare(wait=True)
        server, self._server = self._server, None
        self.address = None
        if server is None:
            return
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    # ---- calls --------------------------------------------------------------------------------------------

    def api(self, verb: str, *args: str) -> dict[str, Any]:
        """Run ``spec-kitty orchestrator-api VERB ARGS``; return its ``data``, or raise SpecKittyFailure."""
        code, out, err = self.run("orchestrator-api", verb, *args)
        envelope = _envelope(out)
        if envelope is None:
            answer = _tail(err, out)
            raise SpecKittyFailure(f"spec-kitty orchestrator-api {verb} gave no answer (exit {code}): {answer}")
        if not envelope.get("success"):
            data = envelope.get("data") or {}
            message = data.get("message") if isinstance(data, dict) else None
            error_code = envelope.get("error_code")
            raise SpecKittyFailure(f"spec-kitty refused {verb}: {error_code}: {message or _tail(err, out)}", error_code)
        data = envelope.get("data")
        return data if isinstance(data, dict) else {}

    def run(self, *argv: str) -> tuple[int, str, str]:
        """Run ``spec-kitty ARGV`` (through the server when it is up); return exit code, stdout and stderr."""
        if self.address is not None and self.plain_flag is not None and self.plain_flag.exists():
            self.address = None  # the run found the server answering differently: plain commands from now on
        if self.address is not None:
            answer = self._served(list(argv))
            if answer is not None:
                return int(answer.get("code", 1)), str(answer.get("stdout", "")), str(answer.get("stderr", ""))
            log.warning("spec-kitty's server went away; using plain commands from here on")
            self.address = None
        result = self._plain(list(argv))
        return result.returncode, result.stdout, result.stderr

    def function(self, name: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Run one of the server's spec-kitty functions (see speckitty_server.CALLS); return its result."""
        answer = self._served([], call=name, args=args) if self.address is not None else None
        if answer is None:
            python = _interpreter(Path(self.binary or "spec-kitty"))
            if python is None:  # spec-kitty behind a wrapper script: kittydoit's own copy of the rule
                return _LOCAL[name](args)
            result = subprocess.run(
                [str(python), str(_SERVER), "--call", name],
                input=json.dumps(dict(args)), capture_output=True, text=True, cwd=self.root,
                env=self._env(), timeout=_CALL_TIMEOUT, check=False,
            )  # fmt: skip
            answer = _envelope(result.stdout) or {"code": 1, "error": _tail(result.stderr, result.stdout)}
        if answer.get("code") != 0:
            raise SpecKittyFailure(f"spec-kitty's {name} failed: {answer.get('error')}")
        result_data = answer.get("result")
        return result_data if isinstance(result_data, dict) else {}

    # ---- internals ----------------------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        return {**self.environ, "SPEC_KITTY_NO_UPGRADE_CHECK": "1"}  # no network look-up on every call

    def _plain(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [self.binary or "spec-kitty", *argv], capture_output=True, text=True, cwd=self.root,
                env=self._env(), stdin=subprocess.DEVNULL, timeout=_CALL_TIMEOUT, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise SpecKittyFailure(f"spec-kitty {' '.join(argv[:2])} did not answer in {_CALL_TIMEOUT:.0f} s") from None
        except OSError as error:
            raise SpecKittyFailure(f"cannot run spec-kitty: {error}") from None

    def _spawn_server(self, python: Path, log_path: Path | None) -> tuple[subprocess.Popen[bytes], str] | None:
        address = f"kittydoit-spec-kitty-{os.getpid()}-{os.urandom(6).hex()}"
        errors: IO[bytes] | int = subprocess.DEVNULL
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            errors = log_path.open("ab")
        try:
            server = subprocess.Popen(
                [str(python), str(_SERVER), address], cwd=self.root, env=self._env(),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
            )  # fmt: skip
        except OSError as error:
            log.warning("cannot start spec-kitty's server (%s); using plain commands", error)
            return None
        finally:
            if not isinstance(errors, int):
                errors.close()
        self._server = server
        return server, address

    def _await_server(self, spawned: tuple[subprocess.Popen[bytes], str]) -> str | None:
        server, address = spawned
        if server.stdout is None:
            return None
        with selectors.DefaultSelector() as selector:
            selector.register(server.stdout, selectors.EVENT_READ)
            if not selector.select(_START_TIMEOUT):
                return None
        line = server.stdout.readline()
        server.stdout.close()
        return address if line.strip() == b"ready" else None

    def _served(self, argv: list[str], call: str | None = None, args: Mapping[str, Any] | None = None) -> Any:
        """Return the server's answer to one request, or None when it cannot be reached."""
        request: dict[str, Any] = {"cwd": str(self.root)}
        if call is None:
            request["argv"] = argv
        else:
            request |= {"call": call, "args": dict(args or {})}
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(_CALL_TIMEOUT)
                conn.connect("\0" + (self.address or ""))
                with conn.makefile("rwb") as stream:
                    stream.write(json.dumps(request).encode() + b"\n")
                    stream.flush()
                    line = stream.readline()
        except OSError:
            return None
        try:
            return json.loads(line) if line else None
        except ValueError:
            return None


# What spec-kitty 3.2.7 does for the two functions the server runs, for when spec-kitty's interpreter cannot be
# found (a wrapper script as `spec-kitty`): its policy rules (orchestrator_api/envelope.py) and the review-cycle
# file its review commands write (review/cycle.py).
_BANNED = ("--full-auto", "--yolo", "--dangerously-bypass-approvals-and-sandbox", "--dangerously-skip-permissions")
_SECRET = re.compile(r"(token|secret|key|password|credential)", re.IGNORECASE)


def _local_check_policy(args: Mapping[str, Any]) -> dict[str, Any]:
    policy = args["policy"]
    for flag in policy.get("dangerous_flags", []):
        if flag in _BANNED:
            return {"refused": f"--policy.dangerous_flags contains a banned flag: {flag!r}"}
    for key, value in policy.items():
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and _SECRET.search(v) for v in values):
            return {"refused": f"--policy field '{key}' appears to contain a secret"}
    return {"refused": None}


def _local_review_cycle(args: Mapping[str, Any]) -> dict[str, Any]:
    folder = Path(args["root"]) / "kitty-specs" / args["mission"] / "tasks" / args["wp_slug"]
    folder.mkdir(parents=True, exist_ok=True)
    names = (re.fullmatch(r"review-cycle-(\d+)\.md", p.name) for p in folder.glob("review-cycle-*.md"))
    numbers = [int(m.group(1)) for m in names if m]
    cycle = max(numbers, default=0) + 1
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = folder / f"review-cycle-{cycle}.md"
    path.write_text(
        f"---\naffected_files: []\ncycle_number: {cycle}\nmission_slug: {args['mission']}\nreproduction_command:\n"
        f"reviewed_at: '{when}'\nreviewer_agent: {args['reviewer']}\nwp_id: {args['wp_id']}\n---\n\n{args['body']}",
        encoding="utf-8",
    )
    pointer = f"review-cycle://{args['mission']}/{args['wp_slug']}/review-cycle-{cycle}.md"
    return {"pointer": pointer, "path": str(path)}


_LOCAL = {"check_policy": _local_check_policy, "review_cycle": _local_review_cycle}


def _interpreter(binary: Path) -> Path | None:
    """Return the Python interpreter of the ``spec-kitty`` script (its ``#!`` line), or None."""
    try:
        with binary.open("rb") as handle:
            first = handle.readline(4096).decode("utf-8", "replace").strip()
    except OSError:
        return None
    match = re.fullmatch(r"#!\s*(\S*python[\d.]*)", first)
    if not match:
        return None
    python = Path(match.group(1))
    return python if python.is_file() and os.access(python, os.X_OK) else None


def _envelope(text: str) -> dict[str, Any] | None:
    """Return the JSON object a spec-kitty command printed (its last JSON line), or None."""
    for raw in reversed(text.strip().splitlines()):
        line = raw.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            return value if isinstance(value, dict) else None
    with_whole = text.strip()
    if with_whole.startswith("{"):
        try:
            value = json.loads(with_whole)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None
    return None


def _data(stdout: str) -> Any:
    return (_envelope(stdout) or {}).get("data")


def _contract(stdout: str, binary: str) -> str:
    """Return the contract version spec-kitty reports; refuse one older than MIN_CONTRACT."""
    envelope = _envelope(stdout)
    version = str(((envelope or {}).get("data") or {}).get("api_version") or "")
    if not envelope or not envelope.get("success") or not version:
        raise SpecKittyMissing(
            binary,
            "has no orchestrator-api contract-version (spec-kitty-cli older than 1.0?); "
            f"kittydoit needs contract {'.'.join(map(str, MIN_CONTRACT))} or newer: {INSTALL}",
        )
    parts = tuple(int(p) for p in re.findall(r"\d+", version)[:3])
    if parts < MIN_CONTRACT:
        raise SpecKittyMissing(
            binary,
            f"speaks orchestrator-api contract {version}; kittydoit needs {'.'.join(map(str, MIN_CONTRACT))} or "
            f"newer: {INSTALL}",
        )
    return version


def _tail(*texts: str) -> str:
    lines = [line for text in texts for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-3:]) or "no output"

"""The reporter's live view in a terminal: a header and one row per active WP, redrawn in place, events above it.

Part of the reporter, and the only module that uses rich. The reporter gives the view
:class:`Snapshot` values and :class:`~kittydoit.events.Event` values; :func:`render` turns a snapshot into what
is drawn, so the same code draws the README's sample.

**Keeping the terminal clean.** Agents write only to their logs, but doit, Python warnings and kittydoit's own
log messages write to stdout and stderr, from the main process and from doit's worker processes. Any such
write into the middle of a redrawn table garbles it. So while the view is up, :class:`TerminalCapture` points
file descriptors 1 and 2 (those that are terminals) at a pipe, before doit forks its workers, which inherit
it; the view draws on its own copy of the terminal and prints whatever arrives in the pipe above the table,
line by line, with control characters removed. Everything is restored when the view closes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Sequence
from typing import IO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from kittydoit.events import Event, Snapshot, clean
from kittydoit.summary import BLOCKED, FAILED, IMPLEMENTED, INTERRUPTED, Summary, first_line

_PIPE_SIZE = 1 << 20  # room for what is written before the view starts reading
_F_SETPIPE_SZ = 1031  # Linux fcntl; elsewhere the default pipe size is used
_KIND_STYLE = {
    "started": "cyan",
    "done": "green",
    "skipped": "dim",
    "failed": "bold red",
    "blocked": "yellow",
    "attempt_failed": "red",
    "retried": "yellow",
    "fell_back": "yellow",
    "verdict": "magenta",
    "single_agent": "yellow",
}


def render(snapshot: Snapshot) -> RenderableType:
    """Return the live view of *snapshot*: a header line, then a table of the active WPs."""
    header = Text.assemble(
        ("kittydoit ", "bold"),
        (snapshot.feature, "bold cyan"),
        "  ",
        (f"{snapshot.done}/{snapshot.total} done", "green"),
        (f" ({snapshot.skipped} already)" if snapshot.skipped else "", "green"),
        "  ",
        (f"{snapshot.failed} failed", "bold red" if snapshot.failed else "dim"),
        "  ",
        (f"{snapshot.blocked} blocked", "yellow" if snapshot.blocked else "dim"),
        "  ",
        f"{len(snapshot.rows)} running",
        "  ",
        (f"{snapshot.waiting} waiting", "dim"),
        "  ",
        (f"elapsed {clock_time(snapshot.seconds)}", "bold"),
    )
    table = Table(box=None, pad_edge=False, show_edge=False, expand=True, header_style="dim")
    table.add_column("WP", no_wrap=True)
    table.add_column("title", no_wrap=True, overflow="ellipsis", max_width=28)
    table.add_column("phase", no_wrap=True)
    table.add_column("agent", no_wrap=True, overflow="ellipsis", max_width=18)
    table.add_column("try", no_wrap=True, justify="right")
    table.add_column("time", no_wrap=True, justify="right")
    table.add_column("last output", no_wrap=True, overflow="ellipsis", ratio=1)
    for row in snapshot.rows:
        table.add_row(
            Text(row.wp, "bold"),
            row.title,
            Text(row.phase, "magenta" if "review" in row.phase else "cyan"),
            row.agent,
            str(row.attempt) if row.attempt else "",
            clock_time(row.seconds),
            Text(row.last_line, "dim"),
        )
    if not snapshot.rows:
        return header
    return Group(header, table)


def render_event(event: Event, stamp: str) -> Text:
    """Return an event line as printed above the live view (*stamp*: ISO time; the time of day is shown)."""
    shown = stamp[11:19] if len(stamp) >= 19 and stamp[10] == "T" else stamp
    return Text.assemble((shown + " ", "dim"), (clean(event.text), _KIND_STYLE.get(event.kind, "")))


def render_summary(summary: Summary, report_path: str | None) -> RenderableType:
    """Return the end-of-run summary as a panel."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for label, text in summary.figures():
        grid.add_row(label, text)
    if self_reviewed := summary.self_reviewed():
        grid.add_row("single-agent", f"{', '.join(self_reviewed)} reviewed by their own implementer")
    for wp in summary.wps:
        if wp.status == FAILED:
            grid.add_row(Text(f"failed {wp.id}", "bold red"), Text(first_line(wp.reason)))
            if wp.log:
                grid.add_row("", Text(f"log: {wp.log}", "dim"))
        elif wp.status == BLOCKED:
            grid.add_row(Text(f"blocked {wp.id}", "yellow"), f"waits for {wp.reason}")
        elif wp.status == IMPLEMENTED:
            grid.add_row(Text(f"implemented {wp.id}", "yellow"), f"not reviewed; `doit run {wp.id}` reviews it")
        elif wp.status == INTERRUPTED:
            grid.add_row(Text(f"interrupted {wp.id}", "yellow"), wp.title)
    if report_path:
        grid.add_row("report", Text(report_path, "dim"))
    style = "red" if summary.ids(FAILED) or summary.ids(BLOCKED) else "green"
    if summary.status == "aborted":
        style = "yellow"
    return Panel(grid, title=f"{summary.feature}: {summary.headline()}", title_align="left", border_style=style,
                 expand=False)  # fmt: skip


def clock_time(seconds: float) -> str:
    """Return ``0:41`` or ``1:02:03``."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class TerminalCapture:
    """Route writes to file descriptors 1 and 2 into a pipe while the live view is up.

    Only descriptors that are terminals are routed (``2>errors.log`` keeps working). Processes forked while the
    capture is on (doit's workers) inherit the pipe.
    """

    def __init__(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed or odd stream has nothing pending
                stream.flush()
        self.read_fd, write_fd = os.pipe()
        with contextlib.suppress(OSError):  # not Linux, or a lower limit: the default size serves too
            fcntl.fcntl(write_fd, _F_SETPIPE_SZ, _PIPE_SIZE)
        os.set_blocking(self.read_fd, False)
        self._saved: dict[int, int] = {}
        for fd in (1, 2):
            if os.isatty(fd):
                self._saved[fd] = os.dup(fd)
                os.dup2(write_fd, fd)
        os.close(write_fd)
        self._partial = b""

    def lines(self) -> list[str]:
        """Return the complete lines written since the last call."""
        chunks = []
        while True:
            try:
                chunk = os.read(self.read_fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        data = self._partial + b"".join(chunks)
        *complete, self._partial = data.split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in complete]

    def close(self) -> list[str]:
        """Restore descriptors 1 and 2; return what was still in the pipe."""
        if self.read_fd < 0:
            return []
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)
            os.close(saved)
        self._saved = {}
        rest = self.lines()
        if self._partial:
            rest.append(self._partial.decode("utf-8", errors="replace"))
            self._partial = b""
        os.close(self.read_fd)
        self.read_fd = -1
        return rest


class LiveView:
    """The rich live display of a run: events above, a table of the active WPs redrawn in place."""

    def __init__(self, stream: IO[str], *, force_terminal: bool = False) -> None:
        self._terminal = os.fdopen(os.dup(stream.fileno()), "w", encoding="utf-8", errors="replace", closefd=True)
        self.console = Console(file=self._terminal, force_terminal=force_terminal or None, highlight=False,
                               emoji=False, markup=False)  # fmt: skip
        self.capture: TerminalCapture | None = None
        self._live: Live | None = None

    @property
    def fds(self) -> Sequence[int]:
        """Return the descriptors whose input should wake the view (the capture pipe)."""
        return [self.capture.read_fd] if self.capture is not None and self.capture.read_fd >= 0 else []

    def start(self, snapshot: Snapshot) -> None:
        """Show the view; from now on, writes to the terminal are printed above it."""
        self.capture = TerminalCapture()
        self._fit()
        self._live = Live(render(snapshot), console=self.console, auto_refresh=False, transient=True,
                          redirect_stdout=False, redirect_stderr=False)  # fmt: skip
        self._live.start(refresh=True)

    def event(self, event: Event, stamp: str) -> None:
        if event.kind != "skipped":  # the header counts WPs already done; a line each is noise
            self.console.print(render_event(event, stamp), soft_wrap=True)

    def refresh(self, snapshot: Snapshot) -> None:
        """Print what was written to the terminal, then redraw the view."""
        self._print_captured(self.capture.lines() if self.capture is not None else [])
        if self._live is not None:
            self._fit()
            self._live.update(render(snapshot), refresh=True)

    def finish(self, summary: Summary | None, report_path: str | None, errors: Sequence[str]) -> None:
        """Take the view down and print the summary."""
        self._stop()
        for message in errors:
            self.console.print(Text(f"ERROR: {message}", "bold red"))
        if summary is not None:
            self.console.print(render_summary(summary, report_path))

    def close(self) -> None:
        """Restore the terminal (idempotent)."""
        self._stop()
        with contextlib.suppress(OSError):  # the terminal went away: nothing left to tidy
            self._terminal.flush()

    def _stop(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()
        if self.capture is not None:
            capture, self.capture = self.capture, None
            self._print_captured(capture.close())

    def _print_captured(self, lines: Sequence[str]) -> None:
        for line in lines:
            text = clean(line)
            if text.strip():
                self.console.print(Text(text), soft_wrap=True)

    def _fit(self) -> None:
        """Follow the terminal's size (rich would ask descriptors 0-2, which now point at the pipe)."""
        with contextlib.suppress(OSError):  # not a terminal (forced live mode): keep rich's default
            size = os.get_terminal_size(self._terminal.fileno())
            if size.columns and size.lines:
                self.console.size = (size.columns, size.lines)

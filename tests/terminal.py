"""Run the real kittydoit command in a pseudo-terminal, and replay what it wrote on a model of a screen.

:class:`PtyRun` gives the command a real terminal (``os.openpty``, a window size, ``TERM``), so the reporter
chooses its live view on its own. :class:`Screen` is just enough of a terminal to replay what rich writes
for a live display (text, carriage return, line feed, erase line, cursor up, cursor shown or hidden, colours):
the lines left on it are what a person sees at the end. Any other escape sequence fails the test, so a
corrupted or unexpected stream cannot pass unnoticed.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Mapping
from pathlib import Path

_CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    """Return *text* without escape sequences and carriage returns."""
    return ANSI.sub("", text).replace("\r", "")


class PtyRun:
    """The kittydoit command running in a pseudo-terminal of *columns* x *rows*."""

    def __init__(self, cwd: Path, *args: str, env: Mapping[str, str] | None = None, columns: int = 120, rows: int = 40):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        environ = {k: v for k, v in os.environ.items() if k not in ("CI", "KITTYDOIT_PROGRESS", "COLUMNS", "LINES")}
        environ |= {"TERM": "xterm-256color", **(env or {})}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kittydoit", *args],
            cwd=cwd,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=environ,
            start_new_session=True,  # its own process group, as a shell gives a foreground job
        )
        os.close(slave)
        self.master = master
        self.raw = b""

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", errors="replace")

    def read_until(self, condition: Callable[[str], bool], seconds: float = 60, what: str = "output") -> str:
        """Read output until *condition* holds for the output so far (escape sequences removed)."""
        end = time.monotonic() + seconds
        while not condition(plain(self.text)):
            if time.monotonic() > end or not self._read(min(0.5, max(0.0, end - time.monotonic()))):
                if condition(plain(self.text)):
                    break
                raise AssertionError(f"no {what} after {seconds} s; output so far:\n{plain(self.text)[-3000:]}")
        return plain(self.text)

    def interrupt(self) -> None:
        """Press Ctrl-C: SIGINT to the whole foreground process group."""
        os.killpg(self.process.pid, signal.SIGINT)

    def wait(self, seconds: float = 120) -> int:
        """Read everything until the command exits; return its exit status."""
        end = time.monotonic() + seconds
        while self._read(max(0.0, end - time.monotonic())) and time.monotonic() < end:
            pass
        code = self.process.wait(timeout=max(1.0, end - time.monotonic()))
        os.close(self.master)
        return code

    def _read(self, timeout: float) -> bool:
        """Read what is there (waiting up to *timeout*); False once the terminal is closed."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return self.process.poll() is None
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: every process holding the terminal has exited
            return False
        self.raw += chunk
        return bool(chunk)


class Screen:
    """A screen that replays a terminal stream; :attr:`lines` is what is left on it."""

    def __init__(self) -> None:
        self.lines: list[str] = [""]
        self.row = 0
        self.col = 0
        self.cursor_visible = True

    def feed(self, text: str) -> Screen:
        index = 0
        while index < len(text):
            char = text[index]
            if char == "\x1b":
                match = _CSI.match(text, index)
                if match is None:
                    raise AssertionError(f"unexpected escape sequence {text[index:index + 12]!r}")
                self._control(match.group(1), match.group(2))
                index = match.end()
                continue
            if char == "\r":
                self.col = 0
            elif char == "\n":
                self.row += 1
                while len(self.lines) <= self.row:
                    self.lines.append("")
            elif ord(char) < 0x20 and char != "\t":
                raise AssertionError(f"unexpected control character {char!r}")
            else:
                line = self.lines[self.row].ljust(self.col)
                self.lines[self.row] = line[: self.col] + char + line[self.col + 1 :]
                self.col += 1
            index += 1
        return self

    def _control(self, params: str, final: str) -> None:
        if final == "m":
            return  # colours and styles
        if params == "?25" and final in "hl":
            self.cursor_visible = final == "h"
        elif final == "K" and params in ("", "2"):
            self.lines[self.row] = "" if params == "2" else self.lines[self.row][: self.col]
        elif final == "A":
            self.row = max(0, self.row - int(params or 1))
        else:
            raise AssertionError(f"unexpected control sequence ESC[{params}{final}")

    @property
    def text(self) -> list[str]:
        """Return the non-empty lines on the screen, right-stripped."""
        return [line.rstrip() for line in self.lines if line.strip()]

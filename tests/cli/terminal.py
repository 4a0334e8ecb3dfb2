"""A program run in a real pseudo-terminal, driven key by key as a person would type.

A small stand-in for pexpect (not a dependency): the program gets a controlling terminal, so
Ctrl-C typed as ``\\x03`` reaches it as SIGINT through the terminal driver, readline is active,
and Up/Left send the same escape sequences a keyboard does.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

UP = "\x1b[A"
LEFT = "\x1b[D"
CTRL_C = "\x03"
CTRL_D = "\x04"
ENTER = "\r"

# Colours, cursor moves, bracketed-paste switches and the like, none of which a reader sees.
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]|[\x01\x02\x07]")

# A reply from the program is waited for this long at most; reaching it fails the test.
PATIENCE_S = float(os.environ.get("OPENADK_TEST_TERMINAL_PATIENCE", "90"))


class Terminal:
    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: exec at once, nothing else
            try:
                os.chdir(cwd)
                os.execve(args[0], args, env)
            finally:
                os._exit(127)
        self.pid = pid
        self.fd = fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self.raw = ""
        self._seen = 0
        self.status: int | None = None

    @property
    def screen(self) -> str:
        """Everything printed so far, without escape sequences, CRs folded."""
        return _ESCAPES.sub("", self.raw).replace("\r\n", "\n").replace("\r", "")

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the program closed the terminal
            chunk = b""
        if not chunk:
            return False
        self.raw += chunk.decode("utf-8", "replace")
        return True

    def expect(self, text: str) -> str:
        """Waits until ``text`` is printed after what earlier calls matched; returns the screen."""
        deadline = time.monotonic() + PATIENCE_S
        while True:
            screen = self.screen
            at = screen.find(text, self._seen)
            if at >= 0:
                self._seen = at + len(text)
                return screen
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError(
                    f"{text!r} was not printed. The terminal shows:\n{screen[-3000:]}"
                )

    def wait(self) -> int:
        """Reads to the end and returns the exit code; fails if the program does not end."""
        deadline = time.monotonic() + PATIENCE_S
        ended = False
        while not ended and time.monotonic() < deadline:
            ended = not self._read(deadline - time.monotonic())
        if not ended:
            self.kill()
            raise AssertionError(f"The program did not exit. The terminal shows:\n{self.screen}")
        # The terminal is closed: the program is exiting.
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def kill(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                os.close(self.fd)
            except OSError:
                pass
            self.status = -9


def python(*code_and_args: str) -> list[str]:
    return [sys.executable, *code_and_args]

"""Processes we start never outlive the process that owns them, however it dies.

A worker (or a manager process) calls :func:`exit_with_owner` first thing. On
Linux the kernel sends it ``SIGKILL`` when its parent dies
(``PR_SET_PDEATHSIG``, through ``prctl`` with ctypes); everywhere, a daemon
thread checks twice a second that the owner is still there (the parent pid
changes when the parent dies, the owner pid stops existing) and ends the
process if not. The thread covers what the signal cannot: Linux ties the signal
to the *thread* that forked the child, so it is only armed when the child was
started from the owner's main thread, and a child started through a
forkserver has the forkserver as its parent.

Example:
    >>> import os
    >>> owner_alive(os.getpid())
    True
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any

__all__ = ["Reaper", "exit_with_owner", "owner_alive"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_CHECK_SECONDS = 0.5


def owner_alive(pid: int) -> bool:
    """Whether a process with this pid exists (signal 0 is only an existence check)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _set_pdeathsig() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols, libc's among them
        return int(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def exit_with_owner(owner_pid: int, *, kernel_signal: bool = True) -> None:
    """End this process as soon as ``owner_pid`` (this process's creator) is gone.

    ``kernel_signal``: also arm ``PR_SET_PDEATHSIG`` (only correct when the
    creator forked this process from its main thread, see the module docstring).
    """
    if kernel_signal:
        _set_pdeathsig()
    parent = os.getppid()
    if not owner_alive(owner_pid):
        os._exit(1)  # the owner died before the signal was armed

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(_CHECK_SECONDS):
            if os.getppid() != parent or not owner_alive(owner_pid):
                os._exit(1)

    threading.Thread(target=watch, name="xhub-owner-watch", daemon=True).start()


_REAPER = """
import sys, psutil
targets = [(int(p), float(t)) for p, t in (a.split(":") for a in sys.argv[1:])]
sys.stdin.buffer.read()  # returns when the owner is gone (the pipe's last writer closed)
for pid, created in targets:
    try:
        process = psutil.Process(pid)
        if abs(process.create_time() - created) < 0.05:
            process.kill()
    except psutil.Error:
        pass
"""


class Reaper:
    """For processes an engine starts that do not watch us themselves (Ray's agents): a small
    process that kills them when this process is gone, however it dies.

    It waits for end-of-file on a pipe whose writing end only this process (and its forked
    children) hold; :meth:`cancel` when the engine was shut down cleanly.
    """

    def __init__(self, processes: list[Any]) -> None:
        targets = [f"{p.pid}:{p.create_time()}" for p in processes]
        self._process = subprocess.Popen(
            [sys.executable, "-c", _REAPER, *targets],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # not in our process group: a Ctrl-C is not for it
        )

    def cancel(self) -> None:
        self._process.kill()
        self._process.wait()
        if self._process.stdin is not None:
            self._process.stdin.close()

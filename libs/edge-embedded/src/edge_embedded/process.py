"""A child server process with a readiness check and a clean stop."""

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_this_process() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when this process dies, even
    by SIGKILL (which leaves it no chance to stop its children). The setting survives
    ``exec``, but not into the child's own children (none of ours has any). The kernel
    fires it when the *thread* that forked exits, so it is for the launcher, which spawns
    from its main thread, not for test fixtures that may start servers from a worker thread."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, not after
    parent = os.getpid()

    def preexec() -> None:
        # SIGKILL: nobody is left to stop them in order, every part survives a crash, and
        # the ports are free at once.
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the setting took effect
            os._exit(1)

    return preexec


class ServerProcess:
    def __init__(
        self,
        name: str,
        argv: list[str],
        ready: Callable[[], bool],
        log_path: Path | None,
        env: dict[str, str] | None = None,
    ) -> None:
        """``log_path`` None: the child writes to the launcher's own terminal."""
        self.name, self.argv, self.ready, self.log_path = name, argv, ready, log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> "ServerProcess":
        self.spawn()
        self.wait_ready(timeout_s)
        return self

    def spawn(self, die_with_parent: bool = False) -> None:
        """Start without waiting for readiness. ``die_with_parent``: the kernel kills it when
        this process dies (the launcher's children; spawn from the main thread then)."""
        logfile = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            logfile = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=logfile,
            stderr=subprocess.STDOUT if logfile else None,
            env=self.env,
            start_new_session=True,  # a Ctrl-C at the terminal is handled by the launcher
            preexec_fn=_die_with_this_process() if die_with_parent else None,
        )
        if logfile:
            logfile.close()

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}"
                    + (f"; see {self.log_path}:\n{self.tail()}" if self.log_path else "")
                )
            try:
                if self.ready():
                    return
            except Exception:  # noqa: S110 - not up yet
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.name} not ready after {timeout_s}s; see {self.log_path}")

    def tail(self, lines: int = 20) -> str:
        if self.log_path is None:
            return ""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM) without waiting."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited after ``timeout_s``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %ss; killing it", self.name, timeout_s)
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

"""A PACS sending studies with DCMTK ``storescu``, one association per few files, and sending
again whatever was not answered Success (as a PACS retries), until every file was."""

import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from edge_testing.dcmtk import DCMTK_ENV, dcmtk


def answered(output: str) -> list[str]:
    """The files that ``storescu -v`` says were answered Success."""
    done, current = [], None
    for line in output.splitlines():
        if line.startswith("I: Sending file: "):
            current = line.removeprefix("I: Sending file: ").strip()
        elif line.startswith("I: Received Store Response (Success)") and current:
            done.append(current)
            current = None
    return done


@dataclass
class Pacs:
    port: int
    called: str
    files: list[Path]
    per_association: int = 5
    calling: str = "PACS"
    answered: set[str] = field(default_factory=set)
    associations: int = 0
    resends: int = 0
    finished_at: float | None = None
    errors: list[str] = field(default_factory=list)

    def run(self, deadline_s: float = 600) -> None:
        pending = [str(f) for f in self.files]
        deadline = time.monotonic() + deadline_s
        while pending and time.monotonic() < deadline:
            chunk, pending = pending[: self.per_association], pending[self.per_association :]
            result = subprocess.run(
                [dcmtk("storescu"), "-v", "-aet", self.calling, "-aec", self.called,
                 "127.0.0.1", str(self.port), *chunk],
                env=DCMTK_ENV, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            self.associations += 1
            done = set(answered(result.stdout + result.stderr))
            self.answered |= done
            missed = [f for f in chunk if f not in done]
            if missed:  # refused, aborted or the receiver died: send them again
                self.resends += len(missed)
                self.errors.append((result.stdout + result.stderr)[-300:])
                pending += missed
                time.sleep(0.5)
        self.finished_at = time.monotonic()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name=f"pacs-{self.calling}", daemon=True)
        thread.start()
        return thread

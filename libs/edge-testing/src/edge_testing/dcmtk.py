"""DCMTK command-line peers (Debian ``dcmtk``), the way a PACS administrator would use them.

pynetdicom installs Python scripts of the same names (``storescu``, ``echoscu``,
``storescp``) into the virtual environment, and ``uv run`` puts that first on PATH: every
DCMTK tool is therefore looked up outside the environment, so the peer really is DCMTK.
"""

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

# Without TCP_NODELAY both sides stall ~40 ms per message on Nagle's algorithm.
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


@cache
def dcmtk(tool: str) -> str:
    """Absolute path of a DCMTK tool, skipping the virtual environment's scripts."""
    venv_bin = Path(sys.executable).parent.resolve()
    path = os.pathsep.join(
        p
        for p in os.environ.get("PATH", "").split(os.pathsep)
        if p and Path(p).resolve() != venv_bin
    )
    found = shutil.which(tool, path=path)
    if found is None:
        raise FileNotFoundError(f"DCMTK {tool} not found: apt-get install -y dcmtk")
    return found


def echoscu(port: int, called: str, calling: str = "HOSPITALPACS") -> bool:
    """C-ECHO; True if the association was accepted and the echo answered."""
    result = subprocess.run(
        [dcmtk("echoscu"), "-aet", calling, "-aec", called, "127.0.0.1", str(port)],
        env=DCMTK_ENV,
        capture_output=True,
        timeout=60,
    )
    return result.returncode == 0


def storescu(
    port: int, called: str, files: list[Path], calling: str = "HOSPITALPACS", *extra: str
) -> subprocess.CompletedProcess[str]:
    """Send ``files`` on one association; ``extra`` are more storescu options."""
    return subprocess.run(
        [dcmtk("storescu"), *extra, "-aet", calling, "-aec", called, "127.0.0.1", str(port),
         *map(str, files)],
        env=DCMTK_ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip

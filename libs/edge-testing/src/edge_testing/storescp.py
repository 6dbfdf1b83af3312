"""DCMTK ``storescp`` on a free port, writing every instance it receives to a directory:
a C-STORE destination for tests and the disk-writing reference of the benchmark."""

import socket
from dataclasses import dataclass
from pathlib import Path

from edge_embedded.ports import free_ports
from edge_embedded.process import ServerProcess
from edge_testing.dcmtk import dcmtk


@dataclass
class StoreSCP:
    process: ServerProcess
    port: int
    aet: str
    directory: Path

    @property
    def url(self) -> str:
        """As an Edge destination URL."""
        return f"dicom://{self.aet}@127.0.0.1:{self.port}"

    def files(self) -> list[Path]:
        return sorted(p for p in self.directory.iterdir() if p.is_file())


def start_storescp(directory: Path, *options: str, aet: str = "STORESCP") -> StoreSCP:
    """``options`` are extra storescp options (``--fork``, ``--sleep-during 20``...)."""
    (port,) = free_ports(1)
    out = directory / f"storescp-{port}"
    out.mkdir(parents=True)
    argv = [dcmtk("storescp"), *options, "--output-directory", str(out), "-aet", aet, str(port)]

    def ready() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    log = directory / f"storescp-{port}.log"
    process = ServerProcess("storescp", argv, ready, log, env={"TCP_NODELAY": "1"})
    return StoreSCP(process.start(timeout_s=30), port, aet, out)

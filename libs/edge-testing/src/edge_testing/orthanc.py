"""A real Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) on free ports: a PACS, a
C-STORE destination and a DICOMweb (STOW-RS) server for tests and benchmarks."""

import json
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from edge_embedded.ports import free_ports
from edge_embedded.process import ServerProcess

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


@dataclass
class Orthanc:
    process: ServerProcess
    http_port: int
    dicom_port: int
    aet: str = "ORTHANC"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def get_json(self, path: str) -> object:
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return json.loads(resp.read())

    def instance_count(self) -> int:
        stats = self.get_json("/statistics")
        assert isinstance(stats, dict)
        return int(stats["CountInstances"])


def orthanc_available() -> bool:
    return shutil.which("Orthanc") is not None and DICOMWEB_PLUGIN.exists()


def start_orthanc(data_dir: Path, aet: str = "ORTHANC", **config: object) -> Orthanc:
    """Start Orthanc storing under ``data_dir``; ready when its REST API answers."""
    http_port, dicom_port = free_ports(2)
    data_dir.mkdir(parents=True, exist_ok=True)
    settings: dict[str, object] = {
        "Name": "edge-test",
        "StorageDirectory": str(data_dir / "storage"),
        "IndexDirectory": str(data_dir / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": aet,
        "DicomCheckCalledAet": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "UnknownSopClassAccepted": True,
        "StorageCompression": False,
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        **config,
    }
    config_path = data_dir / "orthanc.json"
    config_path.write_text(json.dumps(settings, indent=2))

    def ready() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/system", timeout=1) as resp:
            return bool(resp.status == 200)

    # Orthanc speaks DICOM through DCMTK, which waits on Nagle's algorithm without this.
    env = {"TCP_NODELAY": "1"}
    proc = ServerProcess(
        "orthanc", ["Orthanc", str(config_path)], ready, data_dir / "orthanc.log", env
    )
    return Orthanc(proc.start(timeout_s=60), http_port, dicom_port, aet)

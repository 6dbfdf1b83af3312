"""A real Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) on free ports: a PACS, a
C-STORE destination and a DICOMweb (STOW-RS) server for tests and benchmarks."""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx

from edge_embedded.ports import free_ports
from edge_embedded.process import ServerProcess

PLUGIN_DIRS = [Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc/plugins")]
USERNAME, PASSWORD = "edge", "edge-secret"


@dataclass
class Orthanc:
    process: ServerProcess
    http_port: int
    dicom_port: int
    aet: str = "ORTHANC"
    username: str = USERNAME
    password: str = PASSWORD

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """Its STOW-RS root as an Edge destination URL."""
        return f"dicomweb+{self.url}/dicom-web"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=(self.username, self.password), timeout=30)

    def instance_files(self, sop_uid: str) -> list[bytes]:
        """The stored files of one SOP Instance UID (more than one would be a duplicate)."""
        with self.client() as http:
            found = http.post(
                "/tools/find", json={"Level": "Instance", "Query": {"SOPInstanceUID": sop_uid}}
            ).json()
            return [http.get(f"/instances/{i}/file").content for i in found]

    def count_instances(self) -> int:
        with self.client() as http:
            return int(http.get("/statistics").json()["CountInstances"])


def dicomweb_plugin() -> Path | None:
    return next(
        (
            d / "libOrthancDicomWeb.so"
            for d in PLUGIN_DIRS
            if (d / "libOrthancDicomWeb.so").exists()
        ),
        None,
    )


def orthanc_available() -> bool:
    return shutil.which("Orthanc") is not None and dicomweb_plugin() is not None


def start_orthanc(directory: Path, aet: str = "ORTHANC", **config: object) -> Orthanc:
    """Start Orthanc storing under ``directory`` (HTTP basic auth ``edge``/``edge-secret``);
    ready when its REST API answers. ``config`` overrides Orthanc configuration options."""
    binary, plugin = shutil.which("Orthanc"), dicomweb_plugin()
    if binary is None or plugin is None:
        raise FileNotFoundError("Orthanc with its DICOMweb plugin is not installed")
    http_port, dicom_port = free_ports(2)
    directory.mkdir(parents=True, exist_ok=True)
    settings: dict[str, object] = {
        "Name": "edge-test",
        "StorageDirectory": str(directory / "storage"),
        "IndexDirectory": str(directory / "storage"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": aet,
        "DicomCheckCalledAet": True,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USERNAME: PASSWORD},
        "UnknownSopClassAccepted": True,
        "StorageCompression": False,
        "OverwriteInstances": False,
        "Plugins": [str(plugin)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        **config,
    }
    config_path = directory / "orthanc.json"
    config_path.write_text(json.dumps(settings, indent=2))
    orthanc = Orthanc(
        ServerProcess(
            "orthanc",
            [binary, str(config_path)],
            lambda: orthanc.client().get("/system").status_code == 200,
            directory / "orthanc.log",
            # Orthanc speaks DICOM through DCMTK, which waits on Nagle's algorithm without this.
            env={"TCP_NODELAY": "1"},
        ),
        http_port,
        dicom_port,
        aet,
    )
    orthanc.process.start(timeout_s=60)
    return orthanc

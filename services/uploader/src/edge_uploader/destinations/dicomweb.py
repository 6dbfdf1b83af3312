"""``dicomweb+http(s)://host/path``: STOW-RS (PS3.18 10.5), several instances of one study per
request, each instance's result read from the response's Referenced / Failed SOP Sequences.

A destination that already holds the SOP Instance (Orthanc, for instance, answers it as stored;
others fail it with 0x0111 Duplicate SOP Instance) counts as delivered: the SOP Instance UID is
the identity there, so a redelivery never makes a second copy.
Credentials: ``token`` (bearer) or ``username`` and ``password`` (basic).
"""

import uuid
from collections.abc import Iterator
from typing import Any

import httpx

from edge_uploader import retry
from edge_uploader.destinations import (
    ALREADY_PRESENT,
    DELIVERED,
    Item,
    Outcome,
    failed,
    public_url,
)

MAX_BATCH = 16
_CHUNK = 1024 * 1024
_FAILED_SOP_SEQUENCE = "00081198"
_REFERENCED_SOP_SEQUENCE = "00081199"
_REFERENCED_SOP_INSTANCE_UID = "00081155"
_FAILURE_REASON = "00081197"


class DicomWebDestination:
    max_batch = MAX_BATCH

    def __init__(self, url: str, client: httpx.Client, stow_url: str) -> None:
        self.url = url
        self.client = client
        self.stow_url = stow_url

    def deliver(self, items: list[Item]) -> list[Outcome]:
        boundary = uuid.uuid4().hex
        heads = [
            f"--{boundary}\r\nContent-Type: application/dicom\r\n"
            f"Content-Length: {item.ref.size}\r\n\r\n".encode()
            for item in items
        ]
        tail = f"--{boundary}--\r\n".encode()
        length = sum(len(h) + item.ref.size + 2 for h, item in zip(heads, items, strict=True))

        def body() -> Iterator[bytes]:
            for head, item in zip(heads, items, strict=True):
                yield head
                with item.path.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        yield chunk
                yield b"\r\n"
            yield tail

        resp = self.client.post(
            self.stow_url,
            content=body(),
            headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                "Content-Length": str(length + len(tail)),
                "Accept": "application/dicom+json",
            },
        )
        try:
            answer = resp.json()
        except ValueError:
            answer = {}
        if isinstance(answer, list):  # some servers wrap the data set in a list
            answer = answer[0] if answer else {}
        if not isinstance(answer, dict):
            answer = {}
        return per_instance(answer, items, resp.status_code, resp.text[:300])

    def close(self) -> None:
        self.client.close()


def per_instance(
    answer: dict[str, Any], items: list[Item], status: int, text: str = ""
) -> list[Outcome]:
    """Each item's outcome from a STOW-RS response: 200 all stored; otherwise (202 some
    stored, 409 none, or an error, which Orthanc also sends with the data set) each instance
    as the data set lists it, and the HTTP status for those it does not list."""
    stored = {_uid(e) for e in _sequence(answer, _REFERENCED_SOP_SEQUENCE)}
    failures = {_uid(e): _reason(e) for e in _sequence(answer, _FAILED_SOP_SEQUENCE)}
    outcomes = []
    for item in items:
        uid = item.ref.sop_instance_uid
        if uid in failures:
            kind = retry.dicom_status_kind(failures[uid])
            if kind == "duplicate":
                outcomes.append(ALREADY_PRESENT)
            else:
                error = f"STOW-RS failed the instance with reason 0x{failures[uid]:04X}"
                outcomes.append(failed(error, permanent=kind == "permanent"))
        elif uid in stored or (status == 200 and not failures):
            outcomes.append(DELIVERED)
        else:
            error = f"STOW-RS answered HTTP {status}: {text}"
            outcomes.append(failed(error, retry.http_status_is_permanent(status)))
    return outcomes


def _sequence(answer: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    return list((answer.get(tag) or {}).get("Value") or [])


def _uid(element: dict[str, Any]) -> str:
    values = (element.get(_REFERENCED_SOP_INSTANCE_UID) or {}).get("Value") or [""]
    return str(values[0])


def _reason(element: dict[str, Any]) -> int:
    values = (element.get(_FAILURE_REASON) or {}).get("Value") or [0x0110]
    return int(values[0])


def open_dicomweb(url: str, credentials: dict[str, str], timeout_s: float) -> DicomWebDestination:
    base = url.removeprefix("dicomweb+").rstrip("/")
    auth: httpx.Auth | None = None
    headers = {}
    if "token" in credentials:
        headers["Authorization"] = f"Bearer {credentials['token']}"
    elif "username" in credentials:
        auth = httpx.BasicAuth(credentials["username"], credentials.get("password", ""))
    client = httpx.Client(auth=auth, headers=headers, timeout=timeout_s)
    return DicomWebDestination(public_url(url), client, f"{base}/studies")

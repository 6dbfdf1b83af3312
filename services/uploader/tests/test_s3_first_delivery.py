"""The S3 destination looks before writing (HEAD) except on the first delivery of a SOP
instance that no uploader claimed before."""

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from edge_uploader.destinations import ALREADY_PRESENT, DELIVERED, Item
from edge_uploader.destinations.s3 import SHA256_META, S3Destination


class FakeClient:
    """A destination that already holds exactly the instance."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def stat_object(self, bucket: str, key: str) -> Any:
        self.calls.append("HEAD")
        meta = {f"x-amz-meta-{SHA256_META}": "ab" * 32}
        return SimpleNamespace(size=3, etag="etag", metadata=meta)

    def fput_object(self, bucket: str, key: str, path: str, **kwargs: Any) -> Any:
        self.calls.append("PUT")
        return SimpleNamespace(etag="etag")


def _item(first: bool) -> Item:
    ref = SimpleNamespace(
        study_uid="1.2.3", series_uid="1.2.3.4", sop_instance_uid="1.2.3.4.5",
        sha256="ab" * 32, size=3,
    )  # fmt: skip
    return Item("DS1", ref, Path("/nonexistent"), "etag", first)  # type: ignore[arg-type]


def test_first_delivery_writes_without_looking() -> None:
    client = FakeClient()
    dest = S3Destination("s3://dest", client, "dest", "")  # type: ignore[arg-type]
    assert dest._put(_item(first=True)) == DELIVERED
    assert client.calls == ["PUT"]


def test_a_later_delivery_looks_first() -> None:
    client = FakeClient()
    dest = S3Destination("s3://dest", client, "dest", "")  # type: ignore[arg-type]
    assert dest._put(_item(first=False)) == ALREADY_PRESENT
    assert client.calls == ["HEAD"]

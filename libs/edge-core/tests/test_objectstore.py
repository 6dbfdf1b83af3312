import hashlib
import io

from edge_core.objectstore import ObjectStore


def test_put_get_stat_delete(s3, edge_settings):
    store = ObjectStore.buffer(edge_settings)
    store.ensure_bucket()
    store.ensure_bucket()  # idempotent
    data = b"DICM" * 1000
    store.put_bytes("DS1/a.dcm", data)
    assert store.get_bytes("DS1/a.dcm") == data
    assert store.size_of("DS1/a.dcm") == len(data)
    assert store.sha256_of("DS1/a.dcm") == (len(data), hashlib.sha256(data).hexdigest())
    assert store.usage() == (1, len(data))
    store.copy("DS1/a.dcm", "quarantine/DS1/a.dcm")
    assert store.exists("quarantine/DS1/a.dcm")
    store.delete("DS1/a.dcm")
    store.delete("DS1/a.dcm")  # idempotent
    assert store.size_of("DS1/a.dcm") is None
    assert [o.key for o in store.list()] == ["quarantine/DS1/a.dcm"]


def test_streamed_multipart_upload(s3, edge_settings):
    store = ObjectStore.buffer(edge_settings)
    big = bytes(range(256)) * (80 * 1024 * 4 // 4)  # 20 MiB: more than one part
    store.put_stream("big.dcm", io.BytesIO(big), len(big))
    assert store.sha256_of("big.dcm") == (len(big), hashlib.sha256(big).hexdigest())

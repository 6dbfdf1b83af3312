"""Concurrent requests to the real registry (uvicorn's thread pool) on SQLite and PostgreSQL:
no two enabled datashares end up with one AE title, and no change is lost."""

from concurrent.futures import ThreadPoolExecutor

import httpx

HEADERS = {"Authorization": "Bearer alice-token"}


def test_concurrent_creates_with_one_ae_title_leave_one_holder(registry):
    def create(n: int) -> int:
        body = {"id": f"DS{n}", "ae_title": "SHARED" if n % 2 else "shared"}
        return httpx.post(
            f"{registry.url}/api/v1/datashares", json=body, headers=HEADERS
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(create, range(8)))
    assert statuses == [201] + [409] * 7
    listed = httpx.get(f"{registry.url}/api/v1/datashares", headers=HEADERS).json()
    assert len(listed) == 1


def test_concurrent_patches_of_different_fields_all_apply(registry):
    url = f"{registry.url}/api/v1/datashares"
    assert httpx.post(url, json={"id": "DS1"}, headers=HEADERS).status_code == 201
    patches = [
        {"description": "renamed"},
        {"allowed_networks": ["10.0.0.0/8"]},
        {"allowed_calling_aets": ["PACS1"]},
        {"destination": "s3://edge-dest/ds1"},
        {"match": "calling"},
    ]
    with ThreadPoolExecutor(len(patches)) as pool:
        statuses = list(
            pool.map(
                lambda p: httpx.patch(f"{url}/DS1", json=p, headers=HEADERS).status_code, patches
            )
        )
    assert statuses == [200] * len(patches)
    final = httpx.get(f"{url}/DS1", headers=HEADERS).json()
    for patch in patches:
        assert {k: final[k] for k in patch} == patch
    assert final["revision"] == 1 + len(patches)
    history = httpx.get(f"{url}/DS1/history", headers=HEADERS).json()
    assert [e["revision"] for e in history] == list(range(1, 2 + len(patches)))

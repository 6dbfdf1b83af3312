"""Failure classification and the retry schedule."""

import pytest

from edge_uploader.retry import backoff_s, dicom_status_kind, http_status_is_permanent


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (0x0000, "stored"),
        (0xB000, "stored"),
        (0xB006, "stored"),
        (0xB007, "stored"),
        (0x0111, "duplicate"),
        (0xA700, "transient"),
        (0xA7FF, "transient"),
        (0x0213, "transient"),
        (0xA900, "permanent"),
        (0xC000, "permanent"),
        (0xCFFF, "permanent"),
        (0x0122, "permanent"),
        (0x0110, "permanent"),
    ],
)
def test_dicom_statuses(status, kind):
    assert dicom_status_kind(status) == kind


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(400, True), (401, True), (403, True), (404, True), (409, True), (413, True),
     (408, False), (429, False), (500, False), (502, False), (503, False)],
)  # fmt: skip
def test_http_statuses(status, permanent):
    assert http_status_is_permanent(status) is permanent


def test_backoff_grows_with_jitter_up_to_the_cap():
    for attempt, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (8, 256.0), (9, 300.0), (500, 300.0)]:
        delays = [backoff_s(attempt, 2.0, 300.0) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered

"""The dashboard page, rendered by headless Chromium against a monitor fed real events."""

import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from edge_core.datashares import Deidentification
from edge_core.events import utcnow
from edge_testing.servers import wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (Debian package 'chromium')"
)


def chromium(url: str, profile: Path, *args: str) -> str:
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


async def _transfer_in_progress(feed) -> None:
    """A working transfer, a failing one, and a PACS using a wrong called AE title."""
    now = utcnow()

    def ago(seconds: float):
        return now - timedelta(seconds=seconds)

    await feed.datashare("CT_TRIAL", ago(3600), description="CT lung screening trial")
    await feed.opened("CT_TRIAL", "a1", ago(30), calling="HOSPITAL_PACS")
    refs = [
        await feed.stored(
            "CT_TRIAL",
            "a1",
            f"1.2.840.99.{i % 2}",
            f"1.2.840.99.{i % 2}.{i}",
            ago(25 - i),
            size=525_000,
        )
        for i in range(20)
    ]
    for ref in refs[:14]:
        await feed.uploaded("CT_TRIAL", ref, ago(5))
    await feed.datashare(
        "MR_STUDY", ago(3600), description="MR follow-up",
        deidentification=Deidentification(options=["retain_patient_characteristics"]),
    )  # fmt: skip
    await feed.opened("MR_STUDY", "b1", ago(600), calling="MR_SCANNER")
    mr = await feed.stored("MR_STUDY", "b1", "1.3.5", "1.3.5.1", ago(590), size=80_000)
    await feed.closed("MR_STUDY", "b1", 1, ago(580))
    await feed.dead("MR_STUDY", mr, ago(300))
    for i in range(3):
        await feed.rejected("XYZ", "FOO", "10.0.0.5", ago(100 - i))
    await feed.buffer(3_150_000, 10_000_000_000, refusing=False, at=ago(1))


async def test_dashboard_shows_the_transfer(feed, monitor_process, tmp_path):
    await _transfer_in_progress(feed)
    wait_until(
        lambda: (
            monitor_process.get("/api/v1/status").json()["monitor"]["position"] == feed.last_seq
        ),
        what="the monitor to fold every event",
    )

    url = f"{monitor_process.url}/?token=test-token"
    dom = chromium(url, tmp_path / "profile", "--dump-dom")
    assert "CT_TRIAL" in dom and "CT lung screening trial" in dom
    assert "14 of 20 instances uploaded" in dom
    assert "receiving" in dom and "HOSPITAL_PACS" in dom  # verdict and the open association
    assert "1.2.840.99.1" in dom  # a study
    assert "MR_STUDY" in dom and "dead-lettered" in dom and "403 Forbidden" in dom
    assert "PACS 'XYZ' at 10.0.0.5 used called AE title 'FOO', which matches no datashare." in dom
    assert "3.1 MB of 10.0 GB" in dom  # the buffer
    assert "Forwarded byte for byte (no de-identification)." in dom  # CT_TRIAL
    assert (
        "De-identified before forwarding: PS3.15 basic profile with retain patient "
        "characteristics. 0 de-identified." in dom
    )

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "monitor-dashboard.png"
    shot.unlink(missing_ok=True)
    chromium(url, tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1280,1600")
    assert shot.stat().st_size > 10_000


async def test_dashboard_asks_for_the_token(monitor_process, tmp_path):
    dom = chromium(f"{monitor_process.url}/", tmp_path / "profile", "--dump-dom")
    assert 'id="login" class="card"' in dom  # shown: no token in this tab
    wrong = chromium(f"{monitor_process.url}/?token=wrong", tmp_path / "profile2", "--dump-dom")
    assert "That token was not accepted." in wrong

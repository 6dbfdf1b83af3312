"""``make bench``: how it judges issue 10's targets (on hand-made results), and one tiny real
run of the Orthanc routers and Edge forwarding to STOW-RS and S3 destinations, counted at
each destination."""

import sys
from pathlib import Path

import pytest

from edge_testing.orthanc import orthanc_available

# The benchmark's modules are scripts beside bench/run.py, not a package; the directory
# leaves the path once they are imported, so that their names shadow nothing else.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import run as bench_run
from report import README_END, README_START, replace_between, results_table
from result import Result
from targets import CPU_GOAL_MS, summary, targets

sys.path.remove(str(Path(__file__).resolve().parent.parent / "bench"))


def result(peer, data, assoc, per_second, cpu=0.0, rss=None, instances=100) -> Result:
    return Result(peer, data, assoc, instances, instances * 0.04, instances / per_second,
                  cpu_ms={"receiver": cpu}, rss_mb=rss or {})  # fmt: skip


def rows_named(rows, target):
    return {row.case: row for row in rows if row.target == target}


def test_ingest_holds_where_edge_is_at_least_orthanc_and_the_stretch_is_half_storescp():
    results = [
        result("storescp", "small", 1, 300.0),
        result("storescp", "ct", 4, 40.0),
        result("orthanc", "small", 1, 100.0),
        result("orthanc", "ct", 4, 40.0),
        result("edge", "small", 1, 120.0),
        result("edge", "ct", 4, 10.0),
    ]
    ingest = rows_named(targets(results), "1 ingest")
    assert ingest["small x1"].ratio == pytest.approx(1.2) and ingest["small x1"].holds
    assert ingest["ct x4"].ratio == pytest.approx(0.25) and not ingest["ct x4"].holds
    stretch = rows_named(targets(results), "1 ingest (stretch)")
    assert stretch["small x1"].ratio == pytest.approx(0.4) and not stretch["small x1"].holds
    assert stretch["ct x4"].ratio == pytest.approx(0.25) and not stretch["ct x4"].holds


def test_each_edge_forwarding_peer_is_set_against_its_own_router():
    results = [
        result("orthanc", "small", 1, 1000.0),
        result("orthanc-router", "small", 1, 10.0),
        result("orthanc-router-stow", "small", 1, 20.0),
        result("orthanc-router-s3", "small", 1, 40.0),
        result("edge-forward", "small", 1, 30.0),
        result("edge-stow", "small", 1, 30.0),
        result("edge-s3", "small", 1, 30.0),
    ]
    rows = targets(results)
    ratios = {row.target: row.ratio for row in rows if row.target.startswith("2 whole job")}
    assert ratios == {
        "2 whole job, C-STORE": pytest.approx(3.0),
        "2 whole job, STOW-RS": pytest.approx(1.5),
        "2 whole job, S3": pytest.approx(0.75),
    }
    holds = {row.target: row.holds for row in rows if row.target.startswith("2 whole job")}
    assert holds == {"2 whole job, C-STORE": True, "2 whole job, STOW-RS": True,
                     "2 whole job, S3": False}  # fmt: skip
    assert not any(row.target.startswith("1 ingest") for row in rows)  # no `edge` ran
    table = results_table(results).splitlines()
    assert "| orthanc-router-stow | 20.0 | 0.8 | edge-stow 1.50x |" in table[4]
    assert "| orthanc-router-s3 | 40.0 | 1.6 | edge-s3 0.75x |" in table[5]


def test_cpu_per_small_image_is_judged_against_ten_ms_for_every_edge_peer():
    results = [
        result("edge", "small", 1, 50.0, cpu=CPU_GOAL_MS - 1),
        result("edge", "small", 4, 50.0, cpu=CPU_GOAL_MS + 1),
        result("edge", "ct", 1, 20.0, cpu=40.0),  # not a 40 kB image: not judged
        result("edge-s3", "small", 4, 50.0, cpu=25.0),
    ]
    cpu = {(row.target, row.case): row.holds for row in targets(results)
           if row.target.startswith("3 CPU")}  # fmt: skip
    assert cpu == {
        ("3 CPU per 40 kB image (edge)", "small x1"): True,
        ("3 CPU per 40 kB image (edge)", "small x4"): False,
        ("3 CPU per 40 kB image (edge-s3)", "small x4"): False,
    }


def test_peak_rss_is_bounded_when_no_component_climbs_after_the_first_scenario():
    results = [
        result("edge", "ct", 1, 20.0, rss={"weed": 200.0, "receiver": 90.0}),
        result("edge", "small", 4, 50.0, rss={"weed": 215.0, "receiver": 95.0}, instances=400),
        result("edge-s3", "ct", 1, 20.0, rss={"weed": 200.0, "uploader": 100.0}),
        result("edge-s3", "small", 4, 50.0, rss={"weed": 300.0, "uploader": 100.0}),
        result("edge-stow", "ct", 1, 20.0, rss={"weed": 200.0}),  # one scenario: no judgement
    ]
    rss = {row.target: row for row in targets(results) if row.target.startswith("4 peak RSS")}
    assert set(rss) == {"4 peak RSS bounded (edge)", "4 peak RSS bounded (edge-s3)"}
    assert rss["4 peak RSS bounded (edge)"].holds
    assert rss["4 peak RSS bounded (edge)"].case == "100 -> 500 images"
    assert not rss["4 peak RSS bounded (edge-s3)"].holds
    assert rss["4 peak RSS bounded (edge-s3)"].edge == "weed 200 -> 300 MB"  # the worst


def test_summary_gives_each_target_its_range_and_how_many_cases_hold():
    results = [
        result("orthanc", "small", 1, 100.0),
        result("orthanc", "small", 4, 100.0),
        result("edge", "small", 1, 50.0, cpu=8.0),
        result("edge", "small", 4, 150.0, cpu=20.0),
    ]
    lines = summary(targets(results)).splitlines()
    assert lines[0] == "- 1 ingest: 0.50-1.50x (goal >= 1.0x orthanc): holds in 1 of 2"
    assert lines[1] == (
        "- 3 CPU per 40 kB image (edge): 8.0 ms, 20.0 ms (goal <= 10 ms): holds in 1 of 2"
    )


def test_a_full_run_replaces_only_its_marked_block():
    text = f"# Title\n\nbefore\n{README_START}\nold figures\n{README_END}\nafter\n"
    new = replace_between(text, README_START, README_END, "new figures", "### make bench")
    assert new == f"# Title\n\nbefore\n{README_START}\nnew figures\n{README_END}\nafter\n"
    added = replace_between("# Title\n", README_START, README_END, "figures", "### make bench")
    assert added == f"# Title\n\n### make bench\n\n{README_START}\nfigures\n{README_END}\n"


@pytest.mark.skipif(not orthanc_available(), reason="Orthanc with its DICOMweb plugin is needed")
def test_routers_and_edge_deliver_every_instance_to_stow_rs_and_s3_destinations():
    peers = ["orthanc-router-s3", "edge-s3", "orthanc-router-stow", "edge-stow"]
    options = ["--ct", "2", "--small", "3", "--parallel", "2", "--timeout", "60"]
    args = bench_run.arguments([*options, "--peers", *peers])
    results = bench_run.run(args)
    assert [(r.peer, r.case) for r in results] == [
        (peer, case) for peer in peers for case in ("ct x1", "ct x2", "small x1", "small x2")
    ]
    # Counted at each destination: a peer that dropped or duplicated would not match.
    assert [r.delivered for r in results] == [r.instances for r in results]
    assert all(r.whole_job and r.cpu_total > 0 for r in results)
    rows = targets(results)
    assert len([row for row in rows if row.target.startswith("2 whole job")]) == 8

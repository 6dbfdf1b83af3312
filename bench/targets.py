"""Issue 10's targets, judged from a run's results (a pure function of the Result list).

1. Ingest: ``edge`` (the whole stack, timed to the last Success) >= 1.0x ``orthanc``
   (storing) in instances/s, for each kind of data and number of associations; stretch:
   >= 0.5x DCMTK ``storescp`` writing to disk.
2. Whole job (first C-STORE until the last instance is counted at the destination):
   each Edge forwarding peer >= 1.0x Orthanc set up as a router to the same kind of
   destination (``WHOLE_JOB``).
3. CPU per 40 kB image: the total of every component of Edge's process tree (receiver,
   uploader, monitor, registry, NATS, S3 store, launcher; sender and destination are
   outside it) <= 10 ms, for each Edge peer and number of associations.
4. Peak RSS bounded: an Edge stack's scenarios run one after the other, each sending fresh
   images, so the images it has handled grow several-fold from its first scenario to its
   last. A component whose memory is bounded reaches its peak (VmHWM) in the first one
   and stays there; one that keeps an unbounded cache or leaks keeps climbing. Judged:
   every component's peak after the last scenario is within RSS_SLACK_MB, or
   RSS_SLACK_FRACTION of itself, of its peak after the first (the slack absorbs allocator
   and garbage-collector noise). One run cannot prove a bound; it shows growth.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from result import Result

INGEST, STRETCH = "orthanc", "storescp"
STRETCH_GOAL = 0.5
CPU_GOAL_MS = 10.0
RSS_SLACK_MB, RSS_SLACK_FRACTION = 20.0, 0.10
# Destination kind -> (Edge peer, Orthanc router peer).
WHOLE_JOB = {
    "C-STORE": ("edge-forward", "orthanc-router"),
    "STOW-RS": ("edge-stow", "orthanc-router-stow"),
    "S3": ("edge-s3", "orthanc-router-s3"),
}
# Each Edge peer and the peer its rate is set against.
PAIRS = {"edge": INGEST} | dict(WHOLE_JOB.values())
# Each other peer and the Edge peer set against it.
COMPARED_WITH = {peer: mine for mine, peer in PAIRS.items()} | {STRETCH: "edge"}


@dataclass(frozen=True)
class Row:
    target: str
    case: str
    edge: str  # Edge's figure, as printed
    peer: str  # the compared peer's figure, "" if none
    ratio: float | None  # Edge / peer, where the target is a ratio
    goal: str
    holds: bool


def _rate(r: Result) -> str:
    return f"{r.per_second:.1f} inst/s, {r.mb_per_second:.1f} MB/s"


def _by_case(results: Iterable[Result]) -> dict[tuple[str, str, int], Result]:
    return {(r.peer, r.data, r.associations): r for r in results}


def _ratio_rows(
    results: list[Result], target: str, mine: str, theirs: str, goal: float, note: str = ""
) -> list[Row]:
    by = _by_case(results)
    rows = []
    for r in results:
        other = by.get((theirs, r.data, r.associations))
        if r.peer != mine or other is None:
            continue
        ratio = r.per_second / other.per_second
        goal_text = f">= {goal:.1f}x {theirs}{note}"
        rows.append(Row(target, r.case, _rate(r), _rate(other), ratio, goal_text, ratio >= goal))
    return rows


def _cpu_rows(results: list[Result]) -> list[Row]:
    by = _by_case(results)
    rows = []
    for r in results:
        if r.peer not in PAIRS or r.data != "small":
            continue
        other = by.get((PAIRS[r.peer], r.data, r.associations))
        peer = f"{other.peer} {other.cpu_total:.1f} ms" if other else ""
        rows.append(
            Row(
                f"3 CPU per 40 kB image ({r.peer})",
                r.case,
                f"{r.cpu_total:.1f} ms",
                peer,
                None,
                f"<= {CPU_GOAL_MS:.0f} ms",
                r.cpu_total <= CPU_GOAL_MS,
            )
        )
    return rows


def rss_growth(results: list[Result], peer: str) -> list[tuple[str, float, float, bool]]:
    """(component, peak after the first scenario, after the last, within the slack) for
    ``peer``'s stack; empty with fewer than two scenarios."""
    mine = [r for r in results if r.peer == peer]
    if len(mine) < 2:
        return []
    first, last = mine[0].rss_mb, mine[-1].rss_mb
    growth = []
    for name in sorted(last, key=lambda n: last[n] - first.get(n, 0.0), reverse=True):
        before, after = first.get(name, 0.0), last[name]
        bounded = after - before <= max(RSS_SLACK_MB, RSS_SLACK_FRACTION * before)
        growth.append((name, before, after, bounded))
    return growth


def _rss_text(growth: list[tuple[str, float, float, bool]]) -> str:
    name, before, after, _ = growth[0]  # the largest growth
    return f"{name} {before:.0f} -> {after:.0f} MB"


def _rss_rows(results: list[Result]) -> list[Row]:
    rows = []
    for peer in dict.fromkeys(r.peer for r in results if r.peer in PAIRS):
        growth = rss_growth(results, peer)
        if not growth:
            continue
        mine = [r for r in results if r.peer == peer]
        images = f"{mine[0].instances} -> {sum(r.instances for r in mine)} images"
        other = rss_growth(results, PAIRS[peer])
        rows.append(
            Row(
                f"4 peak RSS bounded ({peer})",
                images,
                _rss_text(growth),
                _rss_text(other) if other else "",
                None,
                f"+<= max({RSS_SLACK_MB:.0f} MB, {RSS_SLACK_FRACTION:.0%})",
                all(bounded for *_, bounded in growth),
            )
        )
    return rows


def targets(results: list[Result]) -> list[Row]:
    """One row per target and case, for whatever peers the run had."""
    rows = _ratio_rows(results, "1 ingest", "edge", INGEST, 1.0)
    rows += _ratio_rows(results, "1 ingest (stretch)", "edge", STRETCH, STRETCH_GOAL)
    for kind, (mine, router) in WHOLE_JOB.items():
        rows += _ratio_rows(results, f"2 whole job, {kind}", mine, router, 1.0)
    return rows + _cpu_rows(results) + _rss_rows(results)


def targets_table(rows: list[Row]) -> str:
    lines = [
        "| target | case | Edge | peer | ratio | goal | holds |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        holds = "yes" if row.holds else "no"
        lines.append(
            f"| {row.target} | {row.case} | {row.edge} | {row.peer} | {ratio} | {row.goal} "
            f"| {holds} |"
        )
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    """One line per target: the range of its ratios (or Edge's figures), how many hold."""
    lines = []
    for target in dict.fromkeys(row.target for row in rows):
        mine = [row for row in rows if row.target == target]
        ratios = [row.ratio for row in mine if row.ratio is not None]
        if ratios:
            low, high = f"{min(ratios):.2f}", f"{max(ratios):.2f}"
            figures = f"{low}x" if low == high else f"{low}-{high}x"
        else:
            figures = ", ".join(row.edge for row in mine)
        held = sum(row.holds for row in mine)
        lines.append(f"- {target}: {figures} (goal {mine[0].goal}): holds in {held} of {len(mine)}")
    return "\n".join(lines)

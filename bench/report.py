"""What ``make bench`` prints, and what a full run writes into bench/RESULTS.md and the
README (each between its marker comments; the rest of the file is kept)."""

import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from measure import COMPONENTS
from result import Result
from targets import COMPARED_WITH, PAIRS, rss_growth, summary, targets, targets_table

RESULTS_START, RESULTS_END = "<!-- make bench: start -->", "<!-- make bench: end -->"
README_START, README_END = "<!-- make bench summary: start -->", "<!-- make bench summary: end -->"


LEGEND = (
    "`storescp`, `orthanc` and `edge` are timed to the last Success (`edge`: the whole stack, "
    "forwarding to a bucket of its own S3 store meanwhile); `edge-forward` / `orthanc-router` "
    "(C-STORE), `edge-stow` / `orthanc-router-stow` (STOW-RS) and `edge-s3` / "
    "`orthanc-router-s3` (S3) from the first C-STORE until the last image is counted at the "
    "destination. CPU ms/inst: user + system time of the peer's process tree (destination "
    "excluded) over the scenario, per instance. Fresh UIDs and fresh peers for every run."
)


def scenario_line(r: Result) -> str:
    """Printed as each scenario ends."""
    after = ""
    if r.drain_seconds is not None:
        after = f"  buffer drained {r.drain_seconds:.1f}s later"
    if r.delivered is not None:
        after = f"  {r.delivered} counted at the destination"
    cpu = "  ".join(f"{k} {v:.1f}" for k, v in sorted(r.cpu_ms.items(), key=lambda kv: -kv[1]))
    return (
        f"{r.peer:19} {r.data:5} x{r.associations}  {r.instances:5} inst  "
        f"{r.per_second:8.1f} inst/s  {r.mb_per_second:7.1f} MB/s{after}\n"
        f"{'':19} CPU ms/inst: total {r.cpu_total:.1f} = {cpu}"
    )


def results_table(results: list[Result]) -> str:
    """Every scenario; each compared peer's row carries Edge's ratio to it."""
    by = {(r.peer, r.data, r.associations): r for r in results}
    lines = [
        "| data | assoc | peer | inst/s | MB/s | Edge / peer (inst/s) | CPU ms/inst |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ours = by.get((COMPARED_WITH.get(r.peer, ""), r.data, r.associations))
        ratio = f"{ours.peer} {ours.per_second / r.per_second:.2f}x" if ours else ""
        lines.append(
            f"| {r.data} | {r.associations} | {r.peer} | {r.per_second:.1f} | "
            f"{r.mb_per_second:.1f} | {ratio} | {r.cpu_total:.1f} |"
        )
    return "\n".join(lines)


def components_table(results: list[Result]) -> str:
    """Edge's CPU per instance and peak RSS by component, for every Edge scenario."""
    edge = [r for r in results if r.peer in PAIRS]
    if not edge:
        return ""
    names = [name for name, _ in COMPONENTS if any(name in r.cpu_ms for r in edge)]
    lines = [
        "Edge, CPU ms per instance by component (send, and drain or delivery), and peak RSS "
        "(MB) after the scenario:",
        "",
        "| peer | data | assoc | " + " | ".join(names) + " | total | peak RSS |",
        "|---|---|---|" + "---|" * (len(names) + 2),
    ]
    for r in edge:
        cells = " | ".join(f"{r.cpu_ms.get(n, 0.0):.1f}" for n in names)
        rss = ", ".join(f"{n} {r.rss_mb[n]:.0f}" for n in names if n in r.rss_mb)
        lines.append(
            f"| {r.peer} | {r.data} | {r.associations} | {cells} | {r.cpu_total:.1f} | {rss} |"
        )
    return "\n".join(lines)


def rss_table(results: list[Result]) -> str:
    """Each Edge stack's peak RSS by component after its first and its last scenario."""
    lines = [
        "Peak RSS (MB) after each Edge stack's first and last scenario:",
        "",
        "| peer | component | after first | after last | growth | bounded |",
        "|---|---|---|---|---|---|",
    ]
    rows = [
        f"| {peer} | {name} | {before:.0f} | {after:.0f} | {after - before:+.0f} | "
        f"{'yes' if bounded else 'no'} |"
        for peer in dict.fromkeys(r.peer for r in results if r.peer in PAIRS)
        for name, before, after, bounded in rss_growth(results, peer)
    ]
    return "\n".join(lines + rows) if rows else ""


def report(results: list[Result]) -> str:
    rows = targets(results)
    parts = [
        results_table(results),
        components_table(results),
        rss_table(results),
        "Targets (issue 10):\n\n" + targets_table(rows) if rows else "",
    ]
    return "\n\n".join(p for p in parts if p)


def machine(load_before: tuple[float, ...], root: Path) -> str:
    """The machine and the code the run had (read after the run: load before and after)."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines()
                  if ln.startswith("model name")), platform.processor())  # fmt: skip
    mem_kb = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines()
                      if ln.startswith("MemTotal")))  # fmt: skip
    commit = _git(root, "rev-parse", "--short", "HEAD")
    if _git(root, "status", "--porcelain", "--untracked-files=no"):
        commit += " plus uncommitted changes"
    load_after = os.getloadavg()

    def load(values: tuple[float, ...]) -> str:
        return " / ".join(f"{v:.1f}" for v in values)

    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit}, on {model}, "
        f"{os.cpu_count()} cores, {mem_kb / 1024 / 1024:.0f} GiB, load average (1/5/15 min) "
        f"{load(load_before)} before the run and {load(load_after)} after"
    )


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def replace_between(text: str, start: str, end: str, block: str, heading: str) -> str:
    """``text`` with what is between ``start`` and ``end`` replaced by ``block``; without
    the markers, ``heading`` and the marked block are added at the end."""
    marked = f"{start}\n{block}\n{end}"
    if start in text and end in text:
        pattern = re.escape(start) + ".*?" + re.escape(end)
        return re.sub(pattern, lambda _: marked, text, count=1, flags=re.S)
    return text.rstrip() + f"\n\n{heading}\n\n{marked}\n"


def write_full_run(results: list[Result], where: str, command: str, root: Path) -> None:
    """The tables into bench/RESULTS.md, the targets' summary into the README."""
    path = root / "bench" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    section = f"### `{command}`\n\n{where}.\n\n{LEGEND}\n\n{report(results)}"
    path.write_text(
        replace_between(text, RESULTS_START, RESULTS_END, section, "## Latest full run")
    )
    readme = root / "README.md"
    block = f"Latest full `make bench`: {where}.\n\n{summary(targets(results))}"
    readme.write_text(
        replace_between(readme.read_text(), README_START, README_END, block, "### make bench")
    )

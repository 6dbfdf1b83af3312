"""Summarise a py-spy ``--format raw`` (collapsed stacks) profile: share of samples by thread,
by frame itself (self) and by frame with what it calls (inclusive).

Usage: ``python bench/profiles/summarize.py PROFILE.txt [SELF_ROWS] [INCLUSIVE_ROWS]``.
"""

import collections
import re
import sys
from pathlib import Path

_FRAME = re.compile(r"(.*?) \((.*?):(\d+)\)")


def short(frame: str) -> str:
    """``function (package/module.py)`` without the site-packages or src prefix."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m.group(2).split("site-packages/")[-1].split("/src/")[-1]
    return f"{m.group(1)} ({path})"


def main() -> None:
    lines = Path(sys.argv[1]).read_text().splitlines()
    self_rows = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    incl_rows = int(sys.argv[3]) if len(sys.argv) > 3 else 40
    total = 0
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    for line in lines:
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        threads[frames[0][:60]] += n
        names = [short(f) for f in frames[1:]] or [frames[0]]
        own[names[-1]] += n
        for name in set(names):
            incl[name] += n
    print("total samples", total)
    for title, counter, rows in (
        ("threads", threads, 8),
        ("self", own, self_rows),
        ("inclusive", incl, incl_rows),
    ):
        print(f"-- {title}")
        for name, n in counter.most_common(rows):
            print(f"{n / total * 100:5.1f}% {name}")


if __name__ == "__main__":
    main()

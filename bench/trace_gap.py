"""Sum up a Chromium performance trace written by `bench/first_frame.py --trace DIR`: the page's
requests (when each was sent), the bench's marks, and every task of the page's main thread over
1 ms with what took its time, in ms from the navigation's start.

    python bench/trace_gap.py DIR/watch-nginx-native.json [FROM_MS TO_MS]

Read it for the gap between two events, e.g. the session answer and the first playlist request:
which tasks ran in between (the page's own script and rendering, the media element's load task
`ScheduleNextSourceChild` and `WebMediaPlayerImpl::DoLoad`, anything else on that thread)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

REQUEST = "ResourceSendRequest"


def main() -> None:
    path = Path(sys.argv[1])
    lo = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    hi = float(sys.argv[3]) if len(sys.argv) > 3 else float("inf")
    data = json.loads(path.read_text())
    events = data["traceEvents"] if isinstance(data, dict) else data
    nav = next(e for e in events if e["name"] == "navigationStart"
               and e.get("args", {}).get("data", {}).get("documentLoaderURL"))
    t0, pid, tid = nav["ts"], nav["pid"], nav["tid"]  # the page's renderer main thread

    def ms(e: dict) -> float:
        return (e["ts"] - t0) / 1000

    lines = []
    for e in events:
        if e.get("pid") != pid or "ts" not in e:
            continue
        if e["name"] == REQUEST:
            url = e["args"]["data"].get("url", "")
            if not url.startswith("data:"):  # the media controls' icons
                folder, name = url.rsplit("/", 2)[-2:]
                lines.append((ms(e), f"request   {folder[-12:]}/{name}"))
        elif "user_timing" in e.get("cat", "") and \
                e["name"].startswith(("bench:", "coursecrafter:")):
            lines.append((ms(e), f"mark      {e['name']}"))
        elif e["name"] in ("WebMediaPlayerImpl::DoLoad",):
            lines.append((ms(e), f"media     {e['name']}"))
    main_thread = sorted((e for e in events if e.get("pid") == pid and e.get("tid") == tid
                          and e.get("ph") == "X" and "dur" in e), key=lambda e: e["ts"])
    # A task is the outermost `RunTask`; the scheduler's own event inside it names who posted it
    # (absent for a microtask checkpoint: a promise's continuation, e.g. after a fetch).
    tasks = [e for e in main_thread if e["name"] == "RunTask"]
    for task in tasks:
        if task["dur"] < 1000:
            continue
        end = task["ts"] + task["dur"]
        inside: Counter[str] = Counter()
        origin = ""
        for e in main_thread:
            if not task["ts"] <= e["ts"] < end or e is task:
                continue
            if e["name"] == "ThreadControllerImpl::RunTask":
                origin = origin or e.get("args", {}).get("src_func", "")
            elif e["dur"] > 300 and e["name"] != "RunTask":
                inside[e["name"]] += e["dur"] / 1000
        parts = ", ".join(f"{k} {v:.1f}" for k, v in inside.most_common(5))
        lines.append((ms(task), f"task {task['dur'] / 1000:5.1f} ms  [{origin}] {parts}"))
    for at, text in sorted(lines):
        if lo <= at <= hi:
            print(f"{at:8.1f}  {text}")


if __name__ == "__main__":
    main()

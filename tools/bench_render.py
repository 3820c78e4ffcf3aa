#!/usr/bin/env python3
"""Writes build/bench.json and docs/PERFORMANCE.md from the JSON lines of `make bench`'s
steps (tools/bench.sh calls it after the last step, or when the run is interrupted).

    tools/bench_render.py LINES REV [--command CMD] [--failed STEP]... [--not-run STEP]...

REV is the commit the figures were measured at, as tools/bench.sh took it before the
first step; CMD the command with the settings that changed what was measured (default
`make bench`). Steps that failed (figures missing or partial) and steps an interrupted run
never started are named in the document instead of being dropped silently.
"""
import argparse
import datetime
import json
import platform

ap = argparse.ArgumentParser()
ap.add_argument("lines")
ap.add_argument("rev")
ap.add_argument("--command", default="make bench")
ap.add_argument("--failed", action="append", default=[])
ap.add_argument("--not-run", action="append", default=[])
a = ap.parse_args()

figs = []
for ln in open(a.lines):
    ln = ln.strip()
    if not ln:
        continue
    f = json.loads(ln)
    for k in ("name", "value", "unit"):
        if k not in f:
            raise SystemExit(f"bench: figure without {k}: {ln}")
    figs.append(f)
out = {f["name"]: {k: v for k, v in f.items() if k != "name"} for f in figs}
json.dump(out, open("build/bench.json", "w"), indent=2, sort_keys=True)
cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")


def steps(names):
    return ", ".join(f"`{s}`" for s in names) if names else "none"


md = ["# Performance", "",
      "Written by `make bench` (tools/bench.sh); do not edit by hand. Every ratio is measured",
      "side by side in the same run; the reference is named in its row.", "",
      f"- command: `{a.command}`" + (" (interrupted)" if a.not_run else ""),
      f"- commit: {a.rev or 'uncommitted'}",
      f"- date: {datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M UTC')}",
      f"- machine: {cpu}, {platform.machine()}",
      f"- steps that failed (figures missing or partial): {steps(a.failed)}"]
if a.not_run:
    md.append(f"- steps not run (the run was interrupted): {steps(a.not_run)}")
md += ["", "| figure | value | unit | reference | ratio | note |", "|---|---|---|---|---|---|"]


def fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)


for f in figs:
    ref = f"{fmt(f['ref'])} ({f.get('ref_name', '')})" if "ref" in f else ""
    ratio = fmt(f["ratio"]) if "ratio" in f else ""
    md.append(f"| {f['name']} | {fmt(f['value'])} | {f['unit']} | {ref} | {ratio} | {f.get('note', '')} |")
open("docs/PERFORMANCE.md", "w").write("\n".join(md) + "\n")
print(f"bench: {len(figs)} figures -> build/bench.json, docs/PERFORMANCE.md")

#!/usr/bin/env bash
# `make bench`: runs each benchmark step given on the command line. A step prints its
# figures on stdout as JSON lines, one object per figure:
#   {"name": "mmu.wrprot_slot.16GiB", "value": 1.9, "unit": "ns/page",
#    "ref": 1.2, "ref_name": "stream floor", "ratio": 1.58, "note": "..."}
# name, value and unit are required; ref, ref_name, ratio and note are optional.
# Other lines (progress) go to stderr. The figures of all steps are written to
# build/bench.json and docs/PERFORMANCE.md, with the command that made them.
set -euo pipefail
mkdir -p build
lines=build/bench.jsonl
: >"$lines"
status=0
for step in "$@"; do
	echo "bench: $step" >&2
	if ! "./$step" >>"$lines"; then
		echo "bench: $step failed" >&2
		status=1
	fi
done
python3 - "$lines" <<'PY'
import json, sys, datetime, platform, subprocess
figs = []
for ln in open(sys.argv[1]):
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
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
md = ["# Performance", "",
      "Written by `make bench` (tools/bench.sh); do not edit by hand. Every ratio is measured",
      "side by side in the same run; the reference is named in its row.", "",
      f"- command: `make bench`", f"- commit: {rev or 'uncommitted'}",
      f"- date: {datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M UTC')}",
      f"- machine: {cpu}, {platform.machine()}", "",
      "| figure | value | unit | reference | ratio | note |", "|---|---|---|---|---|---|"]
def fmt(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)
for f in figs:
    ref = f"{fmt(f['ref'])} ({f.get('ref_name', '')})" if "ref" in f else ""
    ratio = fmt(f["ratio"]) if "ratio" in f else ""
    md.append(f"| {f['name']} | {fmt(f['value'])} | {f['unit']} | {ref} | {ratio} | {f.get('note', '')} |")
open("docs/PERFORMANCE.md", "w").write("\n".join(md) + "\n")
print(f"bench: {len(figs)} figures -> build/bench.json, docs/PERFORMANCE.md")
PY
exit $status

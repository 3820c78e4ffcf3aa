#!/usr/bin/env bash
# `make bench`: runs each benchmark step given on the command line. A step prints its
# figures on stdout as JSON lines, one object per figure:
#   {"name": "mmu.wrprot_slot.16GiB", "value": 1.9, "unit": "ns/page",
#    "ref": 1.2, "ref_name": "stream floor", "ratio": 1.58, "note": "..."}
# name, value and unit are required; ref, ref_name, ratio and note are optional.
# Other lines (progress) go to stderr. tools/bench_render.py writes the figures of all
# steps to build/bench.json and docs/PERFORMANCE.md, with the command that made them, the
# commit they were measured at (taken before the first step, "+ uncommitted changes" when
# tracked files differ from it), the steps that failed and, if the run is interrupted
# (INT, TERM), the steps it never started: the document says so instead of dropping them.
set -euo pipefail
mkdir -p build
lines=build/bench.jsonl
: >"$lines"
rev=$(git rev-parse --short HEAD 2>/dev/null || true)
if [ -n "$rev" ] && [ -n "$(git status --porcelain --untracked-files=no -- . ':!docs/PERFORMANCE.md')" ]; then
	rev="$rev + uncommitted changes"
fi
status=0
# The command as run: PT_BENCH_* settings in the environment and a BENCH_STEPS given on
# make's command line change what is measured, so the document names them.
cmd="make bench"
if [ "${PT_BENCH_STEPS_ORIGIN:-}" = "command line" ]; then
	cmd="$cmd BENCH_STEPS='$*'"
fi
settings=
for v in $(compgen -e); do
	case $v in
	PT_BENCH_STEPS_ORIGIN) ;;
	PT_BENCH_*) settings+="$v='${!v}' " ;;
	esac
done
render=(tools/bench_render.py "$lines" "$rev" --command "$settings$cmd")
interrupted() {
	local s
	trap - INT TERM
	echo "bench: interrupted in $1" >&2
	render+=(--failed "$1")
	for s in "${@:2}"; do
		render+=(--not-run "$s")
	done
	"${render[@]}"
	exit 130
}
steps=("$@")
for ((i = 0; i < ${#steps[@]}; i++)); do
	step=${steps[i]}
	echo "bench: $step" >&2
	trap 'interrupted "${steps[@]:i}"' INT TERM
	if ! "./$step" >>"$lines"; then
		echo "bench: $step failed" >&2
		status=1
		render+=(--failed "$step")
	fi
done
trap - INT TERM
"${render[@]}"
exit $status

#!/usr/bin/env bash
# The research commands' line side (tools/ptctl/research_cmd.c, research_send.c) end to
# end without the hypervisor: ptctl built with ASan+UBSan against ptsim (hv/ on the
# simulated machine behind an emulated 16550, tests/proto/ptsim.c). dirty rate (one
# window, a series), precopy over a simulated link, wws, precopy --send (the pages read
# over the line by the live snapshot's engine, the fake guest not writing so that it
# ends after its full pass), the refusals of bad arguments, and every command leaves the
# slots as it found them (not logging) and the guest running.
set -u
cd "$(dirname "$0")/../.." || exit 1
source tests/proto/ptsim_lib.sh
ptsim_init research_e2e

# check_out NAME PYTHON_EXPR: the JSON in $dir/out satisfies it (d is the document)
check_out() {
	if json "$dir/out" "$2"; then
		ok "$1"
	else
		not_ok "$1 ($(head -c 600 "$dir/out"))"
	fi
}
# sim NAME ARGS...: a ptsim on its own socket
sim() {
	local name=$1
	shift
	ptsim_start "$dir/$name.sock" "$@"
}
pt() { "$PT" -c "unix:$sock" --timeout 10000 "$@"; }
left_as_found() {
	pt --json slots >"$dir/out" 2>&1 && check_out "$1.slots_not_logging" 'not any(s["logging"] for s in d)'
	pt --json info >"$dir/out" 2>&1 && check_out "$1.guest_running" 'not d["paused"]'
}

# A guest writing all the time.
sim w --ram-mib 16 --writes-per-poll 1 || { not_ok "sim_started"; exit 1; }
sock=$dir/w.sock
if pt --json dirty rate --seconds 1 >"$dir/out" 2>"$dir/err"; then
	check_out rate.single 'd["dirty_pages"] > 0 and d["dirty_pages"] == sum(s["dirty_pages"] for s in d["slots"]) and 0.5 < d["seconds"] < 5'
else not_ok "rate.single ($(cat "$dir/err"))"; fi
if pt --json dirty rate --interval 0.3 --count 3 >"$dir/out" 2>"$dir/err"; then
	check_out rate.series 'd["count"] == 3 and len(d["samples"]) == 3 and all(s["dirty_pages"] > 0 for s in d["samples"])'
else not_ok "rate.series ($(cat "$dir/err"))"; fi
left_as_found rate
if pt --json precopy --bandwidth 64M --downtime 2 --csv "$dir/p.csv" --plot "$dir/p.svg" >"$dir/out" 2>"$dir/err"; then
	check_out precopy.simulated 'd["rounds"][0]["pages_sent"] == 5120 and d["converged"] == (d["stop"] == "converged") and all(r["pages_sent"] == p["pages_dirtied"] for p, r in zip(d["rounds"], d["rounds"][1:]))'
	if [ "$(wc -l <"$dir/p.csv")" -ge 2 ] && grep -q "<svg" "$dir/p.svg"; then ok precopy.csv_plot; else not_ok precopy.csv_plot; fi
else not_ok "precopy.simulated ($(cat "$dir/err"))"; fi
left_as_found precopy
if pt --json wws --seconds 1 --interval 0.25 >"$dir/out" 2>"$dir/err"; then
	check_out wws 'd["count"] == 4 and all(i["in_previous"] <= i["dirtied"] and i["seen_before"] <= i["dirtied"] for i in d["intervals"]) and d["distinct_pages"] == d["intervals"][-1]["cumulative"]'
else not_ok "wws ($(cat "$dir/err"))"; fi
left_as_found wws

# Refusals: usage errors (status 2) before anything touches the guest.
for args in "precopy" "precopy --bandwidth 1.5G" "precopy --bandwidth 0" "precopy --send --bandwidth 1G" \
	"dirty rate" "dirty rate --seconds 0" "dirty rate --seconds 1 --interval 1 --count 2" \
	"wws --seconds 1 --bandwidth 1G" "wws --seconds 1 --plot x.pdf" "wws --seconds 1 --send" \
	"precopy --bandwidth 1G --max-rounds 0" "dirty rate --seconds"; do
	rc=0
	pt $args >/dev/null 2>"$dir/err" || rc=$?
	if [ "$rc" -eq 2 ]; then ok "refuses.${args// /_}"; else not_ok "refuses.${args// /_} (status $rc)"; fi
done

# --send: a guest that does not write, so the engine converges after its full pass.
sim s --ram-mib 1 --writes-per-poll 0 --poll-us 5 || { not_ok "sim_send_started"; exit 1; }
sock=$dir/s.sock
if pt --json precopy --send --max-rounds 3 --downtime 300 >"$dir/out" 2>"$dir/err"; then
	check_out precopy.send 'd["send"] and d["converged"] and d["rounds"][0]["pages_sent"] == 1280 and d["pages_sent_total"] == 1280 and d["bytes_sent"] == 1280 * 4096 and d["pages_remaining"] == 0 and d["bandwidth"] > 0'
else not_ok "precopy.send ($(cat "$dir/err"))"; fi
left_as_found send

ptsim_done

#!/usr/bin/env bash
# `ptctl snapshot` end to end without the hypervisor: ptctl (ASan+UBSan) against ptsim
# (hv/ on the simulated machine, two vCPUs, a guest on vCPU 1 writing pages between polls;
# on PAUSE it dumps its memory: the oracle of the core's instant).
#   plain and --live (the guest writing all the time) with --stay-paused: every page of
#   the core equals the memory dumped at the pause, NT_PRSTATUS and the QEMU CPU note of
#   both vCPUs equal `ptctl regs`, the slots are left logging; readelf accepts the core;
#   --base (twice in a chain) the same way, sending fewer pages than the core holds; the
#   base refused (exit 1, nothing written, guest running) after someone else's dirty get
#   --clear, after dirty stop, after stop and start, and for a file that is no core;
#   a failing write (file size limit) and SIGTERM leave no file, no temporary, an older
#   FILE untouched and the guest running; a --base whose write fails, -o naming the base,
#   leaves the base byte for byte; a plain and a --base snapshot of a guest the user
#   paused leave every RAM slot as it was; a ptctl killed (SIGKILL) while the guest is
#   paused: the hypervisor ends the pause once the lease runs out, and logs it.
#   --cow: the core equals memory dumped at the PAUSE before the arm although the guest
#   wrote during the copy (memory after it differs), --base on it exact; a 3-page budget
#   makes the writer wait (counted, logged) and is still exact; a guest the user paused is
#   resumed after arming and the output says so; a budget the pool cannot hold and bad
#   usage refused; a ptctl killed during the copy: the hypervisor ends the session after
#   the lease, frees the budget and logs it.
set -u
source "$(dirname "$0")/../proto/ptsim_lib.sh"
ptsim_init snapshot_e2e
CHECK=tests/snapshot/corecheck.py
sock=$dir/sim.sock
pt() { "$PT" -c "unix:$sock" "$@"; }

# A write a poll, a poll a millisecond (the rate these checks were made for): a --base
# snapshot taken right after the last one still finds pages the guest has not written
# since (base_chain).
ptsim_start "$sock" --dump-dir "$dir" --writes-per-poll 1 --ram-mib 2 --poll-us 1000 ||
	{ not_ok "sim_started"; exit 1; }

# regs_paused: both vCPUs' registers taken with the guest paused (a vCPU running on
# another CPU reports only the registers of its last exit, no segments), then running
# again; the memory dumps of the last pause are kept (the core is checked against them).
regs_paused() {
	mkdir -p "$dir/keep" && cp "$dir"/mem-*.bin "$dir/keep/"
	pt pause >/dev/null
	pt --json regs --vcpu 0 >"$dir/r0.json" && pt --json regs --vcpu 1 >"$dir/r1.json"
	pt resume >/dev/null
	cp "$dir"/keep/mem-*.bin "$dir/"
}

# corecheck_at NAME CORE: the core against the dump of the last pause and regs now.
corecheck_at() {
	local name=$1 core=$2
	pt --json regs --vcpu 0 >"$dir/r0.json" && pt --json regs --vcpu 1 >"$dir/r1.json"
	check "$name.corecheck" python3 "$CHECK" "$core" --vcpus 2 --mem "0:$dir/mem-0.bin" \
		--mem "0x100000000:$dir/mem-1.bin" --regs "0:$dir/r0.json" --regs "1:$dir/r1.json"
	check "$name.readelf" readelf -W -h -l -n "$core"
}

rm -f "$dir"/mem-*.bin
pt --json snapshot -o "$dir/plain.core" --stay-paused >"$dir/plain.json" 2>"$dir/out"
check plain.json json "$dir/plain.json" \
	'd["pages"]==1536 and d["pages_sent"]==1536 and d["rounds"]==1 and d["guest"]=="paused" and all(k in d for k in ("file","cow_pages","wire_bytes","downtime_ms","total_ms"))'
corecheck_at plain "$dir/plain.core"
pt --json slots >"$dir/slots.json"
check plain.leaves_logging json "$dir/slots.json" 'all(s["logging"] for s in d if s["type"]=="ram")'
check plain.resume pt resume

rm -f "$dir"/mem-*.bin
pt --json snapshot -o "$dir/live.core" --live --max-rounds 3 --downtime 1 --stay-paused \
	>"$dir/live.json" 2>"$dir/out"
check live.json json "$dir/live.json" \
	'd["mode"]=="live" and d["rounds"]>=3 and d["pages_sent"]>d["pages"] and d["guest"]=="paused"'
corecheck_at live "$dir/live.core"
check live.resume pt resume

# --base: only what the log holds since the base crosses; the result is a complete core.
rm -f "$dir"/mem-*.bin
pt --json snapshot -o "$dir/inc1.core" --base "$dir/live.core" --stay-paused >"$dir/inc1.json" 2>"$dir/out"
check base.json json "$dir/inc1.json" \
	'd["mode"]=="base" and 0<d["pages_sent"]<d["pages"] and d["pages"]==1536 and d["guest"]=="paused"'
corecheck_at base "$dir/inc1.core"
check base.resume pt resume
sleep 0.5
rm -f "$dir"/mem-*.bin
pt --json snapshot -o "$dir/inc2.core" --base "$dir/inc1.core" --stay-paused >"$dir/inc2.json" 2>"$dir/out"
check base_chain.json json "$dir/inc2.json" 'd["mode"]=="base" and 0<d["pages_sent"]<d["pages"]'
corecheck_at base_chain "$dir/inc2.core"
check base_chain.resume pt resume

# refused NAME MSG CMD...: exit status 1, MSG in the message, no FILE, no temporary, running.
refused() {
	local name=$1 msg=$2 rc
	shift 2
	"$@" >"$dir/out" 2>&1
	rc=$?
	pt --json info >"$dir/info.json"
	if [ "$rc" -eq 1 ] && grep -q -- "$msg" "$dir/out" && [ ! -e "$dir/refused.core" ] &&
		! ls "$dir"/refused.core.tmp.* >/dev/null 2>&1 && json "$dir/info.json" 'not d["paused"]'; then
		ok "$name"
	else
		not_ok "$name (exit $rc; $(tr '\n' ' ' <"$dir/out"))"
	fi
}
# Someone else's dirty get --clear takes pages from the series: the base is refused.
pt dirty get --slot 0 --clear >/dev/null
refused base.stolen_bits_refused "dirty log moved" pt snapshot -o "$dir/refused.core" --base "$dir/inc2.core"
# Logging stopped and started again since the base: refused.
pt snapshot -o "$dir/full.core" >/dev/null 2>&1
pt dirty stop --all >/dev/null
refused base.not_logging_refused "not logging" pt snapshot -o "$dir/refused.core" --base "$dir/full.core"
pt dirty start --all --mode wp >/dev/null
refused base.restarted_log_refused "dirty log moved" pt snapshot -o "$dir/refused.core" --base "$dir/full.core"
refused base.not_a_core_refused "cannot be a base" pt snapshot -o "$dir/refused.core" --base "$dir/inc1.json"
check base.base_unchanged python3 "$CHECK" "$dir/full.core" --vcpus 2

# --cow: the core is memory at the PAUSE before the arm, while the guest writes during the
# whole copy (the hypervisor copies a page before its first write); then the guest runs.
rm -f "$dir"/mem-*.bin
pt --json snapshot -o "$dir/cow.core" --cow >"$dir/cow.json" 2>"$dir/out"
check cow.json json "$dir/cow.json" \
	'd["mode"]=="cow" and d["pages"]==1536 and d["pages_sent"]==1536 and d["cow_pages"]>0 and d["guest"]=="running" and d["cow_budget_pages"]==256 and not d["resumed_users_pause"]'
cp "$dir/mem-0.bin" "$dir/cow-mem-0.bin"
cp "$dir/mem-1.bin" "$dir/cow-mem-1.bin"
pt --json info >"$dir/info.json"
check cow.guest_running json "$dir/info.json" 'not d["paused"]'
regs_paused
check cow.corecheck python3 "$CHECK" "$dir/cow.core" --vcpus 2 --mem "0:$dir/cow-mem-0.bin" \
	--mem "0x100000000:$dir/cow-mem-1.bin" --regs "0:$dir/r0.json" --regs "1:$dir/r1.json"
check cow.readelf readelf -W -h -l -n "$dir/cow.core"
# The guest wrote during the copy: memory now is not the core any more.
pt pause >/dev/null
if python3 "$CHECK" "$dir/cow.core" --vcpus 2 --mem "0:$dir/mem-0.bin" \
	--mem "0x100000000:$dir/mem-1.bin" >"$dir/out" 2>&1; then
	not_ok "cow.guest_wrote_during_copy (memory after the copy equals the core)"
else ok cow.guest_wrote_during_copy; fi
pt resume >/dev/null
pt --json slots >"$dir/slots.json"
check cow.leaves_logging json "$dir/slots.json" 'all(s["logging"] for s in d if s["type"]=="ram")'
# The series goes on from a --cow core: --base on it is exact.
rm -f "$dir"/mem-*.bin
pt --json snapshot -o "$dir/cowbase.core" --base "$dir/cow.core" --stay-paused >"$dir/cowbase.json" 2>"$dir/out"
check cow.base_on_it.json json "$dir/cowbase.json" 'd["mode"]=="base" and 0<d["pages_sent"]<=d["pages"]'
corecheck_at cow.base_on_it "$dir/cowbase.core"
check cow.base_on_it.resume pt resume

# A budget of 3 pages: vCPUs wait for the stream to free room, counted and logged; still exact.
pt --json stats >"$dir/stats0.json"
rm -f "$dir"/mem-*.bin
pt --json snapshot -o "$dir/cowtiny.core" --cow --cow-mib 0.01 >"$dir/cowtiny.json" 2>"$dir/out"
check cow.tiny_budget.json json "$dir/cowtiny.json" \
	'd["cow_budget_pages"]==3 and d["cow_waits"]>0 and d["cow_max_used"]==3 and d["cow_pages"]>0'
pt --json stats >"$dir/stats1.json"
pt log --bytes 20000 >"$dir/log.txt"
check cow.tiny_budget.waits_counted python3 -c "import json,sys; a,b=(json.load(open(f)) for f in sys.argv[1:]); sys.exit(0 if b['cow.waits_total']>a['cow.waits_total']>=0 and b['cow.sent_copy']==b['cow.copies'] else 1)" "$dir/stats0.json" "$dir/stats1.json"
check cow.tiny_budget.wait_logged grep -q "budget full, a vCPU waits for the stream" "$dir/log.txt"
regs_paused
check cow.tiny_budget.corecheck python3 "$CHECK" "$dir/cowtiny.core" --vcpus 2 --mem "0:$dir/mem-0.bin" \
	--mem "0x100000000:$dir/mem-1.bin" --regs "0:$dir/r0.json" --regs "1:$dir/r1.json"

# A guest the user paused: --cow resumes it after arming, and says so.
pt pause >/dev/null
pt snapshot -o "$dir/cowp.core" --cow >"$dir/cowp.txt" 2>&1
pt --json info >"$dir/info.json"
check cow.users_pause_resumed json "$dir/info.json" 'not d["paused"]'
check cow.users_pause_said grep -q "paused before, resumed after arming" "$dir/cowp.txt"
check cow.users_pause.corecheck python3 "$CHECK" "$dir/cowp.core" --vcpus 2 --mem "0:$dir/mem-0.bin" \
	--mem "0x100000000:$dir/mem-1.bin"

# Refusals: a budget the pool cannot hold (exit 1, no file, guest running); bad usage (2).
refused_cow() {
	local name=$1 want=$2 msg=$3 rc
	shift 3
	"$@" >"$dir/out" 2>&1
	rc=$?
	pt --json info >"$dir/info.json"
	if [ "$rc" -eq "$want" ] && grep -q -- "$msg" "$dir/out" && [ ! -e "$dir/refused.core" ] &&
		! ls "$dir"/refused.core.tmp.* >/dev/null 2>&1 && json "$dir/info.json" 'not d["paused"]'; then
		ok "$name"
	else
		not_ok "$name (exit $rc; $(tr '\n' ' ' <"$dir/out"))"
	fi
}
refused_cow cow.budget_too_big_refused 1 "smaller --cow-mib" pt snapshot -o "$dir/refused.core" --cow --cow-mib 64
refused_cow cow.with_live_usage 2 "goes alone" pt snapshot -o "$dir/refused.core" --cow --live
refused_cow cow.stay_paused_usage 2 "goes alone" pt snapshot -o "$dir/refused.core" --cow --stay-paused
refused_cow cow.mib_without_cow_usage 2 "goes with --cow" pt snapshot -o "$dir/refused.core" --cow-mib 4
refused_cow cow.bad_mib_usage 2 "bad --cow-mib" pt snapshot -o "$dir/refused.core" --cow --cow-mib -1

# A paused guest stays paused; plain snapshot of it without --stay-paused.
pt pause >/dev/null
pt --json snapshot -o "$dir/p2.core" >"$dir/p2.json" 2>"$dir/out"
pt --json info >"$dir/info.json"
check paused_stays_paused json "$dir/info.json" 'd["paused"]'
check paused_json json "$dir/p2.json" 'd["downtime_ms"]==0 and d["guest"]=="paused"'
pt resume >/dev/null

# Faults: the write fails (file size limit): exit status, no file, no temporary, old FILE kept.
echo old >"$dir/keep.core"
(
	trap '' XFSZ
	ulimit -f 64
	pt snapshot -o "$dir/keep.core"
) >"$dir/out" 2>&1
rc=$?
pt --json info >"$dir/info.json"
if [ "$rc" -ne 0 ] && [ "$(cat "$dir/keep.core")" = old ] && ! ls "$dir"/keep.core.tmp.* >/dev/null 2>&1 &&
	json "$dir/info.json" 'not d["paused"]'; then ok fault.write_fails; else
	not_ok "fault.write_fails (exit $rc; $(ls "$dir" | tr '\n' ' '))"
fi
# SIGTERM in the middle of a live snapshot: no file, no temporary, the guest running.
"$PT" -c "unix:$sock" snapshot -o "$dir/term.core" --live --max-rounds 1000 --downtime 0 \
	>"$dir/out" 2>&1 &
spid=$!
sleep 1.5
kill -TERM "$spid"
wait "$spid"
rc=$?
pt --json info >"$dir/info.json"
if [ "$rc" -ne 0 ] && [ ! -e "$dir/term.core" ] && ! ls "$dir"/term.core.tmp.* >/dev/null 2>&1 &&
	json "$dir/info.json" 'not d["paused"]'; then ok fault.sigterm; else
	not_ok "fault.sigterm (exit $rc; $(ls "$dir" | tr '\n' ' '))"
fi
# A --base whose write fails, -o naming the base itself: the base stays byte for byte.
pt snapshot -o "$dir/series.core" >/dev/null 2>&1
cp "$dir/series.core" "$dir/series.orig"
(
	trap '' XFSZ
	ulimit -f 64
	pt snapshot -o "$dir/series.core" --base "$dir/series.core"
) >"$dir/out" 2>&1
rc=$?
pt --json info >"$dir/info.json"
if [ "$rc" -ne 0 ] && cmp -s "$dir/series.core" "$dir/series.orig" &&
	! ls "$dir"/series.core.tmp.* >/dev/null 2>&1 && json "$dir/info.json" 'not d["paused"]'; then
	ok fault.base_write_fails_base_intact
else
	not_ok "fault.base_write_fails_base_intact (exit $rc; $(ls "$dir" | tr '\n' ' '))"
fi
rm -f "$dir/series.core" "$dir/series.orig"
# A snapshot never writes guest memory: with the guest paused by the user (it stays
# paused), every RAM slot reads the same before and after a plain and a --base snapshot.
# mem_all OUT: every RAM slot, one file each, OUT.N.
mem_all() {
	local i=0 base size
	while read -r base size; do
		pt mem read "$base" "$size" -o "$1.$i" >/dev/null || return 1
		i=$((i + 1))
	done < <(python3 -c 'import json,sys
for s in json.load(open(sys.argv[1])):
    if s["type"] == "ram": print(s["gpa"], s["size"])' "$dir/slots.json")
}
pt --json slots >"$dir/slots.json"
pt pause >/dev/null
mem_all "$dir/before"
pt snapshot -o "$dir/ro.core" >/dev/null 2>"$dir/out" &&
	pt snapshot -o "$dir/ro2.core" --base "$dir/ro.core" >/dev/null 2>>"$dir/out"
rc=$?
mem_all "$dir/after"
same=1
for f in "$dir"/before.*; do cmp -s "$f" "$dir/after.${f##*.}" || same=0; done
if [ "$rc" -eq 0 ] && [ "$same" -eq 1 ] && ls "$dir"/before.* >/dev/null 2>&1; then
	ok snapshot.guest_memory_unchanged
else
	not_ok "snapshot.guest_memory_unchanged (exit $rc, same $same; $(tr '\n' ' ' <"$dir/out"))"
fi
pt resume >/dev/null
rm -f "$dir"/before.* "$dir"/after.* "$dir/ro.core" "$dir/ro2.core"
# SIGKILL while the guest is paused: no FILE; the hypervisor ends the pause on its own
# once the host is silent for the lease, and says so in its log.
# The kill must land after the PAUSE and before the copy ends; how long the copy takes
# depends on the machine (one host at a time: no polling it), so try shorter and longer
# delays until one does. A try that ended or killed too early leaves the guest running.
for delay in 0.8 0.4 0.2 0.1 0.05 0.02 1.5 3; do
	rm -f "$dir/kill.core"
	"$PT" -c "unix:$sock" snapshot -o "$dir/kill.core" --lease 1500 >"$dir/out" 2>&1 &
	spid=$!
	sleep "$delay"
	kill -KILL "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	pt --json info >"$dir/info.json"
	json "$dir/info.json" 'd["paused"]' && break
done
check lease.paused_when_killed json "$dir/info.json" 'd["paused"]'
# The lease is 1.5 s: stay silent for twice that, then look; any request renews a lease,
# so polling faster would keep it alive. A busy host may stretch it: look up to 6 times.
for _ in $(seq 6); do
	sleep 3
	pt --json info >"$dir/info.json"
	json "$dir/info.json" 'not d["paused"]' && break
done
pt --json stats >"$dir/stats.json"
pt log --bytes 4000 >"$dir/log.txt"
if json "$dir/info.json" 'not d["paused"]' && [ ! -e "$dir/kill.core" ] &&
	json "$dir/stats.json" 'd["proto.leases_expired"]>=1' && grep -q "lease ended, guest resumed" "$dir/log.txt"; then
	ok lease.ended_by_hypervisor
else
	not_ok "lease.ended_by_hypervisor ($(cat "$dir/info.json") $(tail -2 "$dir/log.txt"))"
fi
# SIGKILL during a --cow copy (the guest running, pages protected, copies held): the
# hypervisor ends the session once the host is silent for the lease, frees the budget and
# says so. The kill must land after COW_ARM (the session counter went up) and before the
# copy ended (no FILE); how long the copy takes depends on the machine, so try shorter and
# longer delays until one does. A try that finished wrote FILE: remove it before the next,
# or a later try that did land would still look finished.
for delay in 0.6 0.3 0.15 0.08 0.04 1.0 2; do
	rm -f "$dir/kill.core"
	pt --json stats >"$dir/stats0.json"
	"$PT" -c "unix:$sock" snapshot -o "$dir/kill.core" --cow --cow-mib 0.01 --lease 1000 \
		>"$dir/out" 2>&1 &
	spid=$!
	sleep "$delay"
	kill -KILL "$spid" 2>/dev/null
	wait "$spid" 2>/dev/null
	pt --json stats >"$dir/stats_k.json"
	sessions0=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["cow.sessions"])' "$dir/stats0.json")
	[ ! -e "$dir/kill.core" ] && json "$dir/stats_k.json" "d['cow.sessions']>$sessions0" && break
	# Killed before the arm: the guest may be paused under the 1 s pause lease; let it end.
	sleep 1.5
done
# The lease is 1 s: stay silent for 2.5 s, then look (as above, a request renews it); a
# busy host once stretched the end past one such wait: look up to 6 times.
for _ in $(seq 6); do
	sleep 2.5
	pt --json stats >"$dir/stats1.json"
	json "$dir/stats1.json" 'd["cow.ended_by_lease"]>=1' && break
done
pt log --bytes 4000 >"$dir/log.txt"
pt --json info >"$dir/info.json"
if [ ! -e "$dir/kill.core" ] && json "$dir/info.json" 'not d["paused"]' &&
	json "$dir/stats1.json" 'd["cow.ended_by_lease"]>=1' &&
	grep -q "silent for its copy-on-write lease" "$dir/log.txt"; then
	ok cow.lease_ended_by_hypervisor
else
	not_ok "cow.lease_ended_by_hypervisor (FILE $([ -e "$dir/kill.core" ] && echo written || echo absent); $(cat "$dir/info.json"); $(tail -2 "$dir/log.txt"))"
fi
# The budget is free again: a new --cow snapshot arms.
rm -f "$dir"/mem-*.bin
check cow.after_lease pt snapshot -o "$dir/cow3.core" --cow
ptsim_done

#!/usr/bin/env bash
# Dirty logging on EPT under Intel VMX (Bochs), in each mode the CPU
# model offers, harvested over the management port (COM2 -> relay.py -> ptctl).
#
# dirty_writer.efi, started by pagetrail.efi in the virtualized firmware, keeps storing
# its iteration number into random pages of its buffer. For each mode: dirty start on
# the buffer's slot; then rounds of: guest paused, `dirty get --clear` + read the buffer
# (round start); resume, let it write; pause, `dirty get --clear` + read the buffer again.
# Every page whose contents changed in the round must be set in the round's bitmap
# (dirty_check.py), and some must have changed (else the round proves nothing).
#
#   PT_BOCHS_MODEL=corei7_skylake_x (default): modes wp dbit pml, PML must be used.
#   PT_BOCHS_MODEL=corei7_haswell_4770: no PML: `dirty start --mode pml` must be refused
#   with a clear answer, and wp and dbit must still work.
#   PT_BOCHS_CPUS=2 (tests/bochs/test_dirty_log_smp.sh): both CPUs are vCPUs and both
#   write (the writer runs its loop on the AP too, on its own part of the buffer), PML is
#   switched on and off on each (each on its own CPU) and every harvest drains both logs.
source "$(dirname "$0")/lib.sh"
model=${PT_BOCHS_MODEL:-corei7_skylake_x}
cpus=${PT_BOCHS_CPUS:-1}
if [ "$cpus" -gt 1 ]; then
	pt_init "dirty_log_${model}_${cpus}cpus"
else
	pt_init "dirty_log_$model"
fi
pt_need "$BUILD/ptctl" "$BUILD/bochs/dirty_writer.efi"
rounds=${PT_DIRTY_ROUNDS:-2}
img=$RUN_DIR/esp.img
com1=$RUN_DIR/com1.log
t=dirty_log.$model
[ "$cpus" -gt 1 ] && t=$t.${cpus}cpus

# Long management commands in small steps (docs/protocol.md "Long commands"): dirty start
# arms the writer's slot step by step while the writer runs (PML must be on before the
# first step), and every harvest takes many steps.
step=${PT_BOCHS_STEP_PAGES:-512}
pt_bochs_chain_esp "$img" "\\EFI\\pagetrail\\pagetrail.efi --mgmt-step-pages $step \\EFI\\tests\\dirty_writer.efi" || {
	pt_not_ok "$t.esp mtools failed"
	exit 1
}
pt_relay_start || {
	pt_not_ok "$t.relay did not start ($(cat "$RUN_DIR/relay.out"))"
	exit 1
}
if ! pt_bochs_start "$model" "$img" 600; then
	pt_not_ok "$t.bochs_started (see $RUN_DIR/bochs.err)"
	exit 1
fi
if ! pt_wait_for "$com1" '^dirty_writer: buf 0x[0-9A-Fa-f]+ pages [0-9]+' 400; then
	pt_not_ok "$t.writer_started (no 'dirty_writer: buf' line in $com1)"
	exit 1
fi
set -- $(pt_text "$com1" | sed -n 's/^dirty_writer: buf \(0x[0-9A-Fa-f]*\) pages \([0-9]*\)$/\1 \2/p')
buf=$1 npages=$2
writers=$(pt_text "$com1" | sed -n 's/^dirty_writer: cpus \([0-9]*\)$/\1/p')
pt_ok "$t.writer_started buf $buf pages $npages"
pt_check "$t.writer_on_every_cpu" "(the writer writes on ${writers:-?} CPU(s), want $cpus)" \
	test "${writers:-0}" -eq "$cpus"

ptctl() { $PT_PTCTL "$@" 2>>"$RUN_DIR/ptctl.err"; }

# The slot holding the buffer.
ptctl --json slots >"$RUN_DIR/slots.json"
set -- $(python3 -c '
import json, sys
buf = int(sys.argv[2], 0)
for s in json.load(open(sys.argv[1])):
    if s["gpa"] <= buf < s["gpa"] + s["size"]:
        print(s["id"], s["gpa"])
' "$RUN_DIR/slots.json" "$buf" 2>>"$RUN_DIR/ptctl.err")
slot=${1:-} slot_gpa=${2:-}
if [ -z "$slot" ]; then
	pt_not_ok "$t.slot_found (no slot holds $buf: $(head -c 300 "$RUN_DIR/slots.json"))"
	exit 1
fi
pt_ok "$t.slot_found slot $slot at $slot_gpa"

# snapshot NAME: harvest with clear into NAME.bm and read the buffer into NAME.mem,
# with the guest paused (the caller pauses and resumes).
snapshot() {
	ptctl dirty get --slot "$slot" --clear -o "$RUN_DIR/$1.bm" >/dev/null &&
		ptctl mem read "$buf" $((npages * 4096)) -o "$RUN_DIR/$1.mem" >/dev/null
}

# check_mode MODE: start logging, rounds, stop.
check_mode() {
	local mode=$1 r ok=1 out rc summary
	if ! ptctl dirty start --slot "$slot" --mode "$mode" >/dev/null; then
		pt_not_ok "$t.$mode.start ($(tail -1 "$RUN_DIR/ptctl.err"))"
		return
	fi
	pt_ok "$t.$mode.start"
	if ! { ptctl pause >/dev/null && snapshot "$mode.0"; }; then
		pt_not_ok "$t.$mode.first_snapshot ($(tail -1 "$RUN_DIR/ptctl.err"))"
		ok=0
	fi
	for ((r = 1; ok && r <= rounds; r++)); do
		ptctl resume >/dev/null
		sleep 1
		if ! { ptctl pause >/dev/null && snapshot "$mode.$r"; }; then
			pt_not_ok "$t.$mode.round$r.harvest ($(tail -1 "$RUN_DIR/ptctl.err"))"
			ok=0
			break
		fi
		out=$(python3 tests/bochs/dirty_check.py "$RUN_DIR/$mode.$((r - 1)).mem" \
			"$RUN_DIR/$mode.$r.mem" "$RUN_DIR/$mode.$r.bm" "$slot_gpa" "$buf" "$npages" "$cpus")
		rc=$?
		summary=$(echo "$out" | head -1)
		if [ $rc -eq 1 ] || [ $rc -eq 3 ]; then
			pt_not_ok "$t.$mode.round$r.no_write_lost ($(echo $out | head -c 400))"
		elif [[ $summary == "changed 0 "* ]]; then
			pt_not_ok "$t.$mode.round$r.no_write_lost (the writer changed no page: $summary)"
		else
			pt_ok "$t.$mode.round$r.no_write_lost ($summary)"
		fi
		# Exact for the buffer but for the store in flight at the pause (dirty_check.py):
		# a page not written in the round is clean, so the previous harvest re-armed it.
		if [ $rc -eq 2 ]; then
			pt_not_ok "$t.$mode.round$r.rearmed ($(echo $out | head -c 400))"
		elif [ $rc -eq 0 ]; then
			pt_ok "$t.$mode.round$r.rearmed"
		fi
	done
	ptctl resume >/dev/null
	if ptctl dirty stop --slot "$slot" >/dev/null; then
		pt_ok "$t.$mode.stop"
	else
		pt_not_ok "$t.$mode.stop ($(tail -1 "$RUN_DIR/ptctl.err"))"
	fi
}

ptctl info >"$RUN_DIR/info.txt"
if grep -q 'dirty modes.*pml' "$RUN_DIR/info.txt"; then
	modes="wp dbit pml"
else
	modes="wp dbit"
	# No PML on this CPU: `info` does not offer it, asking for it gets a clear refusal,
	# nothing is started, and the hypervisor's log says why at start.
	if ptctl dirty start --slot "$slot" --mode pml >/dev/null; then
		pt_not_ok "$t.pml_refused (dirty start --mode pml succeeded on a CPU without PML)"
	elif tail -1 "$RUN_DIR/ptctl.err" | grep -q 'not supported'; then
		pt_ok "$t.pml_refused ($(tail -1 "$RUN_DIR/ptctl.err"))"
	else
		pt_not_ok "$t.pml_refused (unclear answer: $(tail -1 "$RUN_DIR/ptctl.err"))"
	fi
	pt_check "$t.pml_absence_logged" "(no 'vmx: controls ... PML no' line in the log)" \
		pt_has "$RUN_DIR/e9.log" '^pagetrail: vmx: controls .* PML no'
fi
for m in $modes; do
	check_mode "$m"
done
if [[ $modes == *pml* ]]; then
	pt_check "$t.pml.cpu_logged" "(no 'vmx: PML on' in the log)" \
		pt_has "$RUN_DIR/e9.log" '^pagetrail: vmx: PML on'
	# The writer's scratch sweep overflows the 512-entry log between harvests.
	pt_check "$t.pml.full_exit_drained" "(no 'vmx: PML full exit' in the log)" \
		pt_has "$RUN_DIR/e9.log" '^pagetrail: vmx: PML full exit'
	if [ "$cpus" -gt 1 ]; then
		# One pml start and one stop: PML switched on every vCPU's own VMCS.
		pt_check "$t.pml.on_every_vcpu" "(not $cpus 'vmx: PML on' lines in the log)" \
			test "$(pt_text "$RUN_DIR/e9.log" | grep -c '^pagetrail: vmx: PML on')" -eq "$cpus"
		pt_check "$t.pml.off_every_vcpu" "(not $cpus 'vmx: PML off' lines in the log)" \
			test "$(pt_text "$RUN_DIR/e9.log" | grep -c '^pagetrail: vmx: PML off')" -eq "$cpus"
	fi
fi
if [ "$cpus" -gt 1 ]; then
	pt_check "$t.all_virtualized" "(no 'smp: all $cpus CPUs are virtualized' in the log)" \
		pt_has "$RUN_DIR/e9.log" "^pagetrail: smp: all $cpus CPUs are virtualized"
fi
ptctl --json stats >"$RUN_DIR/stats.json"
pt_check "$t.commands_in_steps" "(proto.long_cmds is 0 with --mgmt-step-pages $step)" \
	python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1]))["proto.long_cmds"] > 0 else 1)' \
	"$RUN_DIR/stats.json"
pt_check "$t.mgmt_info_backend_vmx" "(ptctl info: $(grep -m1 backend "$RUN_DIR/info.txt"))" \
	grep -Eq '^backend +vmx$' "$RUN_DIR/info.txt"
pt_hv_log_checks "$t"
pt_finish

#!/usr/bin/env bash
# No silent fallback for the SVM management tick. Where the HPET cannot
# be taken, pagetrail.efi still virtualizes but says so: a "management tick: NONE
# (reason): NO bound ..." log line and `ptctl stats` hv.mgmt_tick 0.
#   in_use: the UEFI shell's `mm` enables comparator 0's interrupt before pagetrail.efi
#           runs, as firmware that uses the HPET would: the HPET is left alone.
#   no_fsb: QEMU's HPET without FSB delivery (-global hpet.msi=off after run-qemu.sh's on).
# Control: the same shell script without `mm`, with FSB: the tick is taken (hv.mgmt_tick 1).
# The shell stays at its prompt after pagetrail.efi returns, the firmware running as guest.
source "$(dirname "$0")/lib.sh"
pt_init tick_refusal

# run NAME LOG_REGEX MGMT_TICK MM_LINE [run-qemu.sh args...]
run() {
	local name=$1 re=$2 want=$3 mm=$4 stats rc
	shift 4
	pt_run_dir "tick_refusal/$name"
	printf 'fs0:\r\n%s\\EFI\\pagetrail\\pagetrail.efi\r\necho "tick-refusal: pagetrail.efi returned %%lasterror%%"\r\n' \
		"$mm" >"$RUN_DIR/startup.nsh"
	PT_QEMU_TIMEOUT=150 pt_qemu_start --shell "$RUN_DIR/startup.nsh" "$@"
	if ! pt_wait_for "$RUN_DIR/com1.log" '^tick-refusal: pagetrail.efi returned 0x0' 120; then
		pt_not_ok "tick_refusal.$name.virtualized (no 'pagetrail.efi returned 0x0' on $RUN_DIR/com1.log)"
		pt_qemu_kill
		return
	fi
	pt_ok "tick_refusal.$name.virtualized"
	pt_check "tick_refusal.$name.log_says" "(no line matching '$re' in $RUN_DIR/hv.log)" \
		pt_has "$RUN_DIR/hv.log" "$re"
	rc=0
	stats=$("$BUILD/ptctl" -c "unix:$RUN_DIR/mgmt.sock" --timeout 10000 stats 2>&1) || rc=$?
	pt_check "tick_refusal.$name.stats_mgmt_tick_$want" \
		"(ptctl stats exit $rc, $(grep -E '^hv\.mgmt_tick' <<<"$stats" || echo 'no hv.mgmt_tick'))" \
		eval '[ "$rc" -eq 0 ] && grep -Eq "^hv\.mgmt_tick +$want\$" <<<"$stats"'
	pt_hv_log_checks "tick_refusal.$name"
	pt_qemu_kill
}

# Comparator 0's configuration register (0xFED00100): Tn_INT_ENB_CNF (bit 2).
run in_use 'management tick: NONE \(the firmware already uses the HPET' 0 \
	$'mm FED00100 4 -w 4 -MMIO -n\r\n'
run no_fsb 'management tick: NONE \(no HPET comparator can deliver through FSB' 0 '' \
	--qemu-arg -global --qemu-arg hpet.msi=off
run control 'management tick: HPET at 0xfed00000' 1 ''
pt_finish

#!/usr/bin/env bash
# Bounded response time: the management port answers while the guest runs with
# interrupts disabled. irqoff.efi (tests/guest/irqoff.c) executes CLI and spins on RDTSC
# for PT_IRQOFF_SECS (no exit of its own); during the spin `ptctl info` and `ptctl stats` must
# be answered, before the guest prints "irqoff: done". On SVM the hypervisor gets control
# from its HPET NMI tick (docs/hv.md "How the hypervisor gets control"); the stats must
# show it (hv.mgmt_tick 1, exit.nmi > 0).
# Negative control, same guest: `pagetrail.efi --no-mgmt-tick` takes no tick, and a
# request sent during the spin gets no answer (ptctl exits 3, timeout) while the guest
# has not printed "done"; after the spin the port answers again. Both assertions are
# functional (answered during the spin, or not), not time bounds.
# Every CPU at once (2 CPUs, `irqoff.efi SECONDS all`: the APs spin through the firmware's
# MP services while the boot CPU spins): info, pause, regs of the AP, resume and stats are
# answered during the spin, and the pause reached the spinning AP (its kick counted).
source "$(dirname "$0")/lib.sh"
pt_init irqoff

secs=${PT_IRQOFF_SECS:-25}
app="\\EFI\\tests\\irqoff.efi $secs"
hv='\EFI\pagetrail\pagetrail.efi'
spin_re='^irqoff: spinning'
done_re='^irqoff: done'

# start_spin PREFIX HV_ARGS [APP_ARGS [RUN_QEMU_ARGS...]]: boots the guest, waits for the
# spin to start; fails if it does not.
start_spin() {
	local prefix=$1 hv_args=$2 app_args=${3:-}
	shift 3 2>/dev/null || shift $#
	PT_QEMU_TIMEOUT=$((secs + 150)) pt_qemu_start --boot-cfg "$hv $hv_args$app$app_args" "$@"
	if ! pt_wait_for "$RUN_DIR/com1.log" "$spin_re" 120; then
		pt_not_ok "$prefix.spin_started (no 'irqoff: spinning' on $RUN_DIR/com1.log)"
		return 1
	fi
	pt_ok "$prefix.spin_started"
	# The CLI follows the marker at once; give the firmware's console time to flush it.
	sleep 2
}

ptctl() { "$BUILD/ptctl" -c "unix:$RUN_DIR/mgmt.sock" "$@"; }

# With the tick.
pt_run_dir irqoff/tick
if start_spin irqoff.tick ''; then
	info_rc=0
	info=$(ptctl --timeout 10000 info 2>&1) || info_rc=$?
	stats_rc=0
	stats=$(ptctl --timeout 10000 stats 2>&1) || stats_rc=$?
	# Read before anything else: were both answers in while the guest still spun?
	spun_through=1
	pt_has "$RUN_DIR/com1.log" "$done_re" && spun_through=0
	pt_check irqoff.tick.info_answered "(ptctl info exit $info_rc: $info)" \
		eval '[ "$info_rc" -eq 0 ] && grep -Eq "backend +svm" <<<"$info"'
	pt_check irqoff.tick.stats_answered "(ptctl stats exit $stats_rc)" test "$stats_rc" -eq 0
	pt_check irqoff.tick.answered_during_spin "(the guest printed 'irqoff: done' before the answers were checked: spin too short)" \
		test "$spun_through" -eq 1
	pt_check irqoff.tick.stats_show_tick "(no 'hv.mgmt_tick 1' and exit.nmi > 0 in: $(grep -E 'mgmt_tick|exit.nmi' <<<"$stats" | tr '\n' ' '))" \
		eval 'grep -Eq "^hv\.mgmt_tick +1$" <<<"$stats" && grep -Eq "^exit\.nmi +[1-9]" <<<"$stats"'
	pt_check irqoff.tick.guest_finished "(no 'irqoff: done' after the spin)" \
		pt_wait_for "$RUN_DIR/com1.log" "$done_re" $((secs + 60))
	pt_check irqoff.tick.log_says_tick "(no 'management tick: HPET' line in $RUN_DIR/hv.log)" \
		pt_has "$RUN_DIR/hv.log" 'pagetrail: management tick: HPET at 0x'
	pt_hv_log_checks irqoff.tick
fi
pt_qemu_kill

# Negative control: no tick.
pt_run_dir irqoff/no_tick
if start_spin irqoff.no_tick '--no-mgmt-tick '; then
	rc=0
	out=$(ptctl --timeout 5000 info 2>&1) || rc=$?
	still_spinning=1
	pt_has "$RUN_DIR/com1.log" "$done_re" && still_spinning=0
	if [ "$still_spinning" -eq 0 ]; then
		pt_not_ok "irqoff.no_tick.unanswered_during_spin (inconclusive: the spin ended before ptctl gave up)"
	else
		# Exit 3 is any transport failure: require ptctl's "no reply" (a timeout), not e.g.
		# a refused connection.
		pt_check irqoff.no_tick.unanswered_during_spin "(ptctl exit $rc, want 3 and 'no reply' (timeout): $out)" \
			eval '[ "$rc" -eq 3 ] && grep -q "no reply" <<<"$out"'
	fi
	pt_check irqoff.no_tick.guest_finished "(no 'irqoff: done' after the spin)" \
		pt_wait_for "$RUN_DIR/com1.log" "$done_re" $((secs + 60))
	pt_check irqoff.no_tick.answered_after_spin "(ptctl info failed after the spin ended)" \
		eval 'ptctl --timeout 10000 info >/dev/null'
	pt_check irqoff.no_tick.log_says_none "(no 'management tick: NONE (disabled by --no-mgmt-tick)' in $RUN_DIR/hv.log)" \
		pt_has "$RUN_DIR/hv.log" 'management tick: NONE \(disabled by --no-mgmt-tick\)'
	pt_hv_log_checks irqoff.no_tick
fi
pt_qemu_kill

# Every CPU spinning with interrupts off.
pt_run_dir irqoff/smp
if start_spin irqoff.smp '' ' all' --smp 2; then
	pt_check irqoff.smp.all_cpus_spin "(the spin line does not say 2 CPUs)" \
		pt_has "$RUN_DIR/com1.log" '^irqoff: spinning .* on 2 CPU'
	answers=()
	for cmd in info pause "regs --vcpu 1" resume stats; do
		rc=0
		out=$(ptctl --timeout 10000 $cmd 2>&1) || rc=$?
		answers+=("$cmd:$rc")
		[ "$cmd" = stats ] && stats=$out
	done
	spun_through=1
	pt_has "$RUN_DIR/com1.log" "$done_re" && spun_through=0
	pt_check irqoff.smp.all_answered "(${answers[*]}: each wants exit 0)" \
		eval '! grep -qv ":0$" < <(printf "%s\n" "${answers[@]}")'
	pt_check irqoff.smp.answered_during_spin "(the guest printed 'irqoff: done' before the answers were checked: spin too short)" \
		test "$spun_through" -eq 1
	pt_check irqoff.smp.pause_kicked_the_ap "(no vcpu.1.kicks > 0 in: $(grep -E '^vcpu\.1\.' <<<"$stats" | tr '\n' ' '))" \
		eval 'grep -Eq "^vcpu\.1\.kicks +[1-9]" <<<"$stats"'
	pt_check irqoff.smp.guest_finished "(no 'irqoff: done' after the spin)" \
		pt_wait_for "$RUN_DIR/com1.log" "$done_re" $((secs + 60))
	pt_hv_log_checks irqoff.smp
fi
pt_finish

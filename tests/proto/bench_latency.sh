#!/usr/bin/env bash
# `make bench` step: how long the hypervisor takes to answer a
# command while its Linux guest idles (HLT) and while it runs pt-memload (busy, many
# exits of its own), in QEMU (TCG, SVM + NPT): `ptctl ping` = INFO round trips through
# the COM2 unix socket, p50 and p99 over PT_BENCH_PINGS (default 200) each. Then a
# second boot runs irqoff.efi (tests/guest/irqoff.c: CLI and a spin with no exit of its
# own for PT_BENCH_IRQOFF_SECS, default 40): only the hypervisor's HPET NMI tick gives it
# control (docs/hv.md "How the hypervisor gets control"), so this phase measures the
# tick's bound; the pings must all end before the guest's "irqoff: done". JSON lines
# on stdout (tools/bench.sh), progress on stderr. A phase that cannot be measured is
# reported on stderr and makes the step fail; no figure is invented.
source "$(dirname "$0")/../qemu/lib.sh" >/dev/null
pt_init bench_latency
pings=${PT_BENCH_PINGS:-200}
phase=20
sock=$RUN_DIR/mgmt.sock
status=0

measure() { # PHASE [END_REGEX GUEST_NOTE]: END_REGEX on COM1 after the pings voids the phase
	local j
	if ! j=$("$BUILD/ptctl" -c "unix:$sock" --timeout 5000 ping --count "$pings" --json); then
		echo "bench_latency: ping failed in phase $1" >&2
		status=1
		return
	fi
	if [ -n "${2:-}" ] && pt_has "$RUN_DIR/com1.log" "$2"; then
		echo "bench_latency: phase $1 ended (guest printed '$2') before the pings did" >&2
		status=1
		return
	fi
	python3 - "$1" "$j" "${3:-Linux guest ($1)}" <<'PY'
import json, sys
phase, d, guest = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
for q in ("p50", "p99"):
    print(json.dumps({"name": f"mgmt.latency.{phase}.{q}", "value": d[f"{q}_ms"], "unit": "ms",
                      "note": f"INFO round trip, {d['count']} pings, max {d['max_ms']} ms, "
                              f"QEMU TCG + {guest}, unix-socket chardev (no baud limit)"}))
PY
}

# no_timer_check: on a loaded host Linux's check of the IO-APIC timer IRQ (a fixed delay
# loop for a few jiffies) can fail and panic the guest before any phase, bare or not.
PT_QEMU_TIMEOUT=$((phase * 2 + 200)) pt_qemu_start --kernel-args "no_timer_check pt.workload=bench pt.phase=$phase"
if pt_wait_for "$RUN_DIR/com1.log" '^bench-phase idle' 200; then
	sleep 2
	echo "bench_latency: idle phase" >&2
	measure idle
else
	echo "bench_latency: the guest never reached its idle phase ($RUN_DIR)" >&2
	status=1
fi
if pt_wait_for "$RUN_DIR/com1.log" '^bench-phase load' $((phase + 30)); then
	sleep 2
	echo "bench_latency: load phase" >&2
	measure memload
else
	echo "bench_latency: the guest never reached its load phase ($RUN_DIR)" >&2
	status=1
fi
pt_qemu_kill

# The guest runs with interrupts disabled: only the HPET NMI tick gets the host control.
irqoff_secs=${PT_BENCH_IRQOFF_SECS:-40}
pt_run_dir bench_latency/irqoff
PT_QEMU_TIMEOUT=$((irqoff_secs + 200)) pt_qemu_start \
	--boot-cfg "\\EFI\\pagetrail\\pagetrail.efi \\EFI\\tests\\irqoff.efi $irqoff_secs"
sock=$RUN_DIR/mgmt.sock
if pt_wait_for "$RUN_DIR/com1.log" '^irqoff: spinning' 120; then
	sleep 2
	echo "bench_latency: interrupts-off phase" >&2
	measure irqoff '^irqoff: done' 'irqoff.efi (UEFI app spinning with IF=0, SVM HPET NMI tick)'
else
	echo "bench_latency: irqoff.efi never started spinning ($RUN_DIR)" >&2
	status=1
fi
pt_qemu_kill
exit $status

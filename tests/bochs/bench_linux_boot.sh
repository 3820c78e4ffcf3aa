#!/usr/bin/env bash
# `make bench` step: Linux boot time under Intel VMX (Bochs corei7_skylake_x) against the
# same boot without PageTrail. Both boots use the ESP of tests/bochs/test_linux_boot.sh
# (ptboot.efi, Debian's kernel, the test initramfs, console=ttyS0 pt.poweroff=1); the
# bare one's boot.cfg starts the kernel directly instead of through pagetrail.efi.
# PT_BENCH_BOCHS_LINUX_CPUS (default "1 2"): the CPU counts (Bochs `cpu: count=N`); with
# more than one CPU both boots start with mptable.efi (tests/bochs/mptable.c: OVMF under
# Bochs publishes no ACPI MADT) and must bring every CPU online.
# PT_BENCH_BOCHS_LINUX_RUNS (default 1) pairs of runs per count, hv then bare; medians.
# Figures (JSON lines on stdout for tools/bench.sh; progress on stderr):
#   bochs.linux_boot.ready_s      host seconds from Bochs' start (once it holds the
#                                 one-Bochs lock) to "pagetrail-init: ready" on COM1;
#                                 ref: the bare boot. Depends on the host's load.
#   bochs.linux_boot.uptime_s     the guest's /proc/uptime at /init ("ready uptime="):
#                                 emulated time from the kernel's clock start to /init,
#                                 which does not depend on the host's speed (clock
#                                 sync=none: Bochs' time follows emulated instructions,
#                                 the hypervisor's included); ref: the bare boot.
#   bochs.linux_boot.Ncpu.ready_s, bochs.linux_boot.Ncpu.uptime_s
#                                 the same with N > 1 CPUs.
# Each note says whether the guest printed "XSAVE consistency problem" in that boot.
# Fails (status 1) when a boot does not reach /init or bring every CPU online, the guest
# crashes, or the hypervisor logs a fault.
source "$(dirname "$0")/lib.sh"
# lib.sh's pt_* helpers report on stdout; here stdout carries only the figures (fd 3).
exec 3>&1 1>&2
model=corei7_skylake_x
runs=${PT_BENCH_BOCHS_LINUX_RUNS:-1}
cpu_counts=${PT_BENCH_BOCHS_LINUX_CPUS:-1 2}
limit=1800
READY='^pagetrail-init: ready uptime='
DONE='pagetrail-init: poweroff|reboot: (System halted|Power down)|pagetrail: (FATAL|PANIC)|Kernel panic'
XSAVE_WARN='XSAVE consistency problem'
pt_init bench_linux_boot
base=$RUN_DIR
pt_need "$PT_CACHE/vmlinuz" "$BUILD/images/initramfs.cpio.gz" "$BUILD/bochs/mptable.efi"

die() {
	echo "bench_linux_boot: $*"
	exit 1
}

kernel='\EFI\Linux\vmlinuz.efi initrd=\EFI\Linux\initrd.img console=ttyS0 pt.poweroff=1'

# boot KIND NCPU N: one boot (KIND hv or bare) with NCPU CPUs in $base/KIND.NCPU.N; appends
# "SECS UPTIME XSAVE" to $base/KIND.NCPU.times (XSAVE: 1 if the guest printed the XSAVE
# warning).
boot() {
	local kind=$1 ncpu=$2 n=$3 what="$1, $2 CPU(s)" line t0 i ready='' up xs=0
	RUN_DIR=$base/$kind.$ncpu.$n
	mkdir -p "$RUN_DIR"
	if [ "$kind" = hv ]; then line="\\EFI\\pagetrail\\pagetrail.efi $kernel"; else line=$kernel; fi
	if [ "$ncpu" -gt 1 ]; then line="\\EFI\\tests\\mptable.efi $line"; fi
	pt_bochs_chain_esp "$RUN_DIR/esp.img" "$line" \
		"$BUILD/bochs/mptable.efi=/EFI/tests/mptable.efi" \
		"$PT_CACHE/vmlinuz=/EFI/Linux/vmlinuz.efi" \
		"$BUILD/images/initramfs.cpio.gz=/EFI/Linux/initrd.img" || die "$what: mtools failed"
	PT_BOCHS_CPUS=$ncpu pt_bochs_start "$model" "$RUN_DIR/esp.img" "$limit" ||
		die "$what: Bochs did not start (see $RUN_DIR/bochs.err)"
	t0=$(date +%s.%N)
	for ((i = 0; i < limit * 10; i++)); do
		if [ -z "$ready" ] && pt_has "$RUN_DIR/com1.log" "$READY"; then
			ready=$(date +%s.%N)
		fi
		pt_has "$RUN_DIR/com1.log" "$DONE" && break
		kill -0 "$pt_bochs_pid" 2>/dev/null || break
		sleep 0.1
	done
	sleep 2 # the last lines (power-off) reach the files
	pt_bochs_kill
	if pt_has "$RUN_DIR/com1.log" 'Kernel panic|traps: .* trap '; then
		die "$what: guest crashed: $(pt_text "$RUN_DIR/com1.log" | grep -E -m1 'Kernel panic|traps: ')"
	fi
	if [ "$kind" = hv ]; then
		pt_has "$RUN_DIR/e9.log" "$PT_HV_RUNNING" || die "$what: no '$PT_HV_RUNNING' in $RUN_DIR/e9.log"
		pt_has "$RUN_DIR/e9.log" "$PT_HV_FAULT" &&
			die "$what: $(pt_text "$RUN_DIR/e9.log" | grep -E -m1 "$PT_HV_FAULT")"
	fi
	[ -n "$ready" ] || die "$what: Linux did not reach /init (see $RUN_DIR/com1.log)"
	if [ "$ncpu" -gt 1 ] && ! pt_has "$RUN_DIR/com1.log" "smp: Brought up 1 node, $ncpu CPUs"; then
		die "$what: Linux did not bring up $ncpu CPUs (see $RUN_DIR/com1.log)"
	fi
	up=$(pt_text "$RUN_DIR/com1.log" | sed -n 's/^pagetrail-init: ready uptime=\([0-9.]*\).*$/\1/p' | head -1)
	[ -n "$up" ] || die "$what: no uptime on the ready line in $RUN_DIR/com1.log"
	pt_has "$RUN_DIR/com1.log" "$XSAVE_WARN" && xs=1
	echo "$(awk -v a="$ready" -v b="$t0" 'BEGIN { printf "%.2f", a - b }') $up $xs" >>"$base/$kind.$ncpu.times"
	echo "bench_linux_boot: $what, run $n: $(tail -1 "$base/$kind.$ncpu.times") (host s, guest uptime s, xsave warning)"
}

for ncpu in $cpu_counts; do
	rm -f "$base/hv.$ncpu.times" "$base/bare.$ncpu.times"
	for ((r = 1; r <= runs; r++)); do
		boot hv "$ncpu" "$r"
		boot bare "$ncpu" "$r"
	done
done

for ncpu in $cpu_counts; do
	python3 - "$base" "$runs" "$ncpu" <<'PY' >&3 || exit 1
import json, statistics, sys

base, runs, ncpu = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
res = {}
for kind in ("hv", "bare"):
    rows = [ln.split() for ln in open(f"{base}/{kind}.{ncpu}.times")]
    res[kind] = dict(host=statistics.median(float(r[0]) for r in rows),
                     up=statistics.median(float(r[1]) for r in rows),
                     xsave=sum(int(r[2]) for r in rows), n=len(rows))
hv, bare = res["hv"], res["bare"]
xs = (f"guest's XSAVE consistency warning in {hv['xsave']}/{hv['n']} hv and "
      f"{bare['xsave']}/{bare['n']} bare boots (Bochs' CPUID leaf 0xD: docs/vmx.md)")
where = f"Bochs corei7_skylake_x, {ncpu} CPU(s), median of {runs} hv/bare pair(s)"
if ncpu > 1:
    where += "; both boots start with mptable.efi (an MP table: no ACPI under Bochs)"
# The 1-CPU names predate the CPU count in the name.
prefix = "bochs.linux_boot" if ncpu == 1 else f"bochs.linux_boot.{ncpu}cpu"


def fig(name, value, ref, unit, note):
    print(json.dumps({"name": name, "value": round(value, 3), "unit": unit, "ref": round(ref, 3),
                      "ref_name": "same boot without pagetrail.efi",
                      "ratio": round(value / ref, 3), "note": note}))


fig(f"{prefix}.ready_s", hv["host"], bare["host"], "s",
    f"host time, Bochs start to /init (depends on the host's load); {where}; {xs}")
fig(f"{prefix}.uptime_s", hv["up"], bare["up"], "s",
    f"guest /proc/uptime at /init: emulated time, kernel start to /init; {where}")
PY
done
exit 0

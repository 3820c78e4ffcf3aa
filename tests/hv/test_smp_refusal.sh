#!/usr/bin/env bash
# Issue 2, item 10: with two CPUs only the boot CPU is virtualized. The hypervisor must say so
# plainly on its log and refuse dirty logging (a page written by the unvirtualized CPU would be
# missing from the log), while the rest of the management port keeps working.
# QEMU TCG, -smp 2, OVMF's UEFI shell runs pagetrail.efi and stays at the prompt.
set -u
build=${BUILD:-build}
dir=$build/hv/test-smp
rm -rf "$dir" && mkdir -p "$dir/esp"
cp "$build/pagetrail.efi" "$dir/esp/"
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$dir/vars.fd"
printf 'fs0:\n\\pagetrail.efi\necho "pagetrail-rc %%lasterror%%"\n' >"$dir/esp/startup.nsh"

qemu-system-x86_64 -machine q35 -accel tcg -cpu qemu64,+svm,+npt -smp 2 -m 1G \
	-global hpet.msi=on \
	-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
	-drive if=pflash,format=raw,unit=1,file="$dir/vars.fd" \
	-drive file=fat:rw:"$dir/esp",format=raw,if=none,id=esp -device ide-hd,drive=esp,bus=ide.0 \
	-nic none -display none -no-reboot \
	-serial file:"$dir/com1.log" -chardev socket,id=mgmt,path="$dir/mgmt.sock",server=on,wait=off \
	-serial chardev:mgmt \
	-chardev file,id=dbg,path="$dir/hv.log" -device isa-debugcon,iobase=0xe9,chardev=dbg \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 </dev/null >"$dir/qemu.out" 2>&1 &
qemu=$!
trap 'kill $qemu 2>/dev/null; wait $qemu 2>/dev/null' EXIT

fail=0
ok() { echo "ok $1"; }
not_ok() { echo "not ok $1 $2"; fail=1; }
# Connect to the management port only once the firmware is a guest (see emulators.md).
for _ in $(seq 1 120); do
	grep -a -q "pagetrail-rc" "$dir/com1.log" 2>/dev/null && break
	sleep 1
done
if grep -q '^pagetrail: guest running$' "$dir/hv.log"; then ok hv.smp.guest_running; else
	not_ok hv.smp.guest_running "(no 'pagetrail: guest running' in $dir/hv.log)"; fi
if grep -q 'WARNING: 2 CPUs present, only the boot CPU is virtualized.*UNVIRTUALIZED.*dirty logging is refused' "$dir/hv.log"; then
	ok hv.smp.warning_logged
else
	not_ok hv.smp.warning_logged "(no SMP warning in $dir/hv.log)"
fi
out=$(timeout 60 "$build/ptctl" -c "unix:$dir/mgmt.sock" --timeout 10000 dirty start --all --mode wp 2>&1)
rc=$?
if [ "$rc" -eq 1 ]; then ok hv.smp.dirty_start_refused; else
	not_ok hv.smp.dirty_start_refused "(ptctl status $rc, want 1: $out)"; fi
if grep -q 'dirty logging refused: other CPUs run unvirtualized' "$dir/hv.log"; then
	ok hv.smp.refusal_logged
else
	not_ok hv.smp.refusal_logged "(no refusal line in $dir/hv.log)"
fi
stats=$(timeout 60 "$build/ptctl" -c "unix:$dir/mgmt.sock" --timeout 10000 stats 2>&1)
if echo "$stats" | grep -E -q '^hv.smp_unvirtualized +1$'; then ok hv.smp.flag_in_stats; else
	not_ok hv.smp.flag_in_stats "(hv.smp_unvirtualized not 1 in ptctl stats)"; fi
slots=$(timeout 60 "$build/ptctl" -c "unix:$dir/mgmt.sock" --timeout 10000 slots 2>&1)
if echo "$slots" | grep -q ' ram ' && ! echo "$slots" | grep -E -q ' (wp|dbit|pml) *$'; then
	ok hv.smp.nothing_logging
else
	not_ok hv.smp.nothing_logging "(a slot is logging or no slots: $slots)"
fi
exit $fail

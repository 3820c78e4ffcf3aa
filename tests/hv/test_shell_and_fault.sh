#!/usr/bin/env bash
# The return to the shell and the fault report, in one QEMU run (TCG, SVM+NPT, OVMF's
# UEFI shell, vvfat ESP):
#  - pagetrail.efi started from the shell returns EFI_SUCCESS and the shell keeps working
#    (as a guest); started a second time it sees PageTrail and does not virtualize again;
#  - then a guest program triple-faults: the hypervisor reports it on the debugcon log AND on
#    the management UART (COM2), stops the guest for good and stays up (the guest is killed,
#    not the machine: QEMU still runs, the hypervisor says it keeps serving the port); the
#    test then ends QEMU.
set -u
build=${BUILD:-build}
dir=$build/hv/test-shell-fault
rm -rf "$dir" && mkdir -p "$dir/esp"
cp "$build/pagetrail.efi" "$build/hv/triple_fault.efi" "$dir/esp/"
cp /usr/share/OVMF/OVMF_VARS_4M.fd "$dir/vars.fd"
cat >"$dir/esp/startup.nsh" <<'NSH'
fs0:
\pagetrail.efi
echo "first-rc %lasterror%"
\pagetrail.efi
echo "second-rc %lasterror%"
echo "shell-alive"
\triple_fault.efi
echo "after-triple-fault"
NSH
timeout 180 qemu-system-x86_64 -machine q35 -accel tcg -cpu qemu64,+svm,+npt -smp 1 -m 1G \
	-global hpet.msi=on \
	-drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd \
	-drive if=pflash,format=raw,unit=1,file="$dir/vars.fd" \
	-drive file=fat:rw:"$dir/esp",format=raw,if=none,id=esp -device ide-hd,drive=esp,bus=ide.0 \
	-nic none -display none -no-reboot \
	-serial file:"$dir/com1.log" -serial file:"$dir/com2.log" \
	-chardev file,id=dbg,path="$dir/hv.log" -device isa-debugcon,iobase=0xe9,chardev=dbg \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 </dev/null >"$dir/qemu.out" 2>&1 &
qemu=$!
trap 'kill $qemu 2>/dev/null' EXIT
# Until the hypervisor says the guest is stopped, or QEMU is gone (bounded by its timeout).
while kill -0 $qemu 2>/dev/null &&
	! grep -a -q 'pagetrail: guest stopped; the management port' "$dir/hv.log" 2>/dev/null; do
	sleep 0.5
done
up=0
kill -0 $qemu 2>/dev/null && up=1
kill $qemu 2>/dev/null
wait $qemu 2>/dev/null

fail=0
check() { # NAME REASON COMMAND...
	local name=$1 reason=$2
	shift 2
	if "$@"; then echo "ok $name"; else echo "not ok $name $reason"; fail=1; fi
}
has() { tr -d '\r' <"$1" | grep -a -q -E -- "$2"; }

check hv.shell.guest_running "(no 'pagetrail: guest running' in $dir/hv.log)" \
	has "$dir/hv.log" '^pagetrail: guest running$'
check hv.shell.returns_success "(no 'first-rc 0x0' on COM1)" has "$dir/com1.log" 'first-rc 0x0'
check hv.shell.second_run_not_nested "(no 'already running under PageTrail' in hv.log)" \
	has "$dir/hv.log" 'already running under PageTrail'
check hv.shell.second_run_success "(no 'second-rc 0x0' on COM1)" has "$dir/com1.log" 'second-rc 0x0'
check hv.shell.alive_as_guest "(no 'shell-alive' on COM1)" has "$dir/com1.log" '^shell-alive'
check hv.fault.logged "(no FATAL triple-fault line in hv.log)" \
	has "$dir/hv.log" '^pagetrail: FATAL: guest shutdown \(triple fault\)'
check hv.fault.on_mgmt_port "(no FATAL line on COM2)" \
	has "$dir/com2.log" 'pagetrail: FATAL: guest shutdown \(triple fault\)'
check hv.fault.guest_stopped_hypervisor_up "(no 'guest stopped; the management port keeps answering' in hv.log)" \
	has "$dir/hv.log" '^pagetrail: guest stopped; the management port keeps answering'
check hv.fault.machine_not_stopped "(QEMU had exited before the test ended it)" test "$up" -eq 1
check hv.fault.guest_did_not_continue "(the shell ran past the triple fault)" \
	bash -c "! grep -a -q after-triple-fault '$dir/com1.log'"
exit $fail

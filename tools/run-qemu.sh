#!/usr/bin/env bash
# Boots PageTrail in QEMU (TCG, q35, AMD SVM + NPT, 1 GiB, one CPU unless --smp) with OVMF: OVMF runs
# build/images/esp.img's BOOTX64.EFI (ptboot.efi), which starts the command line in
# \pagetrail\boot.cfg: by default pagetrail.efi chaining to Debian's kernel + the test
# initramfs. `make run` builds everything first and calls this with no option.
#
#   COM1 (0x3F8)       the firmware's and Linux's console: this terminal (Ctrl-A x quits),
#                      or a file with --no-term; always also logged to RUN_DIR/com1.log
#   debugcon (0xE9)    the hypervisor's log: RUN_DIR/hv.log
#   COM2 (0x2F8)       the hypervisor's management port: unix socket RUN_DIR/mgmt.sock
#                      (server, nowait; e.g. `socat - UNIX-CONNECT:build/run/mgmt.sock`)
#   QMP                unix socket RUN_DIR/qmp.sock (stop/cont/pmemsave for tests)
#   isa-debug-exit     port 0xF4: writing V exits QEMU with status (V << 1) | 1
#
# Options (for tests and for trying things):
#   --no-term            COM1 to RUN_DIR/com1.log, stdin unused (tests)
#   --com1-socket        COM1 to the unix socket RUN_DIR/com1.sock (server, nowait) and
#                        RUN_DIR/com1.log, for tests that type into the Linux shell
#   --run-dir DIR        where logs, sockets and the ESP/VARS copies go (default build/run)
#   --timeout SECS       kill QEMU after SECS seconds (exit status 124)
#   --kernel-args ARGS   append ARGS to the Linux command line of the default boot
#   --no-hv              boot Linux without the hypervisor (same ESP, same kernel line)
#   --probe              run the guest-view probe under the hypervisor instead of Linux
#   --boot-cfg LINE      the whole boot.cfg command line (paths on the ESP)
#   --shell FILE         no BOOTX64.EFI: OVMF falls back to its UEFI shell, which runs FILE
#                        as \startup.nsh (after its 5 s countdown)
#   --smp N              N CPUs (default 1); with more than one, multi-threaded TCG
#                        (-accel tcg,thread=multi), so the vCPUs really run at once, and
#                        Linux gets tsc=reliable (see below)
#   --hv-efi FILE        this hypervisor image in place of the ESP's pagetrail.efi (tests:
#                        build/pagetrail-noshootdown.efi, a negative control)
#   --qemu-arg ARG       one more QEMU argument (repeatable)
# Environment: BUILD (default build), QEMU (default qemu-system-x86_64),
#   OVMF_CODE / OVMF_VARS (default Debian's 4M builds).
set -euo pipefail

build=${BUILD:-build}
run_dir=$build/run
term=1
timeout_s=
kernel_args=
mode=linux
boot_cfg=
shell_nsh=
smp=1
hv_efi=
extra=()

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--no-term) term=0 ;;
	--com1-socket) term=2 ;;
	--run-dir) run_dir=$2; shift ;;
	--timeout) timeout_s=$2; shift ;;
	--kernel-args) kernel_args="$kernel_args $2"; shift ;;
	--no-hv) mode=linux-nohv ;;
	--probe) mode=probe ;;
	--boot-cfg) boot_cfg=$2; shift ;;
	--shell) shell_nsh=$2; shift ;;
	--qemu-arg) extra+=("$2"); shift ;;
	--smp) smp=$2; shift ;;
	--hv-efi) hv_efi=$2; shift ;;
	-h | --help) usage ;;
	*) echo "run-qemu: unknown option $1" >&2; usage ;;
	esac
	shift
done

qemu=${QEMU:-qemu-system-x86_64}
ovmf_code=${OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
ovmf_vars=${OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}
esp_src=$build/images/esp.img

for f in "$esp_src" "$ovmf_code" "$ovmf_vars"; do
	if [ ! -s "$f" ]; then
		echo "run-qemu: $f is missing (make run builds the images; tools/install-deps.sh installs OVMF)" >&2
		exit 1
	fi
done

# The default line of boot.cfg, as written by tests/images/images.mk.
default_line=$(mtype -i "$esp_src" ::/pagetrail/boot.cfg | tr -d '\r' | grep -v '^#' | grep -m1 .)
hv_path='\EFI\pagetrail\pagetrail.efi'
if [ -z "$boot_cfg" ]; then
	case "$mode" in
	linux) boot_cfg="$default_line$kernel_args" ;;
	linux-nohv)
		if [[ $default_line != "$hv_path "* ]]; then
			echo "run-qemu: boot.cfg does not start with $hv_path: cannot drop it" >&2
			exit 1
		fi
		boot_cfg="${default_line#"$hv_path "}$kernel_args"
		;;
	probe) boot_cfg="$hv_path \\EFI\\tests\\probe.efi" ;;
	esac
fi
# With more than one CPU, multi-threaded TCG runs the vCPUs on host threads that the host
# schedules as it likes, and Linux's boot-time check of the CPUs' TSCs then often finds
# them "unsynchronized" (they are one host clock) and drops the TSC for the HPET. Under
# PageTrail every read of the guest's HPET is an exit (its page is emulated: docs/hv.md
# "The guest's HPET"), and a guest that reads its clock that way crawls (a boot took
# minutes). A real server's invariant TSC passes that check; say so to Linux here too.
if [ "$smp" -gt 1 ] && [[ $boot_cfg == *vmlinuz* ]] && [[ $boot_cfg != *tsc=* ]]; then
	boot_cfg="$boot_cfg tsc=reliable"
fi

mkdir -p "$run_dir"
rm -f "$run_dir"/{mgmt.sock,qmp.sock,com1.sock,hv.log,com1.log}
# Private copies: the firmware writes its variables, and the guest could write the ESP.
cp "$ovmf_vars" "$run_dir/OVMF_VARS.fd"
cp --sparse=always "$esp_src" "$run_dir/esp.img"
printf '%s\r\n' "$boot_cfg" >"$run_dir/boot.cfg"
MTOOLS_SKIP_CHECK=1 mcopy -o -i "$run_dir/esp.img" "$run_dir/boot.cfg" ::/pagetrail/boot.cfg
[ -z "$hv_efi" ] || MTOOLS_SKIP_CHECK=1 mcopy -o -i "$run_dir/esp.img" "$hv_efi" ::/EFI/pagetrail/pagetrail.efi
if [ -n "$shell_nsh" ]; then
	boot_cfg="(UEFI shell) $shell_nsh"
	MTOOLS_SKIP_CHECK=1 mdel -i "$run_dir/esp.img" ::/EFI/BOOT/BOOTX64.EFI
	MTOOLS_SKIP_CHECK=1 mcopy -o -i "$run_dir/esp.img" "$shell_nsh" ::/startup.nsh
fi

if [ $term -eq 1 ]; then
	com1=(-chardev "stdio,id=com1,mux=on,signal=off,logfile=$run_dir/com1.log"
		-serial chardev:com1 -mon chardev=com1,mode=readline)
elif [ $term -eq 2 ]; then
	com1=(-chardev "socket,id=com1,path=$run_dir/com1.sock,server=on,wait=off,logfile=$run_dir/com1.log"
		-serial chardev:com1)
else
	com1=(-chardev "file,id=com1,path=$run_dir/com1.log" -serial chardev:com1)
fi

accel=tcg
[ "$smp" -gt 1 ] && accel=tcg,thread=multi
cmd=("$qemu" -machine q35 -accel "$accel" -cpu qemu64,+svm,+npt -smp "$smp" -m 1G
	-global hpet.msi=on
	-drive "if=pflash,format=raw,unit=0,readonly=on,file=$ovmf_code"
	-drive "if=pflash,format=raw,unit=1,file=$run_dir/OVMF_VARS.fd"
	-drive "if=none,id=esp,format=raw,file=$run_dir/esp.img" -device ide-hd,drive=esp,bus=ide.0
	-nic none -display none -no-reboot
	"${com1[@]}"
	-chardev "socket,id=mgmt,path=$run_dir/mgmt.sock,server=on,wait=off" -serial chardev:mgmt
	-chardev "file,id=dbg,path=$run_dir/hv.log" -device isa-debugcon,iobase=0xe9,chardev=dbg
	-qmp "unix:$run_dir/qmp.sock,server=on,wait=off"
	-device isa-debug-exit,iobase=0xf4,iosize=0x04
	"${extra[@]}")

{
	echo "run-qemu: boot.cfg:           $boot_cfg"
	echo "run-qemu: hypervisor log:     $run_dir/hv.log (debugcon 0xE9)"
	echo "run-qemu: management (COM2):  $run_dir/mgmt.sock (unix socket)"
	echo "run-qemu: QMP:                $run_dir/qmp.sock"
	if [ $term -eq 1 ]; then
		echo "run-qemu: COM1 on this terminal (also $run_dir/com1.log); Ctrl-A x quits QEMU"
	elif [ $term -eq 2 ]; then
		echo "run-qemu: COM1:               $run_dir/com1.sock (unix socket), log $run_dir/com1.log"
	else
		echo "run-qemu: COM1:               $run_dir/com1.log"
	fi
} >&2

if [ -n "$timeout_s" ]; then
	if [ $term -eq 1 ]; then
		exec timeout --foreground -k 5 "$timeout_s" "${cmd[@]}"
	fi
	exec timeout -k 5 "$timeout_s" "${cmd[@]}"
fi
exec "${cmd[@]}"

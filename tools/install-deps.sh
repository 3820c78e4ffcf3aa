#!/usr/bin/env bash
# Installs the Debian 12 packages that PageTrail's build, `make run` and `make test`
# need, and only those that are missing. Downloaded guest inputs (Debian's kernel and
# busybox) are fetched separately, by tests/images/fetch.sh, into $PT_CACHE.
set -euo pipefail

missing=()
# need PACKAGE PATH_OR_COMMAND...: the package is missing if any of them is.
need() {
	local pkg=$1
	shift
	for f in "$@"; do
		if [[ $f == /* ]]; then
			[ -e "$f" ] && continue
		else
			command -v "$f" >/dev/null 2>&1 && continue
		fi
		missing+=("$pkg")
		return
	done
}

need gcc gcc
# static libc for the guest programs of the test initramfs (tests/guest/)
need libc6-dev /usr/lib/x86_64-linux-gnu/libc.a
need make make
# zlib: ptctl inflates the hypervisor's DEFLATE replies (tools/ptctl/inflate.c)
need zlib1g-dev /usr/include/zlib.h
need binutils ld objcopy
need clang clang
need libclang-rt-14-dev /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a
need nasm nasm
need gnu-efi /usr/lib/crt0-efi-x86_64.o /usr/include/efi/efi.h
need mtools mcopy mformat mmd
need dosfstools mkfs.fat
need qemu-system-x86 qemu-system-x86_64
need ovmf /usr/share/OVMF/OVMF_CODE_4M.fd /usr/share/OVMF/OVMF_VARS_4M.fd /usr/share/OVMF/OVMF_CODE.fd
need bochs bochs
need bochsbios /usr/share/bochs/BIOS-bochs-latest
need seabios /usr/share/seabios/vgabios-stdvga.bin
need cpio cpio
need xz-utils xz
need socat socat
need python3 python3
need coreutils timeout
# ptctl precopy|wws --plot draws with gnuplot (SVG, PNG)
need gnuplot-nox gnuplot

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: not root; run as root, or: apt-get install ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"

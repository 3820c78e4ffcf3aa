#!/usr/bin/env bash
# Fetches the guest's inputs from Debian's archive into $PT_CACHE (default
# ~/.cache/pagetrail), outside git and outside build/:
#   $PT_CACHE/vmlinuz   Debian 12's kernel (linux-image-amd64 -> linux-image-6.1.*-amd64),
#                       an EFI-stub bzImage with the 8250 console, devtmpfs and initrd built in
#   $PT_CACHE/busybox   busybox-static's binary
#   $PT_CACHE/versions  which packages they came from
# Uses `apt-get download` + `dpkg -x`: nothing is installed, root is needed only for
# `apt-get update` when the package lists are missing. Quick and quiet when cached;
# --refresh fetches again (e.g. after a kernel update in the archive).
set -euo pipefail

cache=${PT_CACHE:-$HOME/.cache/pagetrail}
refresh=0
[ "${1:-}" = --refresh ] && refresh=1

if [ $refresh -eq 0 ] && [ -s "$cache/vmlinuz" ] && [ -s "$cache/busybox" ] && [ -s "$cache/versions" ]; then
	exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

# candidate_of PKG: the version apt would install, empty when apt does not know PKG.
candidate_of() {
	apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { if ($2 != "(none)") print $2 }'
}

if [ -z "$(candidate_of linux-image-amd64)" ] || [ -z "$(candidate_of busybox-static)" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "fetch: apt does not know linux-image-amd64/busybox-static; run 'apt-get update' as root" >&2
		exit 1
	fi
	echo "fetch: apt-get update" >&2
	apt-get update -qq
fi

# linux-image-amd64 is a metapackage: its candidate depends on exactly one versioned image
# package (e.g. linux-image-6.1.0-56-amd64), which holds the kernel.
kpkg=$(apt-cache show "linux-image-amd64=$(candidate_of linux-image-amd64)" |
	sed -n 's/^Depends: .*\(linux-image-[0-9][^ ,]*-amd64\).*/\1/p' | head -n1)
if [ -z "$kpkg" ]; then
	echo "fetch: cannot find the image package that linux-image-amd64 depends on" >&2
	exit 1
fi
kver=$(candidate_of "$kpkg")

# download: apt-get download writes into the current directory; as root it warns that the
# download is unsandboxed (the _apt user cannot write there), which is harmless.
download() {
	echo "fetch: apt-get download $kpkg busybox-static into $cache" >&2
	(cd "$work" && apt-get download -qq "$kpkg" busybox-static 2>&1 | grep -v -i 'unsandboxed' >&2 || true)
	kdeb=$(ls "$work"/"$kpkg"_*.deb 2>/dev/null | head -n1)
	bdeb=$(ls "$work"/busybox-static_*.deb 2>/dev/null | head -n1)
	[ -n "$kdeb" ] && [ -n "$bdeb" ]
}
if ! download; then
	# Stale package lists name versions the archive no longer has: refresh once.
	if [ "$(id -u)" -ne 0 ]; then
		echo "fetch: apt-get download failed; try 'apt-get update' as root" >&2
		exit 1
	fi
	echo "fetch: apt-get download failed; apt-get update and retry" >&2
	apt-get update -qq
	kpkg=$(apt-cache show "linux-image-amd64=$(candidate_of linux-image-amd64)" |
		sed -n 's/^Depends: .*\(linux-image-[0-9][^ ,]*-amd64\).*/\1/p' | head -n1)
	kver=$(candidate_of "$kpkg")
	if ! download; then
		echo "fetch: apt-get download failed" >&2
		exit 1
	fi
fi

dpkg -x "$kdeb" "$work/kernel"
dpkg -x "$bdeb" "$work/busybox"
kimg=$(ls "$work"/kernel/boot/vmlinuz-* | head -n1)
[ -s "$kimg" ] || { echo "fetch: no vmlinuz in $kdeb" >&2; exit 1; }
[ -x "$work/busybox/bin/busybox" ] || { echo "fetch: no bin/busybox in $bdeb" >&2; exit 1; }

# Install atomically: a half-fetched cache must never look complete.
cp "$kimg" "$cache/vmlinuz.new"
cp "$work/busybox/bin/busybox" "$cache/busybox.new"
mv "$cache/vmlinuz.new" "$cache/vmlinuz"
mv "$cache/busybox.new" "$cache/busybox"
printf '%s %s %s\nbusybox-static %s\n' "$kpkg" "$kver" "$(basename "$kimg")" \
	"$(dpkg-deb -f "$bdeb" Version)" >"$cache/versions"
echo "fetch: $(tr '\n' ';' <"$cache/versions")" >&2

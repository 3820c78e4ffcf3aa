# Shared by the Bochs test scripts (sourced, not run): Bochs 2.7 + OVMF, Intel VMX.
#
#   pt_init NAME                    RUN_DIR=build/bochs/NAME; cleanup on exit
#   pt_bochs_esp IMG SRC=DST...     a FAT ESP made with mtools (DST like \EFI\BOOT\BOOTX64.EFI)
#   pt_bochs_chain_esp IMG LINE [SRC=DST...]
#                                   ESP whose BOOTX64.EFI is ptboot.efi starting LINE, with
#                                   pagetrail.efi, probe.efi, hello.efi, vmx_probe.efi (\EFI\tests\)
#   pt_bochs_run MODEL IMG SECS [DONE_RE]
#                                   boots Bochs (CPU model MODEL) on IMG, bounded by SECS;
#                                   stops it early once COM1 or the 0xE9 log matches DONE_RE.
#                                   Sets pt_bochs_status (124: timed out) and leaves
#                                   $RUN_DIR/com1.log, $RUN_DIR/e9.log, $RUN_DIR/bochs.log.
#
# Bochs is slow (~8.5 s to the first EFI line) and the machine small: one Bochs at a time,
# enforced with flock on $PT_BOCHS_LOCK. Configuration: tests/bochs/bochsrc.in; the tests
# and the harness: docs/vmx.md. Results are TAP-ish lines on stdout (tests/run.sh).

PT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$PT_ROOT" || exit 1
BUILD=${BUILD:-build}
export BUILD
PT_FAILED=0
PT_CACHE=${PT_CACHE:-$HOME/.cache/pagetrail}
PT_BOCHS_LOCK=${PT_BOCHS_LOCK:-/tmp/pagetrail-bochs.lock}
PT_BOCHS_MEM_MB=${PT_BOCHS_MEM_MB:-512}
# How long to wait for the one-Bochs-at-a-time lock before giving up.
PT_BOCHS_LOCK_WAIT=${PT_BOCHS_LOCK_WAIT:-1800}
pt_bochs_pid=

# Lines the hypervisor prints on port 0xE9 when it runs the guest, and when it fails.
PT_HV_RUNNING='pagetrail: guest running'
PT_HV_FAULT='pagetrail: (FATAL|PANIC)'

# The 2 MiB OVMF build as one ROM image: VARS then CODE (emulators.md).
PT_OVMF_VARS=${PT_OVMF_VARS:-/usr/share/OVMF/OVMF_VARS.fd}
PT_OVMF_CODE=${PT_OVMF_CODE:-/usr/share/OVMF/OVMF_CODE.fd}

pt_init() {
	PT_TEST=$1
	RUN_DIR=$BUILD/bochs/run/$PT_TEST
	mkdir -p "$RUN_DIR"
	trap pt_cleanup EXIT
}

pt_cleanup() {
	pt_bochs_kill
	pt_relay_stop
}

# pt_relay_start: tests/bochs/relay.py between Bochs' COM2 and ptctl; sets PT_BOCHS_COM2*
# for the next pt_bochs_start and PT_PTCTL (the ptctl command line, with its connection).
pt_relay_start() {
	local line i
	rm -f "$RUN_DIR/relay.out"
	python3 tests/bochs/relay.py 0 0 >"$RUN_DIR/relay.out" 2>&1 &
	pt_relay_pid=$!
	for ((i = 0; i < 50; i++)); do
		line=$(grep -m1 '^relay: listening' "$RUN_DIR/relay.out" 2>/dev/null) && break
		sleep 0.1
	done
	set -- $line
	[ -n "${4:-}" ] || return 1
	PT_BOCHS_COM2_MODE=socket-client
	PT_BOCHS_COM2=127.0.0.1:$3
	PT_PTCTL="$BUILD/ptctl -c tcp:127.0.0.1:$4 --timeout 30000"
}

pt_relay_stop() {
	if [ -n "${pt_relay_pid:-}" ]; then
		kill "$pt_relay_pid" 2>/dev/null
		wait "$pt_relay_pid" 2>/dev/null
		pt_relay_pid=
	fi
}

# pt_wait_for FILE REGEX SECS: waits until FILE has a line matching REGEX; fails after
# SECS seconds or as soon as Bochs is gone.
pt_wait_for() {
	local file=$1 re=$2 secs=$3 i
	for ((i = 0; i < secs * 5; i++)); do
		pt_has "$file" "$re" && return 0
		if [ -n "$pt_bochs_pid" ] && ! kill -0 "$pt_bochs_pid" 2>/dev/null; then
			pt_has "$file" "$re"
			return
		fi
		sleep 0.2
	done
	return 1
}

pt_ok() { echo "ok $*"; }
pt_not_ok() {
	echo "not ok $*"
	PT_FAILED=$((PT_FAILED + 1))
}
# pt_check NAME REASON COMMAND...: ok NAME if COMMAND succeeds, else not ok NAME REASON.
pt_check() {
	local name=$1 reason=$2
	shift 2
	if "$@"; then pt_ok "$name"; else pt_not_ok "$name $reason"; fi
}
pt_finish() { [ "$PT_FAILED" -eq 0 ]; }

# pt_text FILE: FILE without the firmware's terminal escapes and carriage returns.
pt_text() {
	sed -e 's/\x1b\[[0-9;=?]*[A-Za-z]//g' -e 's/\r//g' "$1" 2>/dev/null
}
# pt_has FILE REGEX: FILE (as text) has a line matching the extended REGEX.
pt_has() { pt_text "$1" | grep -Eq -- "$2"; }

pt_need() {
	local f
	for f in "$@"; do
		if [ ! -e "$f" ]; then
			pt_not_ok "setup missing $f (run: make bochs-deps)"
			exit 1
		fi
	done
}

pt_bochs_ovmf() {
	PT_OVMF=$BUILD/bochs/OVMF-2M.fd
	if [ ! -s "$PT_OVMF" ] || [ "$PT_OVMF" -ot "$PT_OVMF_CODE" ]; then
		mkdir -p "$(dirname "$PT_OVMF")"
		cat "$PT_OVMF_VARS" "$PT_OVMF_CODE" >"$PT_OVMF.tmp" && mv "$PT_OVMF.tmp" "$PT_OVMF"
	fi
}

# Bochs wants a flat disk of whole cylinders (16 heads, 63 sectors): 24 MiB-ish, FAT16.
PT_ESP_CYL=48
pt_bochs_esp() {
	local img=$1 pair src dst dir
	shift
	rm -f "$img.tmp"
	truncate -s $((PT_ESP_CYL * 16 * 63 * 512)) "$img.tmp"
	export MTOOLS_SKIP_CHECK=1
	mformat -i "$img.tmp" -v PTBOCHS :: || return 1
	for pair in "$@"; do
		src=${pair%%=*}
		dst=${pair#*=}
		dst=${dst//\\//}
		dir=$(dirname "$dst")
		# mmd -D s: an existing directory is fine.
		local p="" part
		IFS=/ read -ra parts <<<"${dir#/}"
		for part in "${parts[@]}"; do
			[ -n "$part" ] || continue
			p="$p/$part"
			mmd -D s -i "$img.tmp" "::$p" 2>/dev/null || true
		done
		mcopy -o -i "$img.tmp" "$src" "::$dst" || return 1
	done
	mv "$img.tmp" "$img"
}

# pt_bochs_chain_esp IMG 'LINE': ptboot.efi (tests/images/ptboot.c) runs LINE from
# \pagetrail\boot.cfg, exactly as on the QEMU images.
pt_bochs_chain_esp() {
	local img=$1 line=$2 cfg
	shift 2
	cfg=$(dirname "$img")/boot.cfg
	printf '# ptboot.efi starts the first command line below\r\n%s\r\n' "$line" >"$cfg"
	pt_need "$BUILD/images/ptboot.efi" "$BUILD/pagetrail.efi" "$BUILD/guest/probe.efi" \
		"$BUILD/bochs/hello.efi" "$BUILD/bochs/vmx_probe.efi" "$BUILD/bochs/dirty_writer.efi"
	pt_bochs_esp "$img" \
		"$BUILD/images/ptboot.efi=/EFI/BOOT/BOOTX64.EFI" \
		"$cfg=/pagetrail/boot.cfg" \
		"$BUILD/pagetrail.efi=/EFI/pagetrail/pagetrail.efi" \
		"$BUILD/guest/probe.efi=/EFI/tests/probe.efi" \
		"$BUILD/bochs/hello.efi=/EFI/tests/hello.efi" \
		"$BUILD/bochs/vmx_probe.efi=/EFI/tests/vmx_probe.efi" \
		"$BUILD/bochs/dirty_writer.efi=/EFI/tests/dirty_writer.efi" "$@"
}

# pt_bochs_config MODEL IMG > bochsrc
pt_bochs_config() {
	local model=$1 img=$2 com2_mode=${PT_BOCHS_COM2_MODE:-file}
	local com2=${PT_BOCHS_COM2:-$RUN_DIR/com2.out}
	sed -e "s|@MEM_MB@|$PT_BOCHS_MEM_MB|g" -e "s|@CPU_MODEL@|$model|g" -e "s|@CPUS@|${PT_BOCHS_CPUS:-1}|g" \
		-e "s|@OVMF@|$PT_OVMF|g" -e "s|@ESP@|$img|g" -e "s|@CYL@|$PT_ESP_CYL|g" \
		-e "s|@COM1@|$RUN_DIR/com1.log|g" -e "s|@COM2_MODE@|$com2_mode|g" \
		-e "s|@COM2@|$com2|g" -e "s|@BOCHS_LOG@|$RUN_DIR/bochs.log|g" \
		tests/bochs/bochsrc.in
}

# pt_bochs_start MODEL IMG SECS: starts Bochs in the background (pt_bochs_pid), bounded by
# SECS, and returns once it holds the lock and runs; pt_bochs_kill stops it.
pt_bochs_start() {
	local model=$1 img=$2 secs=$3 i
	pt_bochs_ovmf
	# A Bochs that was killed leaves its image lock behind; the next one would refuse.
	rm -f "$RUN_DIR/com1.log" "$RUN_DIR/e9.log" "$RUN_DIR/bochs.log" "$img.lock"
	pt_bochs_config "$model" "$img" >"$RUN_DIR/bochsrc"
	# The debugger-enabled build stops at its prompt unless told to continue.
	echo continue >"$RUN_DIR/bochs.rc"
	touch "$RUN_DIR/com1.log"
	rm -f "$RUN_DIR/bochs.started"
	# Port 0xE9 output goes to Bochs' stdout; its own messages to the log file.
	(
		exec 9>"$PT_BOCHS_LOCK"
		flock 9
		: >"$RUN_DIR/bochs.started"
		exec timeout --kill-after=5 "$secs" bochs -q -f "$RUN_DIR/bochsrc" \
			-rc "$RUN_DIR/bochs.rc" </dev/null >"$RUN_DIR/e9.log" 2>"$RUN_DIR/bochs.err"
	) &
	pt_bochs_pid=$!
	# Another Bochs (another test, another checkout) may hold the lock: every bound the
	# caller sets counts from the moment this one really starts.
	for ((i = 0; i < PT_BOCHS_LOCK_WAIT * 5; i++)); do
		[ -e "$RUN_DIR/bochs.started" ] && return 0
		kill -0 "$pt_bochs_pid" 2>/dev/null || return 1
		sleep 0.2
	done
	echo "pt_bochs_start: waited ${PT_BOCHS_LOCK_WAIT}s for $PT_BOCHS_LOCK" >&2
	return 1
}

# pt_bochs_dirty_writer MODEL SECS: pagetrail.efi, then dirty_writer.efi (tests/bochs/
# dirty_writer.c) in the virtualized firmware, in Bochs (bounded by SECS) with the
# management relay up; returns once the writer printed its last address line, with
# dw_buf, dw_stats, dw_scratch and dw_scratch_pages read from it. Status 1 with the
# reason on stdout otherwise.
pt_bochs_dirty_writer() {
	local model=$1 secs=$2 com1=$RUN_DIR/com1.log
	pt_bochs_chain_esp "$RUN_DIR/esp.img" \
		'\EFI\pagetrail\pagetrail.efi \EFI\tests\dirty_writer.efi' || {
		echo "mtools failed"
		return 1
	}
	pt_relay_start || {
		echo "relay did not start ($(cat "$RUN_DIR/relay.out"))"
		return 1
	}
	pt_bochs_start "$model" "$RUN_DIR/esp.img" "$secs" || {
		echo "Bochs did not start (see $RUN_DIR/bochs.err)"
		return 1
	}
	# The buffer's line is the last of the four the writer prints.
	pt_wait_for "$com1" '^dirty_writer: buf 0x[0-9A-Fa-f]+ pages [0-9]+' 400 || {
		echo "no 'dirty_writer: buf' line in $com1"
		return 1
	}
	dw_stats=$(pt_text "$com1" | sed -n 's/^dirty_writer: stats \(0x[0-9A-Fa-f]*\)$/\1/p')
	dw_buf=$(pt_text "$com1" | sed -n 's/^dirty_writer: buf \(0x[0-9A-Fa-f]*\) pages.*$/\1/p')
	read -r dw_scratch dw_scratch_pages < <(pt_text "$com1" |
		sed -n 's/^dirty_writer: scratch \(0x[0-9A-Fa-f]*\) pages \([0-9]*\)$/\1 \2/p')
	[ -n "$dw_stats" ] || {
		echo "no 'dirty_writer: stats' line in $com1 (old dirty_writer.efi?)"
		return 1
	}
	[ -n "$dw_scratch" ] || {
		echo "no 'dirty_writer: scratch' line in $com1"
		return 1
	}
}

# pt_bochs_run MODEL IMG SECS [DONE_RE]
pt_bochs_run() {
	local model=$1 img=$2 secs=$3 done_re=${4:-} i
	if ! pt_bochs_start "$model" "$img" "$secs"; then
		pt_bochs_kill
		pt_bochs_status=125
		return
	fi
	if [ -n "$done_re" ]; then
		for ((i = 0; i < secs * 5; i++)); do
			kill -0 "$pt_bochs_pid" 2>/dev/null || break
			if pt_has "$RUN_DIR/com1.log" "$done_re" || pt_has "$RUN_DIR/e9.log" "$done_re"; then
				# Let the last lines (power-off) reach the files.
				sleep 2
				break
			fi
			sleep 0.2
		done
		pt_bochs_kill
		return
	fi
	pt_bochs_status=0
	wait "$pt_bochs_pid" || pt_bochs_status=$?
	pt_bochs_pid=
}

pt_bochs_kill() {
	if [ -z "$pt_bochs_pid" ]; then
		return
	fi
	if kill -0 "$pt_bochs_pid" 2>/dev/null; then
		# The subshell exec'd timeout: TERM reaches Bochs through it.
		kill "$pt_bochs_pid" 2>/dev/null
		wait "$pt_bochs_pid" 2>/dev/null
		pt_bochs_status=143
	else
		pt_bochs_status=0
		wait "$pt_bochs_pid" 2>/dev/null || pt_bochs_status=$?
	fi
	pt_bochs_pid=
}

# pt_hv_log_checks PREFIX: the 0xE9 log shows the hypervisor running and no fault line.
pt_hv_log_checks() {
	local e9=$RUN_DIR/e9.log
	pt_check "$1.hv_guest_running" "(no '$PT_HV_RUNNING' in $e9)" pt_has "$e9" "$PT_HV_RUNNING"
	if pt_has "$e9" "$PT_HV_FAULT"; then
		pt_not_ok "$1.hv_no_fault $(pt_text "$e9" | grep -E -m1 "$PT_HV_FAULT")"
	else
		pt_ok "$1.hv_no_fault"
	fi
}

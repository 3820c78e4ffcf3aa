# Shared by the QEMU test scripts (sourced, not run). A script calls pt_init NAME first;
# QEMU then runs through tools/run-qemu.sh with its logs and sockets in RUN_DIR
# (build/test-run/NAME), is bounded by a timeout and is killed when the script exits.
# Results are TAP-ish lines on stdout: "ok NAME" / "not ok NAME reason" (tests/run.sh).

PT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$PT_ROOT" || exit 1
BUILD=${BUILD:-build}
export BUILD
# No __pycache__ next to the test scripts (tests/qemu/ptqemu.py is imported).
export PYTHONDONTWRITEBYTECODE=1
PT_FAILED=0
pt_qemu_pid=

# Lines the hypervisor prints on debugcon when it runs the guest, and when it fails.
PT_HV_RUNNING='pagetrail: guest running'
PT_HV_FAULT='pagetrail: (FATAL|PANIC)'

pt_init() {
	PT_TEST=$1
	RUN_DIR=$BUILD/test-run/$PT_TEST
	mkdir -p "$RUN_DIR"
	trap pt_cleanup EXIT
}

# pt_run_dir NAME: later QEMU runs of this script use build/test-run/NAME (one directory
# per run keeps each run's logs for a look after the test).
pt_run_dir() {
	RUN_DIR=$BUILD/test-run/$1
	mkdir -p "$RUN_DIR"
}

pt_cleanup() {
	pt_qemu_kill
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

# pt_qemu_start [run-qemu.sh options...]: starts QEMU in the background, COM1 to a file.
pt_qemu_start() {
	rm -f "$RUN_DIR/com1.log" "$RUN_DIR/hv.log"
	tools/run-qemu.sh --no-term --run-dir "$RUN_DIR" --timeout "${PT_QEMU_TIMEOUT:-240}" "$@" \
		2>"$RUN_DIR/run-qemu.err" &
	pt_qemu_pid=$!
	pt_qemu_started=$(date +%s.%N)
}

# pt_qemu_wait: waits for QEMU to exit; sets pt_qemu_status (124: the timeout killed it).
pt_qemu_wait() {
	pt_qemu_status=0
	wait "$pt_qemu_pid" || pt_qemu_status=$?
	pt_qemu_pid=
}

pt_qemu_kill() {
	if [ -n "$pt_qemu_pid" ]; then
		kill "$pt_qemu_pid" 2>/dev/null
		wait "$pt_qemu_pid" 2>/dev/null
		pt_qemu_pid=
	fi
}

# pt_text FILE: FILE without the firmware's terminal escapes and carriage returns.
pt_text() {
	sed -e 's/\x1b\[[0-9;=?]*[A-Za-z]//g' -e 's/\r//g' "$1" 2>/dev/null
}

# pt_wait_for FILE REGEX SECS: waits until FILE holds a line matching REGEX (extended);
# fails after SECS seconds or as soon as QEMU is gone.
pt_wait_for() {
	local file=$1 re=$2 secs=$3 i
	for ((i = 0; i < secs * 5; i++)); do
		pt_text "$file" | grep -Eq -- "$re" && return 0
		if [ -n "$pt_qemu_pid" ] && ! kill -0 "$pt_qemu_pid" 2>/dev/null; then
			pt_text "$file" | grep -Eq -- "$re"
			return
		fi
		sleep 0.2
	done
	return 1
}

# pt_has FILE REGEX: FILE (cleaned) has a line matching REGEX.
pt_has() { pt_text "$1" | grep -Eq -- "$2"; }

# pt_hv_log_checks PREFIX: the hypervisor said it virtualized and reported no fault.
pt_hv_log_checks() {
	local prefix=$1 hvlog=$RUN_DIR/hv.log
	pt_check "$prefix.hv_virtualizing" "(no '$PT_HV_RUNNING' in $hvlog)" pt_has "$hvlog" "$PT_HV_RUNNING"
	if pt_has "$hvlog" "$PT_HV_FAULT"; then
		pt_not_ok "$prefix.hv_no_fault $(pt_text "$hvlog" | grep -E -m1 -- "$PT_HV_FAULT")"
	else
		pt_ok "$prefix.hv_no_fault"
	fi
}

pt_finish() {
	pt_qemu_kill
	[ "$PT_FAILED" -eq 0 ]
}

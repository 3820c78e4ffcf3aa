# The harness of the end-to-end scripts that run ptctl (built with ASan+UBSan) against
# ptsim (tests/proto/ptsim.c: hv/'s management side, exit dispatch and fault path over
# the real mmu/ on the hardware model, behind a unix socket and an emulated 16550),
# sourced by tests/proto/e2e.sh,
# tests/research/e2e_research.sh and tests/snapshot/e2e_snapshot.sh.
#
#   ptsim_init PREFIX   B, SIM, PT; dir, a fresh temporary directory removed at exit
#                       with every process in pids (ptsims, fake peers); failed=0.
#                       Case names are PREFIX.NAME.
#   ok NAME / not_ok NAME [WHY]   a case's line for tests/run.sh (not_ok counts failed)
#   ptsim_start SOCKET ARGS...    a ptsim on SOCKET (stderr to $dir/sim.log), returns
#                       once the socket is there (1 if it is not within 10 s)
#   check NAME CMD...   ok when CMD exits 0, else not ok with the head of its output
#   status NAME WANT CMD...       ok when CMD exits with status WANT
#   json FILE EXPR      FILE's JSON document, d, satisfies the Python expression EXPR
#   ptsim_done          the script's exit status: 0 when no case failed

ptsim_init() {
	PTSIM_PREFIX=$1
	B=${BUILD:-build}
	SIM=$B/mgmt/ptsim
	PT=$B/mgmt/ptctl-san
	dir=$(mktemp -d "/tmp/pt-$1.XXXXXX")
	pids=()
	failed=0
	trap ptsim_cleanup EXIT
}

ptsim_cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$dir"
}

ok() { echo "ok $PTSIM_PREFIX.$1"; }
not_ok() {
	echo "not ok $PTSIM_PREFIX.$*"
	failed=$((failed + 1))
}

ptsim_start() {
	local sock=$1
	shift
	"$SIM" --socket "$sock" "$@" 2>>"$dir/sim.log" &
	pids+=($!)
	for _ in $(seq 100); do
		[ -S "$sock" ] && return 0
		sleep 0.1
	done
	return 1
}

check() {
	local name=$1
	shift
	if "$@" >"$dir/out" 2>&1; then
		ok "$name"
	else
		not_ok "$name"
		sed 's/^/#   /' "$dir/out" | head -20
	fi
}

status() {
	local name=$1 want=$2 rc=0
	shift 2
	"$@" >"$dir/out" 2>&1 || rc=$?
	if [ "$rc" -eq "$want" ]; then
		ok "$name"
	else
		not_ok "$name (exit $rc, want $want)"
		sed 's/^/#   /' "$dir/out" | head -20
	fi
}

json() {
	python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1"
}

ptsim_done() { [ "$failed" -eq 0 ]; }

#!/usr/bin/env bash
# The management protocol end to end in QEMU: the real hypervisor (SVM + NPT under TCG)
# with Linux as its guest, driven by ptctl through the COM2 unix socket. Every command
# (memory compared with QEMU's own view via QMP pmemsave); then garbage, truncated frames, bad CRCs,
# oversize frames, unknown commands, another version, a flood and a host that ignores
# the window, each followed by a working command; and the guest kept running.
source "$(dirname "$0")/../qemu/lib.sh"
pt_init mgmt_qemu
PT=$BUILD/ptctl
INJ=$BUILD/mgmt/ptinject
sock=$RUN_DIR/mgmt.sock
out=$RUN_DIR/out
rm -f "$RUN_DIR"/*.json "$RUN_DIR"/*.bin

pt() { "$PT" -c "unix:$sock" "$@"; }
# check NAME CMD...: ok when CMD exits 0 (output in $out)
check() {
	local name=$1
	shift
	if "$@" >"$out" 2>&1; then pt_ok "mgmt_qemu.$name"; else
		pt_not_ok "mgmt_qemu.$name ($(tail -n 3 "$out" | tr '\n' ' '))"
	fi
}
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1"; }

PT_QEMU_TIMEOUT=400 pt_qemu_start --kernel-args 'pt.workload=memload'
if ! pt_wait_for "$RUN_DIR/com1.log" '^pagetrail-init: ready' 180; then
	pt_not_ok "mgmt_qemu.linux_ready (no 'pagetrail-init: ready'; see $RUN_DIR)"
	pt_hv_log_checks mgmt_qemu
	pt_finish
	exit 1
fi

check info pt info
pt info --json >"$RUN_DIR/info.json" 2>"$out"
check info_json json "$RUN_DIR/info.json" \
	'd["backend"]=="svm" and d["vcpus"]>=1 and "wp" in d["dirty_modes"] and d["protocol"]==1 and d["version"]'
pt slots --json >"$RUN_DIR/slots.json" 2>"$out"
check slots_json json "$RUN_DIR/slots.json" \
	'any(s["type"]=="ram" and s["size"]>=(16<<20) for s in d) and all(k in s for s in d for k in ("id","gpa","size","type","logging"))'
slot=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); r=max((s for s in d if s['type']=='ram'), key=lambda s: s['size']); print(r['id'], r['gpa'], r['size'])" "$RUN_DIR/slots.json" 2>/dev/null)
read -r sid sgpa ssize <<<"$slot"
check stats pt stats
pt stats --json >"$RUN_DIR/stats1.json" 2>"$out"
check stats_json json "$RUN_DIR/stats1.json" '"proto.frames_ok" in d and any(k.startswith("exit") for k in d)'
pt regs --json >"$RUN_DIR/regs.json" 2>"$out"
check regs_json json "$RUN_DIR/regs.json" 'd["vcpu"]==0 and d["rip"]!=0 and d["cr0"]&1'
check log pt log --bytes 2000
pt ping --count 50 --json >"$RUN_DIR/ping.json" 2>"$out"
check ping json "$RUN_DIR/ping.json" 'd["count"]==50'
echo "# command latency under Linux (TCG): $(cat "$RUN_DIR/ping.json")"

# Paused: memory read twice is the same, and equals QEMU's own view (QMP pmemsave).
check pause pt pause
gpa=$((sgpa + 0x100000))
check mem_read pt mem read "$gpa" 2M -o "$RUN_DIR/mem.bin"
python3 - "$RUN_DIR/qmp.sock" "$gpa" $((2 << 20)) "$PT_ROOT/$RUN_DIR/qmp.bin" >"$out" 2>&1 <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
def cmd(c, **a):
    f.write(json.dumps({"execute": c, "arguments": a} if a else {"execute": c}) + "\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "return" in r or "error" in r:
            return r
json.loads(f.readline())
cmd("qmp_capabilities")
r = cmd("pmemsave", val=int(sys.argv[2]), size=int(sys.argv[3]), filename=sys.argv[4])
sys.exit(0 if "return" in r else 1)
PY
check mem_read_equals_qemu cmp "$RUN_DIR/mem.bin" "$RUN_DIR/qmp.bin"
check resume pt resume

# Dirty logging while Linux runs (its timer alone writes memory).
check dirty_start pt dirty start --all --mode wp
sleep 2
pt dirty get --slot "$sid" --clear -o "$RUN_DIR/d1.bin" --json >"$RUN_DIR/d1.json" 2>"$out"
check dirty_get_clear json "$RUN_DIR/d1.json" 'd["dirty"]>0 and d["cleared"]'
check dirty_get_file test "$(stat -c %s "$RUN_DIR/d1.bin")" -eq $(((ssize / 4096 + 63) / 64 * 8))
pt dirty get --slot "$sid" --json >"$RUN_DIR/d2.json" 2>"$out"
check dirty_get json "$RUN_DIR/d2.json" '"dirty" in d and not d["cleared"]'
check dirty_clear pt dirty clear --slot "$sid" --first 0 --count $((ssize / 4096))
check dirty_stop pt dirty stop --all
# Harvests are timed (TSC measured against the firmware's Stall at boot).
pt stats --json >"$RUN_DIR/stats_h.json" 2>"$out"
check harvest_times json "$RUN_DIR/stats_h.json" \
	'd["dirty.harvests"]>=2 and 0<d["dirty.harvest_ns_max"]<60e9 and d["dirty.harvest_ns_total"]>=d["dirty.harvest_ns_max"]'

# Abuse, each followed by a working command.
for m in garbage truncated badcrc oversize unknown version reserved-flags flood nowindow; do
	PTINJECT_FLOOD=4096 "$INJ" -c "unix:$sock" "$m" >"$out" 2>&1
	grep -q '^ok ' "$out" && pt_ok "mgmt_qemu.inject_$m" || pt_not_ok "mgmt_qemu.inject_$m ($(head -c 200 "$out"))"
	check "after_$m" pt info
done

# The guest kept running: its exit counters still move.
pt stats --json >"$RUN_DIR/stats2.json" 2>"$out"
sleep 1
pt stats --json >"$RUN_DIR/stats3.json" 2>"$out"
check guest_kept_running python3 - "$RUN_DIR/stats2.json" "$RUN_DIR/stats3.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
ex = lambda d: sum(v for k, v in d.items() if k.startswith("exit"))
assert ex(b) > ex(a), (ex(a), ex(b))
assert b["proto.bad_crc"] >= 1 and b["proto.unknown_cmd"] >= 1, b
PY
pt_hv_log_checks mgmt_qemu
pt_check mgmt_qemu.no_guest_panic "(oops/panic on COM1)" \
	eval '! pt_has "$RUN_DIR/com1.log" "(Kernel panic|BUG:|Oops)"'
pt_finish

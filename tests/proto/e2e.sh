#!/usr/bin/env bash
# End to end without the hypervisor: ptctl (built with ASan+UBSan) against ptsim,
# which runs hv/'s management side (hv/control.c, hv/mgmt.c, the dirty-log session),
# exit dispatch and fault path over the real mmu/ (the CPU stood in for by the hardware
# model of tests/model: tests/hv/host_machine.h) behind a unix socket and an emulated
# 16550 (16-byte receive FIFO that drops bytes on overflow, polled every 300 us
# with 5 ms stalls, like a hypervisor that reads the UART only on VM exits).
# Every command; the dirty log against the simulator's oracle (no page lost);
# then abuse (garbage, truncated, bad CRC, oversize, unknown command, another
# version, a flood, a host that ignores the window), each followed by a working
# command; a noisy line; the tcp: transport (socat); a peer of another version;
# usage and transport exit statuses.
set -u
source "$(dirname "$0")/ptsim_lib.sh"
ptsim_init e2e
INJ=$B/mgmt/ptinject
sock=$dir/sim.sock

start_sim() { # SOCKET ARGS...
	ptsim_start "$1" --dump-dir "$dir" "${@:2}" || { not_ok sim_start; exit 1; }
}

pt() { "$PT" -c "unix:$sock" "$@"; }

start_sim "$sock" --poll-us 300 --stall-every 20 --stall-ms 5 --writes-per-poll 1 --seed 7

# --- every command -------------------------------------------------------------
check info grep -q 'backend      svm' <(pt info)
pt info --json >"$dir/info.json"
check info_json json "$dir/info.json" \
	'd["backend"] in ("svm","vmx") and d["vcpus"]==2 and d["dirty_modes"]==["wp","dbit"] and d["protocol"]==1 and "version" in d'
pt slots --json >"$dir/slots.json"
check slots_json json "$dir/slots.json" \
	'[(s["id"],s["gpa"],s["size"],s["type"],s["logging"]) for s in d]==[(0,0,32<<20,"ram",False),(1,1<<32,4<<20,"ram",False),(2,0xfe000000,64<<10,"mmio",False)]'
check slots grep -q '0x0000000100000000' <(pt slots)
pt stats --json >"$dir/stats.json"
check stats_json json "$dir/stats.json" '"proto.rx_bytes" in d and "exit.cpuid" in d and d["proto.frames_ok"]>0'
check stats grep -q '^proto.bad_crc' <(pt stats)
pt regs --vcpu 1 --json >"$dir/regs.json"
check regs_json json "$dir/regs.json" 'd["vcpu"]==1 and d["rip"]==0xffffffff81000001 and d["cr0"]==0x80050033'
check regs grep -q 'rip      0xffffffff81000000' <(pt regs)
status regs_no_vcpu 1 pt regs --vcpu 9
check log grep -q 'management port: up on COM2' <(pt log)
pt ping --count 20 --json >"$dir/ping.json"
check ping_json json "$dir/ping.json" 'd["count"]==20 and 0 < d["p50_ms"] <= d["p99_ms"] <= d["max_ms"]'
pt log --json --bytes 10 >"$dir/log.json"
check log_json json "$dir/log.json" 'len(d["text"])==10 and d["end"]>=10'
check pause pt pause
pt info --json >"$dir/info.json"
check info_paused json "$dir/info.json" 'd["paused"]'
check resume pt resume

status dirty_start_unsupported_mode 1 pt dirty start --slot 0 --mode pml
status dirty_start_bad_mode 2 pt dirty start --slot 0 --mode fast
status dirty_start_no_slot 1 pt dirty start --slot 42 --mode wp
status dirty_get_not_logging 1 pt dirty get --slot 0
check dirty_start_all grep -q 'started on 2 slot' <(pt dirty start --all --mode wp)
pt slots --json >"$dir/slots.json"
check slots_logging json "$dir/slots.json" '[s["logging"] for s in d]==[True,True,False] and d[0]["mode"]=="wp"'

# --- the dirty log against the oracle: two rounds of snapshot-and-clear --------------
sleep 0.5
pt pause >/dev/null
cp "$dir/oracle-0.bin" "$dir/oracle-first.bin"
check dirty_get_clear_1 pt dirty get --slot 0 --clear -o "$dir/a.bin"
pt resume >/dev/null
sleep 0.5
pt pause >/dev/null
pt dirty get --slot 0 --clear -o "$dir/b.bin" --json >"$dir/b.json"
check dirty_get_json json "$dir/b.json" 'd["slot"]==0 and d["pages"]==8192 and d["cleared"] and d["dirty"]>0'
check dirty_no_page_lost python3 - "$dir" <<'EOF'
import sys
d = sys.argv[1]
a, b = open(f"{d}/a.bin", "rb").read(), open(f"{d}/b.bin", "rb").read()
o1, o2 = open(f"{d}/oracle-first.bin", "rb").read(), open(f"{d}/oracle-0.bin", "rb").read()
assert len(a) == len(b) == len(o2) == 8192 // 8, (len(a), len(b), len(o2))
union = bytes(x | y for x, y in zip(a, b))
assert a == o1, "first snapshot != pages written before the first pause"
assert union == o2, "snapshots != every page written while logging"
assert any(b), "no page written in the second round"
EOF
# Get, then clear a range (slot 1): everything reported is re-armed.
pt dirty get --slot 1 -o "$dir/c.bin" --json >"$dir/c.json"
pt dirty clear --slot 1 --first 0 --count 1024 --json >"$dir/cl.json"
check dirty_get_then_clear python3 - "$dir" <<'EOF'
import json, sys
d = sys.argv[1]
c = open(f"{d}/c.bin", "rb").read()
n = sum(bin(x).count("1") for x in c)
g, cl = json.load(open(f"{d}/c.json")), json.load(open(f"{d}/cl.json"))
assert len(c) == 1024 // 8 and g["dirty"] == n and cl["reprotected"] == n, (len(c), g, cl, n)
EOF
status dirty_clear_range 1 pt dirty clear --slot 1 --first 1000 --count 100
status dirty_clear_usage 2 pt dirty clear --slot 1 --first 0

# --- memory ---------------------------------------------------------------------
check mem_read pt mem read 0 256K -o "$dir/m0.bin"
check mem_read_same cmp "$dir/m0.bin" <(head -c 262144 "$dir/mem-0.bin")
check mem_read_4g pt mem read 0x100000123 30000 -o "$dir/m1.bin"
check mem_read_4g_same cmp "$dir/m1.bin" <(tail -c +$((0x123 + 1)) "$dir/mem-1.bin" | head -c 30000)
status mem_read_mmio 1 pt mem read 0xfe000000 4096 -o "$dir/x.bin"
status mem_read_usage 2 pt mem read 0 -o "$dir/x.bin"
pt resume >/dev/null
check dirty_stop_all grep -q 'stopped on 2 slot' <(pt dirty stop --all)

# --- abuse, each followed by a working command (a fresh ptctl) ------------------------
for m in garbage truncated badcrc oversize unknown version reserved-flags flood nowindow; do
	"$INJ" -c "unix:$sock" "$m" 2>"$dir/inj.err" || sed 's/^/#   /' "$dir/inj.err"
	check "after_$m" pt info
done
pt stats --json >"$dir/stats.json"
check stats_counted_abuse json "$dir/stats.json" \
	'd["proto.bad_crc"]>=1 and d["proto.too_big"]>=1 and d["proto.unknown_cmd"]>=1 and d["proto.bad_version"]>=1 and d["proto.line_errors"]>=1'

# --- the tcp: transport, through socat -------------------------------------------------
port=$((20000 + RANDOM % 20000))
socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork" "UNIX-CONNECT:$sock" 2>/dev/null &
pids+=($!)
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
check tcp_info "$PT" -c "tcp:127.0.0.1:$port" info

# --- a noisy line: one reply frame in three damaged; ptctl retransmits -----------------
noisy=$dir/noisy.sock
start_sim "$noisy" --poll-us 200 --corrupt-every 3 --seed 9 --ram-mib 256 --writes-per-poll 2
"$PT" --timeout 300 -c "unix:$noisy" pause >/dev/null 2>&1 || "$PT" --timeout 300 -c "unix:$noisy" pause >/dev/null 2>&1
check noisy_mem_read "$PT" -v --timeout 300 -c "unix:$noisy" mem read 0x100000000 128K -o "$dir/n.bin"
cp "$dir/out" "$dir/noisy.out"
check noisy_retransmitted grep -q ' [1-9][0-9]* bad frames' "$dir/noisy.out"
check noisy_mem_same cmp "$dir/n.bin" <(head -c 131072 "$dir/mem-1.bin")
# A snapshot-and-clear over the noisy line: damaged DIRTY_READ replies are asked
# again at the same page, a damaged DIRTY_SNAP reply is answered from the reply cache
# (not harvested twice); the result is exactly the oracle.
np() { "$PT" --timeout 300 -c "unix:$noisy" "$@"; }
np resume >/dev/null 2>&1
check noisy_dirty_start np dirty start --all --mode dbit
sleep 0.5
np pause >/dev/null 2>&1 || np pause >/dev/null 2>&1
check noisy_dirty_get np -v dirty get --slot 0 --clear -o "$dir/nd.bin"
check noisy_dirty_equals_oracle cmp "$dir/nd.bin" "$dir/oracle-0.bin"

# --- long commands in steps (--step-pages 64), the fake guest writing between steps,
# no pause: the snapshots of three rounds hold every page written while logging; a
# --timeout shorter than a harvest (1024 steps, ~1 s) shows that progress CREDITs keep
# ptctl waiting instead of resending.
steps=$dir/steps.sock
# A poll a millisecond: 256 MiB in 64-page steps takes a few seconds, so the start
# below is still running when its host is killed at 0.3 s (steps_busy_*).
start_sim "$steps" --poll-us 1000 --stall-every 50 --stall-ms 2 --writes-per-poll 1 --seed 11 \
	--ram-mib 256 --step-pages 64
sp() { "$PT" -c "unix:$steps" "$@"; }
check steps_dirty_start grep -q 'started on 2 slot' <(sp -v --timeout 400 dirty start --all --mode wp 2>"$dir/steps-start.err")
check steps_start_no_resend bash -c "! grep -q 'sending again' '$dir/steps-start.err'"
check steps_get_1 sp dirty get --slot 0 --clear -o "$dir/s1.bin"
sleep 0.2
check steps_get_2 sp -v --timeout 400 dirty get --slot 0 --clear -o "$dir/s2.bin"
cp "$dir/out" "$dir/steps-get.out"
check steps_get_no_resend bash -c "! grep -q 'sending again' '$dir/steps-get.out'"
sp pause >/dev/null
check steps_get_3 sp dirty get --slot 0 --clear -o "$dir/s3.bin"
check steps_no_page_lost python3 - "$dir" <<'EOF'
import sys
d = sys.argv[1]
s = [open(f"{d}/s{i}.bin", "rb").read() for i in (1, 2, 3)]
o = open(f"{d}/oracle-0.bin", "rb").read()
w = open(f"{d}/written-0.bin", "rb").read()
assert all(len(x) == len(o) == len(w) == 65536 // 8 for x in s), [len(x) for x in s]
union = bytes(a | b | c for a, b, c in zip(*s))
# No page written after "started" is missing; a page written while the start
# ran may be reported too (a spare bit), a page never written may not.
assert all(u & x == x for u, x in zip(union, o)), "a page written while logging is missing"
assert all(u & x == u for u, x in zip(union, w)), "a page never written is reported"
assert any(s[1]), "no page written during the second round"
EOF
sp stats --json >"$dir/steps.json"
check steps_counted json "$dir/steps.json" 'd["proto.long_cmds"]>=4 and d["proto.steps"]>=3*1024'
sp resume >/dev/null
check steps_dirty_stop grep -q 'stopped on 2 slot' <(sp dirty stop --all)
# A host that gives up half way through a long command (killed): the next host's
# dirty-log request is answered BUSY until that command is done, and ptctl sends it
# again until it runs (docs/protocol.md "Long commands").
sp dirty start --all --mode wp >/dev/null 2>&1 &
busy_pid=$!
sleep 0.3
kill "$busy_pid" 2>/dev/null
wait "$busy_pid" 2>/dev/null
check steps_busy_then_runs sp -v dirty get --slot 0 -o "$dir/s4.bin"
cp "$dir/out" "$dir/steps-busy.out"
check steps_busy_was_seen grep -q 'busy, again' "$dir/steps-busy.out"
check steps_busy_stop grep -q 'stopped on 2 slot' <(sp dirty stop --all)

# --- an Intel CPU (--pml: EPT with A/D and PML): the CPU logs each page it dirties, its
# PML-full exits drain into the log; two harvests hold every page written while logging.
pmls=$dir/pml.sock
start_sim "$pmls" --pml --poll-us 200 --writes-per-poll 2 --seed 5
pp() { "$PT" -c "unix:$pmls" "$@"; }
pp info --json >"$dir/pinfo.json"
check pml_offered json "$dir/pinfo.json" 'd["backend"]=="vmx" and "pml" in d["dirty_modes"]'
check pml_dirty_start grep -q 'started on 2 slot' <(pp dirty start --all --mode pml)
sleep 0.5
check pml_get_1 pp dirty get --slot 0 --clear -o "$dir/p1.bin"
sleep 0.5
pp pause >/dev/null
check pml_get_2 pp dirty get --slot 0 --clear -o "$dir/p2.bin"
check pml_no_page_lost python3 - "$dir" <<'EOF'
import sys
d = sys.argv[1]
s = [open(f"{d}/p{i}.bin", "rb").read() for i in (1, 2)]
o = open(f"{d}/oracle-0.bin", "rb").read()
w = open(f"{d}/written-0.bin", "rb").read()
union = bytes(a | b for a, b in zip(*s))
assert any(o), "the guest wrote nothing while logging"
assert all(u & x == x for u, x in zip(union, o)), "a page written while logging is missing"
assert all(u & x == u for u, x in zip(union, w)), "a page never written is reported"
EOF
pp stats --json >"$dir/pstats.json"
check pml_full_exits json "$dir/pstats.json" 'd["exit.pml_full"]>0'
pp resume >/dev/null
check pml_dirty_stop grep -q 'stopped on 2 slot' <(pp dirty stop --all)

# --- the hypervisor's pool is dry: a start is refused with NOMEM at once (exit 1),
# not retried as BUSY; the slot stays off, and the session is free for the next command.
dry=$dir/dry.sock
start_sim "$dry" --pool-pages 0
dp() { "$PT" -c "unix:$dry" "$@"; }
status nomem_start_refused 1 dp -v dirty start --slot 0 --mode wp
cp "$dir/out" "$dir/nomem.out"
check nomem_named grep -q 'out of hypervisor memory' "$dir/nomem.out"
check nomem_not_retried bash -c "! grep -q 'busy, again' '$dir/nomem.out'"
check nomem_slot_off bash -c "'$PT' -c 'unix:$dry' --json slots | python3 -c 'import json,sys; d=json.load(sys.stdin); assert not d[0][\"logging\"], d'"

# --- a serial device: a pty bridged to the simulator by socat (termios raw, --baud) ---
socat "pty,raw,echo=0,link=$dir/tty" "UNIX-CONNECT:$sock" 2>/dev/null &
pids+=($!)
for _ in $(seq 50); do [ -e "$dir/tty" ] && break; sleep 0.1; done
check tty_info "$PT" -c "$dir/tty" --baud 115200 info
status tty_bad_baud 2 "$PT" -c "$dir/tty" --baud 12345 info

# --- exit statuses: usage, transport, timeout, another version ---------------------------
status usage_none 2 "$PT"
status usage_unknown 2 pt frobnicate
status usage_no_conn 2 env -u PTCTL_CONNECT "$PT" info
status usage_bad_number 2 pt regs --vcpu zz
status transport_no_socket 3 "$PT" -c "unix:$dir/none" info
status transport_tcp_refused 3 "$PT" -c "tcp:127.0.0.1:1" info
status transport_not_a_tty 3 "$PT" -c /dev/null info
silent=$dir/silent.sock
python3 -c "
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
c, _ = s.accept(); time.sleep(30)" "$silent" &
pids+=($!)
for _ in $(seq 50); do [ -S "$silent" ] && break; sleep 0.05; done
status timeout 3 "$PT" --timeout 200 -c "unix:$silent" info
dead=$dir/dead.sock
python3 -c "
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1)
c, _ = s.accept(); c.recv(100)
c.send(b'\r\npagetrail: FATAL guest-fatal: triple fault\r\n'); time.sleep(30)" "$dead" &
pids+=($!)
for _ in $(seq 50); do [ -S "$dead" ] && break; sleep 0.05; done
status dead_hypervisor 3 "$PT" --timeout 200 -c "unix:$dead" info
cp "$dir/out" "$dir/dead.out"
check dead_hypervisor_message grep -q 'the line said "pagetrail: FATAL guest-fatal: triple fault"' "$dir/dead.out"
vpeer=$dir/v2.sock
"$INJ" --fake-peer 2 --socket "$vpeer" &
pids+=($!)
for _ in $(seq 50); do [ -S "$vpeer" ] && break; sleep 0.05; done
status other_version 3 "$PT" -c "unix:$vpeer" info
cp "$dir/out" "$dir/version.out"
check other_version_message grep -q 'speaks management protocol version 2' "$dir/version.out"
ptsim_done

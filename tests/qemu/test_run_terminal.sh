#!/usr/bin/env bash
# The default boot as `make run` does it: tools/run-qemu.sh with COM1 on its stdin/stdout
# (here a pipe instead of a terminal). It must print where the hypervisor's log and the
# management socket are; the Linux shell must answer what is typed; the management
# socket it printed must answer ptctl; the hypervisor's log must be in the printed file.
source "$(dirname "$0")/lib.sh"
pt_init run_terminal
trap "" PIPE # a QEMU that died early must give a "not ok", not kill the script

rm -f "$RUN_DIR"/{in,out,err,com1.log,hv.log}
mkfifo "$RUN_DIR/in"
tools/run-qemu.sh --run-dir "$RUN_DIR" --timeout 240 <"$RUN_DIR/in" >"$RUN_DIR/out" 2>"$RUN_DIR/err" &
pt_qemu_pid=$!
exec 3>"$RUN_DIR/in"

log_path=$(sed -n 's/^run-qemu: hypervisor log: *\([^ ]*\).*/\1/p' "$RUN_DIR/err")
sock_path=$(sed -n 's/^run-qemu: management (COM2): *\([^ ]*\).*/\1/p' "$RUN_DIR/err")
for ((i = 0; i < 50 && (${#log_path} == 0 || ${#sock_path} == 0); i++)); do
	sleep 0.1
	log_path=$(sed -n 's/^run-qemu: hypervisor log: *\([^ ]*\).*/\1/p' "$RUN_DIR/err")
	sock_path=$(sed -n 's/^run-qemu: management (COM2): *\([^ ]*\).*/\1/p' "$RUN_DIR/err")
done
pt_check run_terminal.prints_paths "(run-qemu.sh did not print the log and socket paths)" \
	test -n "$log_path" -a -n "$sock_path"

if pt_wait_for "$RUN_DIR/out" '^pagetrail-init: shell' 200; then
	pt_ok run_terminal.linux_shell_on_stdout
else
	pt_not_ok "run_terminal.linux_shell_on_stdout (no shell on run-qemu.sh's stdout)"
fi
echo 'echo typed-$((40+2))' >&3
pt_check run_terminal.shell_answers_stdin "(what was typed got no answer)" \
	pt_wait_for "$RUN_DIR/out" '^typed-42' 30
pt_check run_terminal.mgmt_socket_answers "(ptctl info over $sock_path failed)" \
	eval 'timeout 60 "$BUILD/ptctl" -c "unix:$sock_path" --timeout 10000 info >"$RUN_DIR/ptctl-info" 2>&1'
pt_check run_terminal.hv_log_in_printed_file "(no '$PT_HV_RUNNING' in $log_path)" \
	pt_has "$log_path" "$PT_HV_RUNNING"
echo 'poweroff -f' >&3
pt_qemu_wait
exec 3>&-
pt_check run_terminal.poweroff "(QEMU status $pt_qemu_status)" test "$pt_qemu_status" -eq 0
pt_finish

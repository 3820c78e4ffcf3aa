#!/usr/bin/env bash
# The migration-convergence research commands end to end (docs/research.md): Linux
# under the hypervisor with 192 MiB, pt-dirtywriter storing 8000 times a second to
# random pages of a set of 16384 (tests/guest/workloads/writer.sh); `ptctl dirty rate`
# (one window and a series), `ptctl precopy` over a 6 MiB/s link (five times slower than
# the writer's 31 MiB/s, so that it stays slower even when a busy host slows the guest
# down: must not converge) and a 1 GiB/s one (must converge within 2 ms of downtime)
# and `ptctl wws`, each figure compared with W (1 - exp(-n / W)) for the n stores the
# writer made in its window (n = R t when the guest keeps pace; the writer's heartbeat
# lines tell, tests/qemu/research_check.py), the CSV and the SVG/PNG plots checked. Then the
# hypervisor must have reported no fault. About 2 minutes.
# tsc=reliable: the writer's pace and heartbeat times come from the guest's TSC clock,
# which runs with the host's; on a busy host Linux's clocksource watchdog (against an
# emulated timer read late) would call the TSC unstable and switch to a worse clock.
source "$(dirname "$0")/lib.sh"
pt_init research

rate=8000
pages=16384
beat=20
PT_QEMU_TIMEOUT=480 pt_qemu_start --qemu-arg -m --qemu-arg 192M \
	--kernel-args "tsc=reliable pt.workload=writer pt.wrate=$rate pt.wpages=$pages pt.wbeat=$beat"
if ! python3 tests/qemu/research_check.py "$RUN_DIR" --rate "$rate" --pages "$pages" \
	--slow-link 6M --fast-link 1G --deadline 400; then
	PT_FAILED=$((PT_FAILED + 1))
fi
pt_hv_log_checks research
pt_finish

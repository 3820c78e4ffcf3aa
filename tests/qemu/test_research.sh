#!/usr/bin/env bash
# The migration-convergence research commands end to end (docs/research.md): Linux
# under the hypervisor with 160 MiB, pt-dirtywriter storing 2000 times a second to
# random pages of a set of 4096 (tests/guest/workloads/writer.sh); `ptctl dirty rate`
# (one window and a series), `ptctl precopy` over a 6 MiB/s link (slower than the
# writer's 7.8 MiB/s: must not converge) and a 1 GiB/s one (must converge within 0.5 ms of downtime)
# and `ptctl wws`, each figure compared with W (1 - exp(-n / W)) for the n stores the
# writer made in its window (n = R t when the guest keeps pace; the writer's heartbeat
# lines tell, tests/qemu/research_check.py), the CSV and the SVG/PNG plots checked. Then the
# hypervisor must have reported no fault. About 2 minutes.
source "$(dirname "$0")/lib.sh"
pt_init research

rate=2000
pages=4096
beat=20
PT_QEMU_TIMEOUT=480 pt_qemu_start --qemu-arg -m --qemu-arg 160M \
	--kernel-args "pt.workload=writer pt.wrate=$rate pt.wpages=$pages pt.wbeat=$beat"
if ! python3 tests/qemu/research_check.py "$RUN_DIR" --rate "$rate" --pages "$pages" --beat-ms "$beat" \
	--slow-link 6M --fast-link 1G --deadline 400; then
	PT_FAILED=$((PT_FAILED + 1))
fi
pt_hv_log_checks research
pt_finish

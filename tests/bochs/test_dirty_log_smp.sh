#!/usr/bin/env bash
# tests/bochs/test_dirty_log.sh with 2 CPUs (Bochs `cpu: count=2`): every mode's rounds
# lose no write while both CPUs are vCPUs, and PML is switched and drained per vCPU, each
# on its own CPU (docs/smp.md "PML per vCPU"). The writer runs on both CPUs, each on its
# own part of the buffer and its own scratch sweep (which overflows each vCPU's PML log
# between harvests): every harvest must kick the AP out of the guest to drain its log.
PT_BOCHS_CPUS=2 exec "$(dirname "$0")/test_dirty_log.sh"

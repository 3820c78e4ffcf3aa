#!/usr/bin/env bash
# test_dirty_log.sh on a CPU model without PML (corei7_haswell_4770: EPT
# with A/D, no PML): pml must be refused with a clear answer, wp and dbit must still work.
PT_BOCHS_MODEL=corei7_haswell_4770 exec "$(dirname "$0")/test_dirty_log.sh"

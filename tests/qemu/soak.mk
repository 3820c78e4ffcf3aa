# make soak: hours of the dirty oracle (10,000 rounds over modes, workloads, 1 and 2
# vCPUs) and of the harvest loop against Linux (tests/qemu/soak.sh); figures as bench
# JSON lines in build/soak.jsonl. Not in make test. Short form:
# SOAK_ROUNDS=16 SOAK_HARVEST_SECONDS=60 SOAK_SNAPSHOT_EVERY=0 make soak
.PHONY: soak
soak: deps
	$(Q)$(MAKE) --no-print-directory test-build
	$(Q)tests/qemu/soak.sh

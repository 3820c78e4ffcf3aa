# libFuzzer targets on the management protocol: the frame and payload decoders
# (fuzz_frame) and the hypervisor's management port on the simulated machine (fuzz_mgmt).
# `make fuzz` runs them (tests/fuzz/run.sh); `make test` replays the committed
# corpus through the same code built with gcc + ASan/UBSan (replay_*).
FUZZ_CC ?= clang
FUZZ_CFLAGS := -std=gnu11 -O1 -g -Wall -Wextra -Werror -Iinclude -I. \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
	-fsanitize-coverage-ignorelist=tests/fuzz/coverage_ignore.txt
FUZZ_CODEC := hv/proto/proto.c hv/proto/codec.c hv/proto/deflate.c
# The management port as the hypervisor runs it, on the simulated machine (HV_HOST_SRCS).
FUZZ_MGMT := $(HV_HOST_SRCS) tests/hv/host_port.c

# The host's DEFLATE decoder (zlib) reads what the line brings too.
FUZZ_INFLATE := tools/ptctl/inflate.c

$(BUILD)/mgmt/fuzz_frame: tests/fuzz/fuzz_frame.c $(FUZZ_CODEC) $(FUZZ_INFLATE) $(wildcard hv/proto/*.h \
		tools/ptctl/inflate.h)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) tests/fuzz/fuzz_frame.c $(FUZZ_CODEC) $(FUZZ_INFLATE) -lz -o $@

$(BUILD)/mgmt/fuzz_mgmt: tests/fuzz/fuzz_mgmt.c $(FUZZ_MGMT) $(wildcard hv/proto/*.h hv/*.h \
		mmu/*.h tests/hv/*.h tests/model/*.h)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) tests/fuzz/fuzz_mgmt.c $(FUZZ_MGMT) -o $@

FUZZ_TARGETS += $(BUILD)/mgmt/fuzz_frame $(BUILD)/mgmt/fuzz_mgmt

$(BUILD)/mgmt/replay_%: tests/fuzz/replay_main.c tests/fuzz/%.c $(FUZZ_MGMT) $(FUZZ_INFLATE) \
		$(wildcard hv/proto/*.h hv/*.h mmu/*.h tests/hv/*.h tests/model/*.h tools/ptctl/inflate.h)
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(filter-out -MMD -MP,$(HOST_CFLAGS)) $(SAN_CFLAGS) \
		-DTARGET='"$*"' -DCORPUS_DIR='"tests/fuzz/corpus/$*"' \
		tests/fuzz/replay_main.c tests/fuzz/$*.c $(FUZZ_MGMT) $(FUZZ_INFLATE) -lz -o $@

HOST_TESTS += $(BUILD)/mgmt/replay_fuzz_frame $(BUILD)/mgmt/replay_fuzz_mgmt

# fuzz_guest: the exit path a hostile guest reaches (hv/exit.c's CPUID, MSR and port I/O
# policy, hv/lapic.c, hv/insn.c through hv/guest_mem.c, the HPET page: hv/mgmt_tick.c,
# hv/vhpet.c, drivers/hpet.c, hv/acpi.c), with the CPU replaced by tests/fuzz/guest_shim.h.
FUZZ_GUEST := hv/exit.c hv/lapic.c hv/insn.c hv/guest_mem.c hv/mgmt_tick.c hv/mgmt_poll.c hv/vhpet.c \
	drivers/hpet.c hv/acpi.c
FUZZ_GUEST_DEPS := tests/fuzz/guest_shim.h $(wildcard hv/*.h drivers/*.h arch/x86/*.h include/pt/*.h)

$(BUILD)/mgmt/fuzz_guest: tests/fuzz/fuzz_guest.c $(FUZZ_GUEST) $(FUZZ_GUEST_DEPS)
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -include tests/fuzz/guest_shim.h tests/fuzz/fuzz_guest.c \
		$(FUZZ_GUEST) -o $@

FUZZ_TARGETS += $(BUILD)/mgmt/fuzz_guest

$(BUILD)/mgmt/replay_fuzz_guest: tests/fuzz/replay_main.c tests/fuzz/fuzz_guest.c $(FUZZ_GUEST) \
		$(FUZZ_GUEST_DEPS)
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(filter-out -MMD -MP,$(HOST_CFLAGS)) $(SAN_CFLAGS) \
		-DTARGET='"fuzz_guest"' -DCORPUS_DIR='"tests/fuzz/corpus/fuzz_guest"' \
		tests/fuzz/replay_main.c -include tests/fuzz/guest_shim.h tests/fuzz/fuzz_guest.c \
		$(FUZZ_GUEST) -o $@

HOST_TESTS += $(BUILD)/mgmt/replay_fuzz_guest

# make fuzz-long: the targets in turns of PT_FUZZ_SECONDS (600) until 10^8 executions in
# all (PT_FUZZ_TOTAL); hours at this machine's rates: fuzz.long.hours_for_1e8 in
# docs/PERFORMANCE.md. fuzz-build and fuzz-list serve the bench step.
.PHONY: fuzz-long fuzz-build fuzz-list
fuzz-long: deps $(FUZZ_TARGETS)
	$(Q)PT_FUZZ_TOTAL=$${PT_FUZZ_TOTAL:-100000000} PT_FUZZ_SECONDS=$${PT_FUZZ_SECONDS:-600} \
		tests/fuzz/run.sh $(FUZZ_TARGETS)

fuzz-build: $(FUZZ_TARGETS)

fuzz-list:
	@echo $(FUZZ_TARGETS)

BENCH_STEPS += tests/fuzz/bench_fuzz.sh

# tests/model: mmu/ proven against a model of the processor's nested paging
# (tests/model/hw_model.c), and the mmu.* benchmarks.
#
#   build/model/dirty_log_seq   sequential groups + format + negative tests, ASan+UBSan
#   build/model/dirty_log_mt    vCPU threads + harvester, ThreadSanitizer
#   build/model/mmu_bench       `make bench` step: the image's mmu/ objects, no sanitizer
#
# PT_MODEL_SEEDS=N runs N seeds per group (default 1); a seed on the command
# line replays one (e.g. build/model/dirty_log_mt 42).

MODEL_OUT := $(BUILD)/model
MODEL_MMU_SRCS := $(sort $(wildcard mmu/*.c))
MODEL_HW_SRCS := tests/model/hw_model.c tests/model/model_platform.c
MODEL_HDRS := $(wildcard tests/model/*.h mmu/*.h include/pt/*.h)
# One compiler run per executable: no -MMD (its .d names would follow the
# executable), the headers are listed as prerequisites instead.
MODEL_CFLAGS := $(filter-out -MMD -MP,$(HOST_CFLAGS))

$(MODEL_OUT)/dirty_log_seq: tests/model/dirty_log_test.c tests/model/format_test.c \
		$(MODEL_HW_SRCS) $(MODEL_MMU_SRCS) $(MODEL_HDRS)
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(MODEL_CFLAGS) $(SAN_CFLAGS) -DMODEL_THREADED=0 \
		$(filter %.c,$^) -o $@

$(MODEL_OUT)/dirty_log_mt: tests/model/dirty_log_test.c $(MODEL_HW_SRCS) $(MODEL_MMU_SRCS) \
		$(MODEL_HDRS)
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(MODEL_CFLAGS) $(TSAN_CFLAGS) -DMODEL_THREADED=1 \
		$(filter %.c,$^) -o $@

# The bench links the image's own mmu/ objects ($(BUILD)/efi/mmu/*.o: the same
# compiler flags and PT_DEBUG as pagetrail.efi), so its figures are those of the
# code that ships; only the harness around them is built for the host.
MODEL_SHIPPED_MMU_OBJS := $(MODEL_MMU_SRCS:%.c=$(BUILD)/efi/%.o)

$(MODEL_OUT)/mmu_bench: tests/model/mmu_bench.c tests/model/model_platform.c \
		tests/model/hw_model.c $(MODEL_SHIPPED_MMU_OBJS) $(MODEL_HDRS)
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(filter-out -O2 -g,$(MODEL_CFLAGS)) -O2 \
		-DPT_BENCH_MMU_BUILD='"pagetrail.efi objects, PT_DEBUG=$(PT_DEBUG)"' \
		$(filter %.c %.o,$^) -o $@

.PHONY: model
model: $(MODEL_OUT)/dirty_log_seq $(MODEL_OUT)/dirty_log_mt

HOST_TESTS += $(MODEL_OUT)/dirty_log_seq $(MODEL_OUT)/dirty_log_mt

# `make bench`: mmu.* figures (1, 16, 64 GiB; 1 TiB when MemAvailable >= 8 GiB).
TEST_DEPS += $(MODEL_OUT)/mmu_bench
BENCH_STEPS += $(MODEL_OUT)/mmu_bench

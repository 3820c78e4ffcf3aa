# tests/mmu: unit tests of mmu/ (host).
#
#   build/mmu/mmu_unit_test   formats, iterator, page sizes, memslots, dirty-log ops,
#                             split/collapse, PML drain, roots (ASan+UBSan)
#   build/mmu/mmu_mt_test     vCPU threads faulting and writing vs a harvester; a root's
#                             last reference vs a walker's root set (TSan)

MMU_TEST_OUT := $(BUILD)/mmu
MMU_TEST_MMU_SRCS := $(sort $(wildcard mmu/*.c))
MMU_TEST_HDRS := $(wildcard mmu/*.h include/pt/*.h tests/mmu/*.h)
# One compiler run per executable: headers are listed as prerequisites instead of -MMD.
MMU_TEST_CFLAGS := $(filter-out -MMD -MP,$(HOST_CFLAGS))

$(MMU_TEST_OUT)/mmu_unit_test: tests/mmu/mmu_unit_test.c $(MMU_TEST_MMU_SRCS) $(MMU_TEST_HDRS)
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(MMU_TEST_CFLAGS) $(SAN_CFLAGS) $(filter %.c,$^) -o $@

$(MMU_TEST_OUT)/mmu_mt_test: tests/mmu/mmu_mt_test.c $(MMU_TEST_MMU_SRCS) $(MMU_TEST_HDRS)
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(MMU_TEST_CFLAGS) $(TSAN_CFLAGS) $(filter %.c,$^) -o $@

HOST_TESTS += $(MMU_TEST_OUT)/mmu_unit_test $(MMU_TEST_OUT)/mmu_mt_test

.PHONY: mmu-tests
mmu-tests: $(MMU_TEST_OUT)/mmu_unit_test $(MMU_TEST_OUT)/mmu_mt_test

# Host unit tests of hv/ logic that needs no CPU (memslots, page allocator, formatter).
HV_UNIT_SRCS := tests/hv/hv_unit_test.c hv/memslot.c hv/page_alloc.c hv/format.c

$(BUILD)/hv/hv_unit_test: $(HV_UNIT_SRCS) $(wildcard hv/*.h include/pt/*.h)
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) $(SAN_CFLAGS) $(HV_UNIT_SRCS) -o $@

HOST_TESTS += $(BUILD)/hv/hv_unit_test

# Host unit test of the management tick's logic: finding the HPET table and its block ID
# (hv/acpi.c), HPET comparator picking, programming and tick claiming (drivers/hpet.c)
# on in-memory images, and the guest's view of the shared HPET (hv/vhpet.c). ASan+UBSan.
TICK_UNIT_SRCS := tests/hv/tick_unit_test.c hv/acpi.c drivers/hpet.c hv/vhpet.c

$(BUILD)/hv/tick_unit_test: $(TICK_UNIT_SRCS) hv/acpi.h drivers/hpet.h hv/vhpet.h $(wildcard include/pt/*.h)
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) $(SAN_CFLAGS) $(TICK_UNIT_SRCS) -o $@
HOST_TESTS += $(BUILD)/hv/tick_unit_test

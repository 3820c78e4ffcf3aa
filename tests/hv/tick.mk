# Host unit test of the management tick's logic: finding the HPET table and its block ID
# (hv/acpi.c), HPET comparator picking, programming and tick claiming (drivers/hpet.c)
# on in-memory images, the guest's view of the shared HPET (hv/vhpet.c), and the poll
# intervals the line's rate gives (hv/mgmt_poll.c). ASan+UBSan.
TICK_UNIT_SRCS := tests/hv/tick_unit_test.c hv/acpi.c drivers/hpet.c hv/vhpet.c hv/mgmt_poll.c

$(BUILD)/hv/tick_unit_test: $(TICK_UNIT_SRCS) hv/acpi.h drivers/hpet.h hv/vhpet.h hv/mgmt_poll.h \
		drivers/uart16550.h $(wildcard include/pt/*.h)
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) $(SAN_CFLAGS) $(TICK_UNIT_SRCS) -o $@
HOST_TESTS += $(BUILD)/hv/tick_unit_test

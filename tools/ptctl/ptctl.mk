# ptctl, the host tool that speaks the management protocol (docs/protocol.md).
# Objects of the hosted builds of the shared codec and of mgmt.c live under
# build/mgmt/: host/ plain, san/ with ASan+UBSan (tests), fuzz/ with clang's libFuzzer.
MGMT_CODEC_SRCS := hv/proto/proto.c hv/proto/codec.c
PTCTL_SRCS := tools/ptctl/ptctl.c tools/ptctl/client.c $(MGMT_CODEC_SRCS)

$(BUILD)/mgmt/host/%.o: %.c
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) -c $< -o $@

$(BUILD)/mgmt/san/%.o: %.c
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) $(SAN_CFLAGS) -c $< -o $@

$(BUILD)/ptctl: $(PTCTL_SRCS:%.c=$(BUILD)/mgmt/host/%.o)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) $^ -o $@

# The same tool under the sanitizers, for the end-to-end tests.
$(BUILD)/mgmt/ptctl-san: $(PTCTL_SRCS:%.c=$(BUILD)/mgmt/san/%.o)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) $(SAN_CFLAGS) $^ -o $@

ALL_TARGETS += $(BUILD)/ptctl

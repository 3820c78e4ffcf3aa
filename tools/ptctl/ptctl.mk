# ptctl, the host tool that speaks the management protocol (docs/protocol.md).
# Objects of the hosted builds of the shared codec and of mgmt.c live under
# build/mgmt/: host/ plain, san/ with ASan+UBSan (tests), fuzz/ with clang's libFuzzer.
MGMT_CODEC_SRCS := hv/proto/proto.c hv/proto/codec.c hv/proto/deflate.c
# research*.c: dirty rate, precopy, wws (docs/research.md); research.c and
# research_plot.c take their harvests from a research_source, so the host test
# (tests/research/) runs them on a simulated guest.
RESEARCH_SRCS := tools/ptctl/research.c tools/ptctl/research_plot.c
PTCTL_SRCS := tools/ptctl/ptctl.c tools/ptctl/client.c tools/ptctl/research_cmd.c \
	tools/ptctl/research_send.c \
	tools/ptctl/ops.c tools/ptctl/elfcore.c tools/ptctl/precopy.c tools/ptctl/snapshot.c \
	tools/ptctl/inflate.c \
	$(RESEARCH_SRCS) $(MGMT_CODEC_SRCS)

# DEFLATE replies are inflated with zlib (Debian: zlib1g-dev).
PT_ZLIB := -lz

$(BUILD)/mgmt/host/%.o: %.c
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) -c $< -o $@

$(BUILD)/mgmt/san/%.o: %.c
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) $(SAN_CFLAGS) -c $< -o $@

$(BUILD)/ptctl: $(PTCTL_SRCS:%.c=$(BUILD)/mgmt/host/%.o)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) $^ -lm $(PT_ZLIB) -o $@

# The same tool under the sanitizers, for the end-to-end tests.
$(BUILD)/mgmt/ptctl-san: $(PTCTL_SRCS:%.c=$(BUILD)/mgmt/san/%.o)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) $(SAN_CFLAGS) $^ -lm $(PT_ZLIB) -o $@

ALL_TARGETS += $(BUILD)/ptctl

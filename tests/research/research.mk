# Host test of the research commands (ptctl dirty rate, precopy, wws; docs/research.md):
# their logic against a simulated guest with a writer of known rate over a known set of
# pages, and the plots drawn by gnuplot. ASan+UBSan.
RESEARCH_TEST_SRCS := tests/research/research_test.c tools/ptctl/research.c \
	tools/ptctl/research_plot.c hv/proto/proto.c hv/proto/codec.c

$(BUILD)/research/research_test: $(RESEARCH_TEST_SRCS) $(wildcard tools/ptctl/*.h hv/proto/*.h include/pt/*.h)
	@mkdir -p $(@D)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) $(SAN_CFLAGS) $(RESEARCH_TEST_SRCS) -lm -o $@

HOST_TESTS += $(BUILD)/research/research_test

# The line side end to end against ptsim (tests/proto/), ptctl with ASan+UBSan.
TEST_DEPS += $(BUILD)/mgmt/ptsim $(BUILD)/mgmt/ptctl-san
TEST_SCRIPTS += tests/research/e2e_research.sh

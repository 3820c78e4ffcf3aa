# Host tests of the management protocol: codec and dispatcher unit tests, the
# simulator (hv/'s management side and fault path on a simulated machine, behind a
# unix socket and an emulated 16550)
# with ptctl end to end against it, and the protocol benchmark.
MGMT_CODEC_SRCS := hv/proto/proto.c hv/proto/codec.c hv/proto/deflate.c
# The simulator runs hv/'s own management side, exit dispatch and fault path on a
# simulated machine (HV_HOST_SRCS, in the Makefile); it defines the management
# UART's functions itself (drivers/uart16550.h).
$(BUILD)/mgmt/ptsim: $(addprefix $(BUILD)/mgmt/san/,$(HV_HOST_SRCS:.c=.o) tests/proto/ptsim.o)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) $(SAN_CFLAGS) $^ -o $@

# The protocol's unit tests: the codec, and the dispatcher on the same machine
# with its management port in memory (tests/hv/host_port.h).
$(BUILD)/mgmt/proto_test: $(addprefix $(BUILD)/mgmt/san/,$(HV_HOST_SRCS:.c=.o) \
		tests/hv/host_port.o tools/ptctl/inflate.o tests/proto/proto_test.o)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) $(SAN_CFLAGS) $^ -lz -o $@

$(BUILD)/mgmt/ptinject: $(addprefix $(BUILD)/mgmt/san/,tools/ptctl/client.o tools/ptctl/inflate.o \
		$(MGMT_CODEC_SRCS:.c=.o) tests/proto/ptinject.o)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) $(SAN_CFLAGS) $^ -lz -o $@

# The benchmark is built without sanitizers: it measures bytes, and speed.
$(BUILD)/mgmt/bench_proto: $(addprefix $(BUILD)/mgmt/host/,$(HV_HOST_SRCS:.c=.o) \
		tests/hv/host_port.o tests/proto/bench_proto.o)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) $^ -o $@

HOST_TESTS += $(BUILD)/mgmt/proto_test

# The DEFLATE coder (hv/proto/deflate.c) against zlib's inflate, through the host's
# decoder (tools/ptctl/inflate.c): every length, block boundary and kind of page.
$(BUILD)/mgmt/deflate_test: $(addprefix $(BUILD)/mgmt/san/,$(MGMT_CODEC_SRCS:.c=.o) \
		tools/ptctl/inflate.o tests/proto/deflate_test.o)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) $(SAN_CFLAGS) $^ -lz -o $@

HOST_TESTS += $(BUILD)/mgmt/deflate_test

# Wire bytes of guest memory (a raw image) with each MEM_READ encoding, through the
# dispatcher; every reply checked (tests/snapshot/bench_line.py, docs/snapshot.md).
$(BUILD)/mgmt/codec_bytes: $(addprefix $(BUILD)/mgmt/host/,$(HV_HOST_SRCS:.c=.o) \
		tests/hv/host_port.o tools/ptctl/inflate.o tests/proto/codec_bytes.o)
	$(Q)$(HOST_CC) $(HOST_CFLAGS) $^ -lz -o $@
TEST_DEPS += $(BUILD)/mgmt/codec_bytes

# ptctl end to end against the simulator (needs socat and python3).
TEST_DEPS += $(BUILD)/mgmt/ptsim $(BUILD)/mgmt/ptctl-san $(BUILD)/mgmt/ptinject
TEST_SCRIPTS += tests/proto/e2e.sh

# Bytes on the wire per dirty page (sparse, clustered, dense) and bulk efficiency.
TEST_DEPS += $(BUILD)/mgmt/bench_proto
BENCH_STEPS += $(BUILD)/mgmt/bench_proto

# The same against the real hypervisor in QEMU (TCG, SVM + NPT) with Linux as its guest;
# the ESP image and kernel come from tests/images (TEST_DEPS there).
TEST_SCRIPTS += tests/proto/test_qemu_mgmt.sh

# Command latency (p50/p99) from the real hypervisor in QEMU, guest idle and busy.
BENCH_STEPS += tests/proto/bench_latency.sh

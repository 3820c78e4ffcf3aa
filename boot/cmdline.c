/* SPDX-License-Identifier: MIT */
/*
 * Command line and chaining (syntax in boot/efi_main.c):
 *     pagetrail.efi [--no-mgmt-tick] [--mgmt-step-pages N] [--cow-reserve-mib N]
 *                   [--mgmt-uart SPEC] [--emulator-exit auto|on|off] [--] [PATH [ARGS...]]
 * LoadOptions are UCS-2, argv[0] first (as the UEFI shell and the test
 * loader pass them). A boot manager entry may pass binary optional data
 * instead: anything that is not printable text is ignored.
 */
#include "boot/boot.h"

#include "hv/log.h"

static bool is_space(CHAR16 c)
{
	return c == L' ' || c == L'\t';
}

/*
 * A decimal number token at opt[*i..] (ending at a space or len) into *out;
 * *i moves past it. False (nothing consumed) if it is not one or overflows.
 */
static bool parse_u64(const CHAR16 *opt, UINTN *i, UINTN len, u64 *out)
{
	UINTN k = *i;
	u64 v = 0;

	for (; k < len && !is_space(opt[k]); k++) {
		if (opt[k] < L'0' || opt[k] > L'9' || v > (~0ull - 9) / 10)
			return false;
		v = v * 10 + (u64)(opt[k] - L'0');
	}
	if (k == *i)
		return false;
	*out = v;
	*i = k;
	return true;
}

/* The token at opt[i..] (ending at a space or len) is exactly `word`. */
static bool token_is(const CHAR16 *opt, UINTN i, UINTN len, const char *word)
{
	UINTN k;

	for (k = 0; word[k]; k++)
		if (i + k >= len || opt[i + k] != (CHAR16)word[k])
			return false;
	return i + k == len || is_space(opt[i + k]);
}

/*
 * The token at opt[*i..] as ASCII into out (size bytes with the NUL); *i
 * moves past it. False if there is none or it does not fit.
 */
static bool token_copy(const CHAR16 *opt, UINTN *i, UINTN len, char *out, UINTN size)
{
	UINTN k;

	for (k = 0; *i + k < len && !is_space(opt[*i + k]); k++) {
		if (k + 1 >= size)
			return false;
		out[k] = (char)opt[*i + k];
	}
	if (!k)
		return false;
	out[k] = 0;
	*i += k;
	return true;
}

static bool str_eq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static void skip_spaces(const CHAR16 *opt, UINTN *i, UINTN len)
{
	while (*i < len && is_space(opt[*i]))
		(*i)++;
}

int boot_parse_cmdline(EFI_LOADED_IMAGE *li, struct boot_cmdline *cmd)
{
	const CHAR16 *opt = li->LoadOptions;
	UINTN n = li->LoadOptionsSize / sizeof(CHAR16), i = 0, start, len;
	CHAR16 *copy;

	cmd->no_mgmt_tick = false;
	cmd->mgmt_step_pages = 0;
	cmd->cow_reserve_mib = BOOT_COW_RESERVE_DEFAULT;
	cmd->emulator_exit = BOOT_EMULATOR_EXIT_AUTO;
	cmd->mgmt_uart[0] = 0;
	cmd->path = NULL;
	cmd->child_opts = NULL;
	cmd->child_opts_size = 0;
	if (!opt || !n)
		return 0;
	for (len = 0; len < n && opt[len]; len++)
		if (opt[len] < 0x20 || opt[len] > 0x7e) {
			hv_log("boot: load options are not text; ignored");
			return 0;
		}
	/* argv[0] */
	while (i < len && is_space(opt[i]))
		i++;
	while (i < len && !is_space(opt[i]))
		i++;
	/* Options: tokens starting with "--", up to "--" or the first other token (PATH). */
	for (;;) {
		while (i < len && is_space(opt[i]))
			i++;
		if (i + 1 >= len || opt[i] != L'-' || opt[i + 1] != L'-')
			break;
		if (token_is(opt, i, len, "--")) {
			i += 2;
			while (i < len && is_space(opt[i]))
				i++;
			break;
		}
		if (token_is(opt, i, len, "--no-mgmt-tick")) {
			cmd->no_mgmt_tick = true;
			i += sizeof("--no-mgmt-tick") - 1;
			continue;
		}
		if (token_is(opt, i, len, "--mgmt-step-pages")) {
			i += sizeof("--mgmt-step-pages") - 1;
			while (i < len && is_space(opt[i]))
				i++;
			if (!parse_u64(opt, &i, len, &cmd->mgmt_step_pages) ||
			    !cmd->mgmt_step_pages) {
				hv_log("boot: --mgmt-step-pages wants a number of pages above 0");
				return -1;
			}
			continue;
		}
		if (token_is(opt, i, len, "--cow-reserve-mib")) {
			i += sizeof("--cow-reserve-mib") - 1;
			while (i < len && is_space(opt[i]))
				i++;
			if (!parse_u64(opt, &i, len, &cmd->cow_reserve_mib) ||
			    cmd->cow_reserve_mib > (1ull << 20)) {
				hv_log(
				    "boot: --cow-reserve-mib wants a number of MiB (0 to 1048576)");
				return -1;
			}
			continue;
		}
		if (token_is(opt, i, len, "--mgmt-uart")) {
			i += sizeof("--mgmt-uart") - 1;
			skip_spaces(opt, &i, len);
			/* Checked by hv_init (hv/mgmt_uart.c), which says what is wrong. */
			if (!token_copy(opt, &i, len, cmd->mgmt_uart, sizeof(cmd->mgmt_uart))) {
				hv_log("boot: --mgmt-uart wants a UART (com1..com4, io,PORT, "
				       "mmio[16|32],ADDR, pci,BB:DD.F or spcr, then ,BAUD), "
				       "at most %u characters",
				       (unsigned)sizeof(cmd->mgmt_uart) - 1);
				return -1;
			}
			continue;
		}
		if (token_is(opt, i, len, "--emulator-exit")) {
			char word[8];

			i += sizeof("--emulator-exit") - 1;
			skip_spaces(opt, &i, len);
			if (!token_copy(opt, &i, len, word, sizeof(word)))
				word[0] = 0;
			if (str_eq(word, "auto")) {
				cmd->emulator_exit = BOOT_EMULATOR_EXIT_AUTO;
			} else if (str_eq(word, "on")) {
				cmd->emulator_exit = BOOT_EMULATOR_EXIT_ON;
			} else if (str_eq(word, "off")) {
				cmd->emulator_exit = BOOT_EMULATOR_EXIT_OFF;
			} else {
				hv_log("boot: --emulator-exit wants auto, on or off");
				return -1;
			}
			continue;
		}
		{
			char bad[32];
			UINTN k;

			for (k = 0; k + 1 < sizeof(bad) && i + k < len && !is_space(opt[i + k]);
			     k++)
				bad[k] = (char)opt[i + k];
			bad[k] = 0;
			hv_log("boot: unknown option %s (pagetrail.efi [--no-mgmt-tick] "
			       "[--mgmt-step-pages N] [--cow-reserve-mib N] [--mgmt-uart SPEC] "
			       "[--emulator-exit auto|on|off] [--] [PATH [ARGS...]])",
			       bad);
		}
		return -1;
	}
	if (i == len)
		return 0;
	start = i;
	copy = AllocatePool((len - start + 1) * sizeof(CHAR16));
	if (!copy)
		return 0;
	for (i = start; i < len; i++)
		copy[i - start] = opt[i];
	copy[len - start] = 0;
	cmd->child_opts = copy;
	cmd->child_opts_size = (UINT32)((len - start + 1) * sizeof(CHAR16));
	/* PATH: the first token, NUL-terminated in its own copy. */
	for (i = 0; copy[i] && !is_space(copy[i]); i++)
		;
	cmd->path = AllocatePool((i + 1) * sizeof(CHAR16));
	if (!cmd->path)
		return 0;
	CopyMem(cmd->path, copy, i * sizeof(CHAR16));
	cmd->path[i] = 0;
	return 0;
}

EFI_STATUS boot_chain(EFI_HANDLE image, EFI_LOADED_IMAGE *li, const struct boot_cmdline *cmd)
{
	EFI_DEVICE_PATH *dp = FileDevicePath(li->DeviceHandle, cmd->path);
	EFI_LOADED_IMAGE *child_li = NULL;
	EFI_HANDLE child = NULL;
	EFI_STATUS st;
	char path[128];
	UINTN i;

	for (i = 0; i + 1 < sizeof(path) && cmd->path[i]; i++)
		path[i] = (char)cmd->path[i];
	path[i] = 0;
	if (!dp) {
		hv_log("boot: chain: no device path for %s", path);
		return EFI_NOT_FOUND;
	}
	st = BS->LoadImage(FALSE, image, dp, NULL, 0, &child);
	if (EFI_ERROR(st)) {
		hv_log("boot: chain: cannot load %s: %lx", path, (u64)st);
		Print(L"pagetrail: cannot load %s: %r\n", cmd->path, st);
		return st;
	}
	st = BS->HandleProtocol(child, &LoadedImageProtocol, (void **)&child_li);
	if (EFI_ERROR(st))
		return st;
	child_li->LoadOptions = cmd->child_opts;
	child_li->LoadOptionsSize = cmd->child_opts_size;
	hv_log("boot: chain: starting %s", path);
	st = BS->StartImage(child, NULL, NULL);
	hv_log("boot: chain: %s returned %lx", path, (u64)st);
	return st;
}

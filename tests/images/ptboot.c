/*
 * ptboot.efi: the test images' \EFI\BOOT\BOOTX64.EFI. It reads one command line from
 * \pagetrail\boot.cfg on its own volume and starts that program with that command line
 * as its load options, the way the UEFI shell would have:
 *
 *   \EFI\pagetrail\pagetrail.efi \EFI\Linux\vmlinuz.efi initrd=\EFI\Linux\initrd.img ...
 *
 * The removable-media boot path gives BOOTX64.EFI no load options, and a Boot#### entry
 * would have to be written into the firmware's variable store; a one-line file is what a
 * test can change with mcopy. Lines starting with '#' and blank lines are skipped; the
 * first other line is the command. The load options are the whole line, argv[0]
 * included, NUL-terminated UCS-2 (the shell's convention).
 */
#include <efi.h>
#include <efilib.h>

#define CFG_PATH L"\\pagetrail\\boot.cfg"
#define CFG_MAX	 4096

static EFI_STATUS read_cfg(EFI_HANDLE device, CHAR8 *buf, UINTN *len)
{
	EFI_FILE_HANDLE root = LibOpenRoot(device);
	EFI_FILE_HANDLE file;
	EFI_STATUS status;

	if (!root)
		return EFI_NOT_FOUND;
	status = uefi_call_wrapper(root->Open, 5, root, &file, CFG_PATH, EFI_FILE_MODE_READ, 0);
	if (EFI_ERROR(status))
		goto out_root;
	status = uefi_call_wrapper(file->Read, 3, file, len, buf);
	uefi_call_wrapper(file->Close, 1, file);
out_root:
	uefi_call_wrapper(root->Close, 1, root);
	return status;
}

/* Finds the first command line in buf[0..len) and returns it NUL-terminated, or NULL. */
static CHAR8 *first_command(CHAR8 *buf, UINTN len)
{
	UINTN i = 0;

	while (i < len) {
		UINTN start = i, end;

		while (i < len && buf[i] != '\n')
			i++;
		end = i++;
		while (end > start &&
		       (buf[end - 1] == '\r' || buf[end - 1] == ' ' || buf[end - 1] == '\t'))
			end--;
		while (start < end && (buf[start] == ' ' || buf[start] == '\t'))
			start++;
		if (start == end || buf[start] == '#')
			continue;
		buf[end] = 0;
		return buf + start;
	}
	return NULL;
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
	static CHAR8 cfg[CFG_MAX + 1];
	static CHAR16 line[CFG_MAX + 1];
	static CHAR16 path[CFG_MAX + 1];
	EFI_LOADED_IMAGE *self, *child_info;
	EFI_DEVICE_PATH *dp;
	EFI_HANDLE child;
	UINTN len = CFG_MAX, n, i;
	EFI_STATUS status;
	CHAR8 *cmd;

	InitializeLib(image, systab);
	status =
	    uefi_call_wrapper(BS->HandleProtocol, 3, image, &LoadedImageProtocol, (void **)&self);
	if (EFI_ERROR(status)) {
		Print(L"ptboot: no LoadedImage protocol: %r\n", status);
		return status;
	}
	status = read_cfg(self->DeviceHandle, cfg, &len);
	if (EFI_ERROR(status)) {
		Print(L"ptboot: cannot read %s: %r\n", CFG_PATH, status);
		return status;
	}
	cmd = first_command(cfg, len);
	if (!cmd) {
		Print(L"ptboot: %s holds no command\n", CFG_PATH);
		return EFI_INVALID_PARAMETER;
	}
	for (n = 0; cmd[n]; n++)
		line[n] = cmd[n];
	line[n] = 0;
	for (i = 0; i < n && line[i] != ' ' && line[i] != '\t'; i++)
		path[i] = line[i];
	path[i] = 0;

	dp = FileDevicePath(self->DeviceHandle, path);
	if (!dp) {
		Print(L"ptboot: no device path for %s\n", path);
		return EFI_OUT_OF_RESOURCES;
	}
	status = uefi_call_wrapper(BS->LoadImage, 6, FALSE, image, dp, NULL, 0, &child);
	FreePool(dp);
	if (EFI_ERROR(status)) {
		Print(L"ptboot: cannot load %s: %r\n", path, status);
		return status;
	}
	status = uefi_call_wrapper(BS->HandleProtocol, 3, child, &LoadedImageProtocol,
				   (void **)&child_info);
	if (EFI_ERROR(status)) {
		Print(L"ptboot: loaded image has no LoadedImage protocol: %r\n", status);
		return status;
	}
	child_info->LoadOptions = line;
	child_info->LoadOptionsSize = (UINT32)((n + 1) * sizeof(CHAR16));

	Print(L"ptboot: starting %s\n", line);
	status = uefi_call_wrapper(BS->StartImage, 3, child, NULL, NULL);
	Print(L"ptboot: %s returned %r\n", path, status);
	return status;
}

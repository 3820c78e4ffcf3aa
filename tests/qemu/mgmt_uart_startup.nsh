fs0:
\EFI\pagetrail\pagetrail.efi --mgmt-uart pci,00:07.0
echo "shell: pagetrail.efi with no UART at 00:07.0 returned %lasterror%"
\EFI\pagetrail\pagetrail.efi --mgmt-uart pci,00:06.0
echo "shell: pagetrail.efi returned %lasterror%"

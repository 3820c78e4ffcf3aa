fs0:
\EFI\pagetrail\pagetrail.efi
echo "shell: pagetrail.efi returned %lasterror%"
\EFI\tests\probe.efi

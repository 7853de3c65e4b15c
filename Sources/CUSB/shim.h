// Thin shim over the system's libusb-1.0 (Debian package libusb-1.0-0-dev).
// Only the header is included here; Swift calls the C API directly.
#pragma once
#include <libusb-1.0/libusb.h>

// Thin shim over the system's libmodbus (Debian package libmodbus-dev).
// Only the header is included here; Swift calls the C API directly.
#pragma once
#include <modbus/modbus.h>

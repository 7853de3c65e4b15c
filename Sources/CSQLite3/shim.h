// Thin shim over the system's sqlite3 (Debian package libsqlite3-dev).
// Only the header is included here; Swift calls the C API directly.
#pragma once
#include <sqlite3.h>

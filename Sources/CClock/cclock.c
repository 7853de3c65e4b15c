/* Header-only shim; SwiftPM needs one C source in a C target. */
#include "cclock.h"

// Thin shim over the system's libmosquitto (Debian packages libmosquitto-dev to build, libmosquitto1 to run).
//
// The library is loaded on first use (dlopen of libmosquitto.so.1), not at start: libmosquitto brings
// OpenSSL's libssl and libcrypto, whose loading and initialisation keep about 2 MiB resident in every
// daemon, and most gateways upload over HTTPS and never speak MQTT (docs/benchmarks.md). Every function
// gatewayd uses is defined in mosquitto_lazy.c with the prototype of <mosquitto.h>, so a mismatch with
// the installed header is a compile error.
#pragma once
#include <mosquitto.h>

/// NULL when libmosquitto is loaded (loading it on the first call), else why it could not be: the
/// dynamic loader's message. Ask before the first mosquitto_* call; without the library the functions
/// return MOSQ_ERR_NOT_SUPPORTED, NULL or do nothing.
const char *gatewayd_mosquitto_unavailable(void);

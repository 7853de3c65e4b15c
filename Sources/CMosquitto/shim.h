// Thin shim over the system's libmosquitto (Debian package libmosquitto-dev).
#pragma once
#include <mosquitto.h>

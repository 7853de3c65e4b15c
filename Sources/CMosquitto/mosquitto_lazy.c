// libmosquitto, loaded on first use; see include/CMosquitto.h for why.
#include "CMosquitto.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

static void *library;
static char failure[512];
static pthread_once_t loaded = PTHREAD_ONCE_INIT;

static void load(void) {
    // RTLD_LOCAL: its OpenSSL symbols stay out of the global scope (swift-nio-ssl brings its own BoringSSL).
    library = dlopen("libmosquitto.so.1", RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        const char *why = dlerror();
        snprintf(failure, sizeof failure, "%s (install the libmosquitto1 package)", why ? why : "libmosquitto.so.1 not found");
    }
}

const char *gatewayd_mosquitto_unavailable(void) {
    pthread_once(&loaded, load);
    return library == NULL ? failure : NULL;
}

// The library's function named `name`, looked up once; NULL without the library. The pointer is
// published with release/acquire so a second thread sees a complete value.
static void *resolve(void **slot, const char *name) {
    void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (f != NULL) return f;
    pthread_once(&loaded, load);
    if (library == NULL) return NULL;
    f = dlsym(library, name);
    __atomic_store_n(slot, f, __ATOMIC_RELEASE);
    return f;
}

// FORWARD(return type, name, value without the library, (parameters), (arguments))
#define FORWARD(type, name, fallback, params, args)                         \
    type name params {                                                      \
        static void *slot;                                                  \
        type (*f) params = (type (*) params)resolve(&slot, #name);          \
        return f ? f args : (fallback);                                     \
    }
#define FORWARD_VOID(name, params, args)                                    \
    void name params {                                                      \
        static void *slot;                                                  \
        void (*f) params = (void (*) params)resolve(&slot, #name);          \
        if (f) f args;                                                      \
    }

FORWARD(int, mosquitto_lib_init, MOSQ_ERR_NOT_SUPPORTED, (void), ())
FORWARD(struct mosquitto *, mosquitto_new, NULL, (const char *id, bool clean_session, void *obj), (id, clean_session, obj))
FORWARD_VOID(mosquitto_destroy, (struct mosquitto *mosq), (mosq))
FORWARD(int, mosquitto_connect_bind_v5, MOSQ_ERR_NOT_SUPPORTED,
        (struct mosquitto *mosq, const char *host, int port, int keepalive, const char *bind_address, const mosquitto_property *properties),
        (mosq, host, port, keepalive, bind_address, properties))
FORWARD(int, mosquitto_disconnect, MOSQ_ERR_NOT_SUPPORTED, (struct mosquitto *mosq), (mosq))
FORWARD(int, mosquitto_disconnect_v5, MOSQ_ERR_NOT_SUPPORTED,
        (struct mosquitto *mosq, int reason_code, const mosquitto_property *properties), (mosq, reason_code, properties))
FORWARD(int, mosquitto_reconnect, MOSQ_ERR_NOT_SUPPORTED, (struct mosquitto *mosq), (mosq))
FORWARD(int, mosquitto_loop, MOSQ_ERR_NOT_SUPPORTED, (struct mosquitto *mosq, int timeout, int max_packets), (mosq, timeout, max_packets))
FORWARD(int, mosquitto_socket, -1, (struct mosquitto *mosq), (mosq))
FORWARD(int, mosquitto_int_option, MOSQ_ERR_NOT_SUPPORTED, (struct mosquitto *mosq, enum mosq_opt_t option, int value), (mosq, option, value))
FORWARD(int, mosquitto_threaded_set, MOSQ_ERR_NOT_SUPPORTED, (struct mosquitto *mosq, bool threaded), (mosq, threaded))
FORWARD(int, mosquitto_publish_v5, MOSQ_ERR_NOT_SUPPORTED,
        (struct mosquitto *mosq, int *mid, const char *topic, int payloadlen, const void *payload, int qos, bool retain, const mosquitto_property *properties),
        (mosq, mid, topic, payloadlen, payload, qos, retain, properties))
FORWARD(int, mosquitto_subscribe_v5, MOSQ_ERR_NOT_SUPPORTED,
        (struct mosquitto *mosq, int *mid, const char *sub, int qos, int options, const mosquitto_property *properties),
        (mosq, mid, sub, qos, options, properties))
FORWARD(int, mosquitto_will_set, MOSQ_ERR_NOT_SUPPORTED,
        (struct mosquitto *mosq, const char *topic, int payloadlen, const void *payload, int qos, bool retain),
        (mosq, topic, payloadlen, payload, qos, retain))
FORWARD(int, mosquitto_username_pw_set, MOSQ_ERR_NOT_SUPPORTED,
        (struct mosquitto *mosq, const char *username, const char *password), (mosq, username, password))
FORWARD(int, mosquitto_tls_set, MOSQ_ERR_NOT_SUPPORTED,
        (struct mosquitto *mosq, const char *cafile, const char *capath, const char *certfile, const char *keyfile,
         int (*pw_callback)(char *buf, int size, int rwflag, void *userdata)),
        (mosq, cafile, capath, certfile, keyfile, pw_callback))
FORWARD(int, mosquitto_tls_insecure_set, MOSQ_ERR_NOT_SUPPORTED, (struct mosquitto *mosq, bool value), (mosq, value))
FORWARD(int, mosquitto_tls_opts_set, MOSQ_ERR_NOT_SUPPORTED,
        (struct mosquitto *mosq, int cert_reqs, const char *tls_version, const char *ciphers), (mosq, cert_reqs, tls_version, ciphers))
FORWARD(int, mosquitto_property_add_byte, MOSQ_ERR_NOT_SUPPORTED,
        (mosquitto_property **proplist, int identifier, uint8_t value), (proplist, identifier, value))
FORWARD(int, mosquitto_property_add_int32, MOSQ_ERR_NOT_SUPPORTED,
        (mosquitto_property **proplist, int identifier, uint32_t value), (proplist, identifier, value))
FORWARD(int, mosquitto_property_add_string, MOSQ_ERR_NOT_SUPPORTED,
        (mosquitto_property **proplist, int identifier, const char *value), (proplist, identifier, value))
FORWARD(int, mosquitto_property_add_string_pair, MOSQ_ERR_NOT_SUPPORTED,
        (mosquitto_property **proplist, int identifier, const char *name, const char *value), (proplist, identifier, name, value))
FORWARD_VOID(mosquitto_property_free_all, (mosquitto_property **properties), (properties))
FORWARD(const char *, mosquitto_strerror, "libmosquitto is not installed", (int mosq_errno), (mosq_errno))
FORWARD(const char *, mosquitto_reason_string, "libmosquitto is not installed", (int reason_code), (reason_code))
FORWARD_VOID(mosquitto_user_data_set, (struct mosquitto *mosq, void *obj), (mosq, obj))
FORWARD_VOID(mosquitto_log_callback_set,
             (struct mosquitto *mosq, void (*on_log)(struct mosquitto *, void *, int, const char *)), (mosq, on_log))
FORWARD_VOID(mosquitto_connect_v5_callback_set,
             (struct mosquitto *mosq, void (*on_connect)(struct mosquitto *, void *, int, int, const mosquitto_property *)),
             (mosq, on_connect))
FORWARD_VOID(mosquitto_disconnect_v5_callback_set,
             (struct mosquitto *mosq, void (*on_disconnect)(struct mosquitto *, void *, int, const mosquitto_property *)),
             (mosq, on_disconnect))
FORWARD_VOID(mosquitto_message_v5_callback_set,
             (struct mosquitto *mosq, void (*on_message)(struct mosquitto *, void *, const struct mosquitto_message *, const mosquitto_property *)),
             (mosq, on_message))
FORWARD_VOID(mosquitto_publish_v5_callback_set,
             (struct mosquitto *mosq, void (*on_publish)(struct mosquitto *, void *, int, int, const mosquitto_property *)),
             (mosq, on_publish))
FORWARD_VOID(mosquitto_subscribe_v5_callback_set,
             (struct mosquitto *mosq, void (*on_subscribe)(struct mosquitto *, void *, int, int, const int *, const mosquitto_property *)),
             (mosq, on_subscribe))

// Used by the test suite's MQTT client (Tests/UplinkTests), which goes through this shim too.
FORWARD(int, mosquitto_connect, MOSQ_ERR_NOT_SUPPORTED,
        (struct mosquitto *mosq, const char *host, int port, int keepalive), (mosq, host, port, keepalive))
FORWARD(int, mosquitto_loop_start, MOSQ_ERR_NOT_SUPPORTED, (struct mosquitto *mosq), (mosq))
FORWARD(int, mosquitto_loop_stop, MOSQ_ERR_NOT_SUPPORTED, (struct mosquitto *mosq, bool force), (mosq, force))
FORWARD(int, mosquitto_publish, MOSQ_ERR_NOT_SUPPORTED,
        (struct mosquitto *mosq, int *mid, const char *topic, int payloadlen, const void *payload, int qos, bool retain),
        (mosq, mid, topic, payloadlen, payload, qos, retain))
FORWARD(int, mosquitto_subscribe, MOSQ_ERR_NOT_SUPPORTED,
        (struct mosquitto *mosq, int *mid, const char *sub, int qos), (mosq, mid, sub, qos))
FORWARD(int, mosquitto_reconnect_delay_set, MOSQ_ERR_NOT_SUPPORTED,
        (struct mosquitto *mosq, unsigned int reconnect_delay, unsigned int reconnect_delay_max, bool reconnect_exponential_backoff),
        (mosq, reconnect_delay, reconnect_delay_max, reconnect_exponential_backoff))
FORWARD_VOID(mosquitto_connect_callback_set,
             (struct mosquitto *mosq, void (*on_connect)(struct mosquitto *, void *, int)), (mosq, on_connect))
FORWARD_VOID(mosquitto_disconnect_callback_set,
             (struct mosquitto *mosq, void (*on_disconnect)(struct mosquitto *, void *, int)), (mosq, on_disconnect))
FORWARD_VOID(mosquitto_message_callback_set,
             (struct mosquitto *mosq, void (*on_message)(struct mosquitto *, void *, const struct mosquitto_message *)),
             (mosq, on_message))

#ifndef GATEWAYD_CTHREAD_H
#define GATEWAYD_CTHREAD_H

/* eventfd(2) and pthread_setname_np(3), which Glibc's Swift module does not export (they need
   _GNU_SOURCE or <sys/eventfd.h>). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sys/eventfd.h>

/* A non-blocking, close-on-exec eventfd starting at 0; -1 with errno set on failure. */
static inline int cthread_eventfd(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

/* Names the calling thread (at most 15 bytes are kept by the caller); 0 or an error number. */
static inline int cthread_set_name(const char *name) {
    return pthread_setname_np(pthread_self(), name);
}

#endif

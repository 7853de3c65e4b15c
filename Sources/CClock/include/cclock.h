#ifndef GATEWAYD_CCLOCK_H
#define GATEWAYD_CCLOCK_H

/* The kernel's NTP state, read-only: Glibc's Swift module does not export <sys/timex.h>. */
#include <sys/timex.h>

/* 1: the kernel clock is synchronised (an NTP client disciplines it); 0: not; -1: adjtimex failed. */
static inline int cclock_kernel_synchronised(void) {
    struct timex t = {0};
    int state = adjtimex(&t);
    if (state == -1) return -1;
    return (state != TIME_ERROR && !(t.status & STA_UNSYNC)) ? 1 : 0;
}

#endif

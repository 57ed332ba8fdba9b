#define _GNU_SOURCE
#include "zw_privileges.h"

#include <dirent.h>
#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* SIGPROF: libdispatch's worker threads block every asynchronous signal but SIGPROF (for
 * profilers), SIGPIPE and SIGSYS, so a real-time signal would never reach them. zonewall runs no
 * profiling timer; the handler stays installed afterwards, so a late SIGPROF is harmless. */
#define ZW_PRIVILEGES_SIGNAL SIGPROF

/* ThreadSanitizer runs a background thread of its own that blocks every signal, so it would
 * never run the handler and keep all its capabilities (the drop then fails with ETIMEDOUT).
 * __sanitizer_sandbox_on_notify is the sanitizers' hook for a process about to sandbox itself:
 * TSan stops and joins that thread (StopBackgroundThread, tsan_rtl.cpp). Not in other builds. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#include <sanitizer/common_interface_defs.h>
#define ZW_UNDER_TSAN 1
#endif
#endif

static unsigned int keep_mask;                /* the sets after the drop: CAP_NET_ADMIN or nothing */
static atomic_int done_count;                 /* handlers that ran */
static atomic_int failures;                   /* handlers whose capset failed */

/* Async-signal-safe: only system calls. */
static int drop_on_this_thread(void) {
    for (int cap = 0; cap < 64; cap++) {
        if (cap == CAP_NET_ADMIN) continue;
        /* EINVAL: past the kernel's last capability. EPERM: no CAP_SETPCAP, nothing to drop. */
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL) break;
    }
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    data[0].permitted = keep_mask;
    data[0].effective = keep_mask;
    if (syscall(SYS_capset, &header, data) != 0) return errno;
    return 0;
}

static void handler(int sig) {
    (void)sig;
    int saved = errno;
    if (drop_on_this_thread() != 0) atomic_fetch_add(&failures, 1);
    atomic_fetch_add(&done_count, 1);
    errno = saved;
}

int zw_thread_capabilities(int tid, unsigned long long *effective, unsigned long long *permitted) {
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, tid };
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) != 0) return errno;
    *effective = ((unsigned long long)data[1].effective << 32) | data[0].effective;
    *permitted = ((unsigned long long)data[1].permitted << 32) | data[0].permitted;
    return 0;
}

int zw_keep_only_net_admin(void) {
    unsigned long long eff = 0, prm = 0;
    int rc = zw_thread_capabilities(0, &eff, &prm);
    if (rc != 0) return rc;
    keep_mask = (unsigned int)(prm & (1ull << CAP_NET_ADMIN));

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(ZW_PRIVILEGES_SIGNAL, &sa, NULL) != 0) return errno;
#ifdef ZW_UNDER_TSAN
    __sanitizer_sandbox_on_notify(NULL);
#endif

    rc = drop_on_this_thread();
    pid_t self = (pid_t)syscall(SYS_gettid);
    pid_t pid = getpid();
    /* Threads started meanwhile inherit from their creator, which may not have dropped yet:
     * scan until a pass finds no thread that still holds more than it should. */
    for (int pass = 0; rc == 0 && pass < 20; pass++) {
        DIR *dir = opendir("/proc/self/task");
        if (!dir) { rc = errno; break; }
        int signalled = 0;
        atomic_store(&done_count, 0);
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (e->d_name[0] == '.') continue;
            pid_t tid = (pid_t)atoi(e->d_name);
            if (tid == self) continue;
            unsigned long long te = 0, tp = 0;
            if (zw_thread_capabilities(tid, &te, &tp) != 0) continue;  /* exited */
            if (te == keep_mask && tp == keep_mask) continue;
            if (syscall(SYS_tgkill, pid, tid, ZW_PRIVILEGES_SIGNAL) == 0) signalled++;
        }
        closedir(dir);
        if (signalled == 0) break;
        /* Wait for the handlers, at most a second per pass. */
        for (int i = 0; i < 1000 && atomic_load(&done_count) < signalled; i++) {
            struct timespec ms = { 0, 1000000 };
            nanosleep(&ms, NULL);
        }
        if (pass == 19) rc = ETIMEDOUT;
    }
    if (rc == 0 && atomic_load(&failures) != 0) rc = EPERM;
    /* The handler stays: a signal still queued for a slow thread must not find the default
     * action, which ends the process. Running it again changes nothing. */
    return rc;
}

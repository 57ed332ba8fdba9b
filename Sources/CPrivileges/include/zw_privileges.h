#ifndef ZONEWALL_PRIVILEGES_H
#define ZONEWALL_PRIVILEGES_H

/* Drops every capability but CAP_NET_ADMIN from the permitted, effective, inheritable, ambient
 * and bounding sets, and sets PR_SET_NO_NEW_PRIVS, on EVERY thread of the process.
 *
 * Linux keeps capabilities per thread (capset(2) changes only the caller), so the change is
 * broadcast to the other threads with a signal (SIGPROF), as libpsx and glibc's setxid do. Returns 0, or
 * an errno value (the calling thread's capset failure, or ETIMEDOUT if a thread never ran its
 * handler). CAP_NET_ADMIN is kept only if it was permitted. */
int zw_keep_only_net_admin(void);

/* The effective and permitted sets of thread `tid` of this process, as /proc shows them. */
int zw_thread_capabilities(int tid, unsigned long long *effective, unsigned long long *permitted);

#endif

#ifndef ZONEWALL_NETWORK_NAMESPACE_H
#define ZONEWALL_NETWORK_NAMESPACE_H

/* setns(fd, CLONE_NEWNET): moves the calling thread into the network namespace open at fd.
 * glibc declares setns() and CLONE_NEWNET only under _GNU_SOURCE, which Swift's Glibc module
 * does not define; this file is compiled with it. Returns 0, or -1 with errno set. */
int zw_enter_network_namespace(int fd);

#endif

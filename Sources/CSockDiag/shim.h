// sock_diag (NETLINK_SOCK_DIAG, inet_diag) over libmnl. Only the SocketDiag module imports this.
#ifndef ZONEWALL_CSOCKDIAG_H
#define ZONEWALL_CSOCKDIAG_H
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/inet_diag.h>
#include <libmnl/libmnl.h>

/* glibc declares setns() only under _GNU_SOURCE, which Swift's Glibc module does not set. */
#include <sched.h>
int setns(int fd, int nstype);
#define ZW_SD_CLONE_NEWNET 0x40000000
#endif

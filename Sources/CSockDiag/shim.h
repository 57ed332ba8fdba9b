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
#endif

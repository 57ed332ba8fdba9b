// libnetfilter_conntrack (ctnetlink). Only the Conntrack module imports this.
#ifndef ZONEWALL_CCONNTRACK_H
#define ZONEWALL_CCONNTRACK_H
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

/* glibc declares setns() only under _GNU_SOURCE, which Swift's Glibc module does not set. */
#include <sched.h>
int setns(int fd, int nstype);
#define ZW_CT_CLONE_NEWNET 0x40000000
#endif

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
#endif

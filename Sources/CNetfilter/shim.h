// The C side of zonewall: libnftnl, libmnl and the kernel's netfilter uapi.
// Only the Netfilter module imports this.
#ifndef ZONEWALL_CNETFILTER_H
#define ZONEWALL_CNETFILTER_H
#include <stdint.h>
/* glibc first, so the uapi headers (linux/libc-compat.h) do not redefine in_addr & co. */
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/batch.h>
#include <libnftnl/table.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/expr.h>
#include <libnftnl/set.h>
#include <libnftnl/gen.h>
#include <libnftnl/udata.h>

/* glibc declares sched_getaffinity() only under _GNU_SOURCE, which Swift's Glibc module does
   not set. */
#include <sched.h>
int sched_getaffinity(pid_t pid, size_t cpusetsize, cpu_set_t *mask);
#endif

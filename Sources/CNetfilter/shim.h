// The C side of zonewall: libnftnl, libmnl and the kernel's netfilter uapi.
// Only the Netfilter module imports this.
#ifndef ZONEWALL_CNETFILTER_H
#define ZONEWALL_CNETFILTER_H
#include <stdint.h>
#include <sys/socket.h>
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
#endif

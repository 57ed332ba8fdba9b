// validation-cost TABLE SET CHAIN|accept N: times N commits, each adding one element to SET of
// `table inet TABLE` (keys 2001:db8:3::1, ::2, ...) whose datum is `jump CHAIN` or `accept`,
// then deletes them again; prints the median commit time of the additions in ms. Used by
// scripts/validation-cost, inside a network namespace of its own.
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// One batch: begin, one NEWSETELEM or DELSETELEM of element `i`, end; returns the time from
// send to the kernel's acknowledgement, or -1.
static double commit(struct mnl_socket *nl, const char *table, const char *set, const char *chain, int i, int delete) {
    static char buf[1 << 16];
    static unsigned seq;
    struct nftnl_set *s = nftnl_set_alloc();
    nftnl_set_set_str(s, NFTNL_SET_TABLE, table);
    nftnl_set_set_str(s, NFTNL_SET_NAME, set);
    struct nftnl_set_elem *e = nftnl_set_elem_alloc();
    char text[64];
    unsigned char key[16];
    snprintf(text, sizeof text, "2001:db8:3::%x", i + 1);
    inet_pton(AF_INET6, text, key);
    nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, sizeof key);
    if (!delete) {
        if (strcmp(chain, "accept") == 0) {
            nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_VERDICT, NF_ACCEPT);
        } else {
            nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_VERDICT, NFT_JUMP);
            nftnl_set_elem_set_str(e, NFTNL_SET_ELEM_CHAIN, chain);
        }
    }
    nftnl_set_elem_add(s, e);

    struct mnl_nlmsg_batch *batch = mnl_nlmsg_batch_start(buf, sizeof buf);
    nftnl_batch_begin(mnl_nlmsg_batch_current(batch), seq++);
    mnl_nlmsg_batch_next(batch);
    struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(batch),
                                                 delete ? NFT_MSG_DELSETELEM : NFT_MSG_NEWSETELEM,
                                                 NFPROTO_INET, NLM_F_CREATE | NLM_F_ACK, seq++);
    nftnl_set_elems_nlmsg_build_payload(nlh, s);
    nftnl_set_free(s);
    mnl_nlmsg_batch_next(batch);
    nftnl_batch_end(mnl_nlmsg_batch_current(batch), seq++);
    mnl_nlmsg_batch_next(batch);

    double start = now_ms();
    if (mnl_socket_sendto(nl, mnl_nlmsg_batch_head(batch), mnl_nlmsg_batch_size(batch)) < 0) return -1;
    mnl_nlmsg_batch_stop(batch);
    int n = mnl_socket_recvfrom(nl, buf, sizeof buf);
    if (n < 0 || mnl_cb_run(buf, n, 0, mnl_socket_get_portid(nl), NULL, NULL) < 0) return -1;
    return now_ms() - start;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s TABLE SET CHAIN|accept N\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[4]);
    struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
    if (nl == NULL || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        perror("netlink");
        return 1;
    }
    double *times = calloc(n, sizeof *times);
    for (int i = 0; i < n; i++) {
        if ((times[i] = commit(nl, argv[1], argv[2], argv[3], i, 0)) < 0) {
            perror("adding an element");
            return 1;
        }
    }
    for (int i = 0; i < n; i++) {
        if (commit(nl, argv[1], argv[2], argv[3], i, 1) < 0) {
            perror("deleting an element");
            return 1;
        }
    }
    qsort(times, n, sizeof *times, by_value);
    printf("%.2f\n", times[n / 2]);
    return 0;
}

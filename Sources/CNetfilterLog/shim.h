/* The C side of the flow log: libnetfilter_log. Only the FlowLog module imports this. */
#include <stdint.h>
#include <sys/time.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <libnetfilter_log/libnetfilter_log.h>

/* glibc declares these only under _GNU_SOURCE, which Swift's Glibc module does not define. */
int setns(int fd, int nstype);
int pipe2(int pipefd[2], int flags);

/* CLONE_NEWNET as a constant Swift can import (the macro is guarded by _GNU_SOURCE). */
static const int ZWLOG_CLONE_NEWNET = 0x40000000;

/* The packet header's fields in host order: Swift cannot read a packed struct portably. */
static inline int zwlog_packet_hdr(struct nflog_data *nfad, uint16_t *hw_protocol, uint8_t *hook) {
    struct nfulnl_msg_packet_hdr *h = nflog_get_msg_packet_hdr(nfad);
    if (!h) return -1;
    *hw_protocol = ntohs(h->hw_protocol);
    *hook = h->hook;
    return 0;
}

/* The uid of a unix socket's peer (SO_PEERCRED); struct ucred is hidden without _GNU_SOURCE. */
static inline int zwlog_peer_uid(int fd, uint32_t *uid) {
    struct { int32_t pid; uint32_t uid; uint32_t gid; } cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, 17 /* SO_PEERCRED */, &cred, &len) != 0) return -1;
    *uid = cred.uid;
    return 0;
}

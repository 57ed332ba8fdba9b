/* The C side of the flow log: libnetfilter_log. Only the FlowLog module imports this. */
#include <stdint.h>
#include <sys/time.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <libnetfilter_log/libnetfilter_log.h>

/* glibc declares pipe2() only under _GNU_SOURCE, which Swift's Glibc module does not define. */
int pipe2(int pipefd[2], int flags);

/* The uid of a unix socket's peer (SO_PEERCRED); struct ucred is hidden without _GNU_SOURCE. */
static inline int zwlog_peer_uid(int fd, uint32_t *uid) {
    struct { int32_t pid; uint32_t uid; uint32_t gid; } cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, 17 /* SO_PEERCRED */, &cred, &len) != 0) return -1;
    *uid = cred.uid;
    return 0;
}

/*  noroute_shim - LD_PRELOAD for the third-party programs a test drives
    (Chromium, tests/integration/test_console.sh): a connect(), sendto(),
    sendmsg() or sendmmsg() towards an address that is not loopback fails
    inside the process with ENETUNREACH and never reaches the kernel. The
    suite runs in a namespace that holds only loopback and counts every
    attempt to leave it (scripts/loopback-only.sh --guard); a browser probes
    the internet on its own (Chromium's IPv6 reachability check: a UDP
    connect to 2001:4860:4860::8888 that no flag turns off), and this keeps
    such a probe from being even an attempt. Trove's own daemons never run
    under it: their attempts stay the guard's to catch.

    Each refusal is appended to the file $TROVE_NOROUTE_LOG (when set): the
    pid, the call and the address, so a test can say what was tried. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

//  Loopback, or no internet address at all (a local socket, netlink, an
//  AF_UNSPEC "disconnect").
static bool
s_allowed (const struct sockaddr *addr, socklen_t len)
{
    if (!addr || len < sizeof (sa_family_t))
        return true;
    if (addr->sa_family == AF_INET && len >= sizeof (struct sockaddr_in)) {
        uint32_t a = ntohl (((const struct sockaddr_in *) addr)->sin_addr.s_addr);
        return (a >> 24) == 127;
    }
    if (addr->sa_family == AF_INET6 && len >= sizeof (struct sockaddr_in6)) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *) addr)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK (a))
            return true;
        return IN6_IS_ADDR_V4MAPPED (a) && a->s6_addr [12] == 127;
    }
    return addr->sa_family != AF_INET && addr->sa_family != AF_INET6;
}

static int
s_refuse (const char *call, const struct sockaddr *addr)
{
    const char *path = getenv ("TROVE_NOROUTE_LOG");
    if (path) {
        char host [INET6_ADDRSTRLEN] = "?";
        unsigned port = 0;
        if (addr->sa_family == AF_INET) {
            inet_ntop (AF_INET, &((const struct sockaddr_in *) addr)->sin_addr, host, sizeof host);
            port = ntohs (((const struct sockaddr_in *) addr)->sin_port);
        }
        else {
            inet_ntop (AF_INET6, &((const struct sockaddr_in6 *) addr)->sin6_addr, host, sizeof host);
            port = ntohs (((const struct sockaddr_in6 *) addr)->sin6_port);
        }
        char line [200];
        int n =
            snprintf (line, sizeof line, "pid %d %s %s port %u refused\n", (int) getpid (), call, host, port);
        int fd = open (path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0) {
            if (n > 0 && write (fd, line, (size_t) n) < 0) {
                //  nothing more to do: the refusal stands
            }
            close (fd);
        }
    }
    errno = ENETUNREACH;
    return -1;
}

int
connect (int fd, const struct sockaddr *addr, socklen_t len)
{
    static int (*real) (int, const struct sockaddr *, socklen_t);
    if (!real)
        real = (int (*) (int, const struct sockaddr *, socklen_t)) dlsym (RTLD_NEXT, "connect");
    if (!s_allowed (addr, len))
        return s_refuse ("connect", addr);
    return real (fd, addr, len);
}

ssize_t
sendto (int fd, const void *buf, size_t size, int flags, const struct sockaddr *addr, socklen_t len)
{
    static ssize_t (*real) (int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    if (!real)
        real = (ssize_t (*) (int, const void *, size_t, int, const struct sockaddr *, socklen_t)) dlsym (
            RTLD_NEXT, "sendto");
    if (!s_allowed (addr, len))
        return s_refuse ("sendto", addr);
    return real (fd, buf, size, flags, addr, len);
}

ssize_t
sendmsg (int fd, const struct msghdr *msg, int flags)
{
    static ssize_t (*real) (int, const struct msghdr *, int);
    if (!real)
        real = (ssize_t (*) (int, const struct msghdr *, int)) dlsym (RTLD_NEXT, "sendmsg");
    if (msg && !s_allowed (msg->msg_name, msg->msg_namelen))
        return s_refuse ("sendmsg", msg->msg_name);
    return real (fd, msg, flags);
}

int
sendmmsg (int fd, struct mmsghdr *msgs, unsigned int n, int flags)
{
    static int (*real) (int, struct mmsghdr *, unsigned int, int);
    if (!real)
        real = (int (*) (int, struct mmsghdr *, unsigned int, int)) dlsym (RTLD_NEXT, "sendmmsg");
    for (unsigned int i = 0; msgs && i < n; i++)
        if (!s_allowed (msgs [i].msg_hdr.msg_name, msgs [i].msg_hdr.msg_namelen))
            return s_refuse ("sendmmsg", msgs [i].msg_hdr.msg_name);
    return real (fd, msgs, n, flags);
}

/* W3's load loop: one connection to bench_server on 127.0.0.1 (loopback only, by
 * construction), requests sent one at a time, each reply read in full before the next, until
 * SECONDS have passed or MAX_REQUESTS were answered, whichever comes first. Prints
 * "requests <n> seconds <s> rps <r>". With --quit it then sends QUIT so the server exits.
 *
 *   bench_client PORT SECONDS MAX_REQUESTS [--quit]
 *   bench_client PORT --quit-only
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int connect_loopback(unsigned port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((unsigned short)port);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* A stuck server must not hang the benchmark. */
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static int send_line(int fd, const char *line, size_t len) {
    while (len > 0) {
        const ssize_t n = send(fd, line, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        line += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads one reply line; returns 0 when it starts with "OK". */
static int read_reply(int fd) {
    char buf[512];
    size_t used = 0;
    for (;;) {
        const ssize_t n = recv(fd, buf + used, sizeof buf - 1 - used, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        used += (size_t)n;
        if (memchr(buf, '\n', used)) break;
        if (used == sizeof buf - 1) return -1;
    }
    return strncmp(buf, "OK ", 3) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[2], "--quit-only") == 0) {
        const int fd = connect_loopback((unsigned)strtoul(argv[1], NULL, 10));
        if (fd < 0 || send_line(fd, "QUIT\n", 5) != 0) return 1;
        close(fd);
        return 0;
    }
    if (argc < 4 || argc > 5 || (argc == 5 && strcmp(argv[4], "--quit") != 0)) {
        fprintf(stderr, "usage: bench_client PORT SECONDS MAX_REQUESTS [--quit]\n"
                        "       bench_client PORT --quit-only\n");
        return 2;
    }
    const unsigned port = (unsigned)strtoul(argv[1], NULL, 10);
    const double seconds = strtod(argv[2], NULL);
    const long max_requests = strtol(argv[3], NULL, 10);
    const int quit = argc == 5;

    const int fd = connect_loopback(port);
    if (fd < 0) {
        perror("bench_client: connect");
        return 1;
    }
    const double t0 = now_seconds();
    double t = t0;
    long done = 0;
    char line[64];
    while (done < max_requests && t - t0 < seconds) {
        const int len = snprintf(line, sizeof line, "REQ %ld\n", done);
        if (send_line(fd, line, (size_t)len) != 0 || read_reply(fd) != 0) {
            fprintf(stderr, "bench_client: request %ld failed\n", done);
            return 1;
        }
        ++done;
        /* The clock is read every 64 requests only. */
        if ((done & 63) == 0) t = now_seconds();
    }
    t = now_seconds();
    printf("requests %ld seconds %.3f rps %.1f\n", done, t - t0, (double)done / (t - t0));
    fflush(stdout);
    if (quit && send_line(fd, "QUIT\n", 5) != 0) return 1;
    close(fd);
    return 0;
}

/* W3's fixture server: a single-threaded poll() loop on 127.0.0.1, on a free port chosen by
 * the kernel and printed on stdout as "PORT <n>". A request is one line, "REQ <n>\n": the
 * server builds the reply the way a small service would (a calloc'd table of items, each a
 * malloc'd record, a reply buffer grown by realloc, a few records kept in a small per-
 * connection cache that evicts the oldest) and answers with one line, "OK <n> <hash>\n".
 * "QUIT\n" makes it free everything and exit 0, so that tools attached to it write their
 * reports. It never runs longer than --max-seconds (default 600): SIGALRM ends it.
 *
 *   bench_server [--max-seconds S]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 64
#define CACHE_SLOTS 8
#define INBUF 4096

struct record {
    uint64_t id;
    size_t len;
    char *text;
};

struct client {
    int fd;
    size_t used;
    char in[INBUF];
    struct record *cache[CACHE_SLOTS];
    unsigned cache_next;
};

static struct client *clients[MAX_CLIENTS];

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static void free_record(struct record *r) {
    if (!r) return;
    free(r->text);
    free(r);
}

static void drop_client(int i) {
    struct client *c = clients[i];
    close(c->fd);
    for (unsigned s = 0; s < CACHE_SLOTS; ++s) free_record(c->cache[s]);
    free(c);
    clients[i] = NULL;
}

static int send_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        const ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Builds the answer to "REQ n" with a handful of allocations of assorted sizes. */
static char *handle_request(struct client *c, uint64_t n, size_t *out_len) {
    const unsigned count = 4 + (unsigned)(mix(n) % 8);
    struct record **items = calloc(count, sizeof *items);
    if (!items) return NULL;
    uint64_t hash = n;
    for (unsigned i = 0; i < count; ++i) {
        struct record *r = malloc(sizeof *r);
        const uint64_t h = mix(n * 131 + i);
        r->id = h;
        r->len = 24 + (size_t)(h % 1000);
        r->text = malloc(r->len);
        memset(r->text, 'a' + (int)(h % 26), r->len);
        hash = mix(hash ^ h ^ (uint64_t)(unsigned char)r->text[r->len / 2]);
        items[i] = r;
    }
    /* The reply grows as it is written. */
    size_t cap = 16, len = 0;
    char *reply = malloc(cap);
    for (unsigned i = 0; i < count; ++i) {
        char piece[32];
        const int k = snprintf(piece, sizeof piece, "%02x", (unsigned)(items[i]->id & 0xff));
        if (len + (size_t)k + 1 > cap) {
            cap *= 2;
            reply = realloc(reply, cap);
        }
        memcpy(reply + len, piece, (size_t)k);
        len += (size_t)k;
    }
    reply[len] = '\0';
    /* One record in two is kept in the connection's cache; the oldest one goes. */
    for (unsigned i = 0; i < count; ++i) {
        if (i % 2 == 0) {
            free_record(c->cache[c->cache_next]);
            c->cache[c->cache_next] = items[i];
            c->cache_next = (c->cache_next + 1) % CACHE_SLOTS;
        } else {
            free_record(items[i]);
        }
    }
    free(items);
    char *out = malloc(len + 64);
    *out_len = (size_t)snprintf(out, len + 64, "OK %llu %016llx %s\n", (unsigned long long)n,
                                (unsigned long long)hash, reply);
    free(reply);
    return out;
}

/* Handles the complete lines in the client's buffer. Returns 1 on QUIT, -1 to drop it. */
static int serve(struct client *c) {
    char *start = c->in;
    char *nl;
    while ((nl = memchr(start, '\n', c->used - (size_t)(start - c->in))) != NULL) {
        *nl = '\0';
        if (strcmp(start, "QUIT") == 0) return 1;
        if (strncmp(start, "REQ ", 4) == 0) {
            size_t len = 0;
            char *reply = handle_request(c, strtoull(start + 4, NULL, 10), &len);
            if (!reply) return -1;
            const int rc = send_all(c->fd, reply, len);
            free(reply);
            if (rc != 0) return -1;
        } else if (send_all(c->fd, "ERR\n", 4) != 0) {
            return -1;
        }
        start = nl + 1;
    }
    const size_t rest = c->used - (size_t)(start - c->in);
    memmove(c->in, start, rest);
    c->used = rest;
    return c->used == INBUF ? -1 : 0;  /* a line longer than the buffer */
}

int main(int argc, char **argv) {
    unsigned max_seconds = 600;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--max-seconds") == 0 && i + 1 < argc) {
            max_seconds = (unsigned)strtoul(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: bench_server [--max-seconds S]\n");
            return 2;
        }
    }
    alarm(max_seconds);

    const int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0) {
        perror("socket");
        return 1;
    }
    const int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t alen = sizeof addr;
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 16) != 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0) {
        perror("bind/listen");
        return 1;
    }
    printf("PORT %u\n", (unsigned)ntohs(addr.sin_port));
    fflush(stdout);

    int quit = 0;
    while (!quit) {
        struct pollfd fds[MAX_CLIENTS + 1];
        int owner[MAX_CLIENTS + 1];
        nfds_t n = 0;
        fds[n].fd = lfd;
        fds[n].events = POLLIN;
        owner[n++] = -1;
        for (int i = 0; i < MAX_CLIENTS; ++i) {
            if (!clients[i]) continue;
            fds[n].fd = clients[i]->fd;
            fds[n].events = POLLIN;
            owner[n++] = i;
        }
        if (poll(fds, n, -1) < 0) {
            if (errno == EINTR) continue;
            perror("poll");
            break;
        }
        for (nfds_t k = 1; k < n && !quit; ++k) {
            if (!fds[k].revents) continue;
            struct client *c = clients[owner[k]];
            const ssize_t got = recv(c->fd, c->in + c->used, INBUF - c->used, 0);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) {
                drop_client(owner[k]);
                continue;
            }
            c->used += (size_t)got;
            const int rc = serve(c);
            if (rc == 1) quit = 1;
            else if (rc < 0) drop_client(owner[k]);
        }
        if (!quit && (fds[0].revents & POLLIN)) {
            const int fd = accept(lfd, NULL, NULL);
            if (fd < 0) continue;
            int slot = -1;
            for (int i = 0; i < MAX_CLIENTS && slot < 0; ++i)
                if (!clients[i]) slot = i;
            struct client *c = slot >= 0 ? calloc(1, sizeof *c) : NULL;
            if (!c) {
                close(fd);
                continue;
            }
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            c->fd = fd;
            clients[slot] = c;
        }
    }
    for (int i = 0; i < MAX_CLIENTS; ++i)
        if (clients[i]) drop_client(i);
    close(lfd);
    return 0;
}

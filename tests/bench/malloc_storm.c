/* W1, the allocator storm: PAIRS malloc/free pairs of 16-255 bytes over a 1024-slot array
 * (each step frees the slot's old block and puts a new one in it), split evenly over THREADS
 * threads, each with its own array and its own deterministic random sequence. Every block is
 * freed by the end: nothing leaks. Prints a checksum that depends on every block's contents,
 * so the calls cannot be optimized away.
 *
 *   malloc_storm [THREADS [PAIRS]]     defaults: 1 thread, 2000000 pairs in all
 *
 * With 0 pairs it allocates nothing of its own (printf's buffer aside): the benchmark's startup
 * probe, what a tool costs a program that hardly allocates.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 1024

struct worker {
    pthread_t thread;
    unsigned index;
    long pairs;
    uint64_t checksum;
};

static uint64_t next_random(uint64_t *state) {
    /* xorshift64* */
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void *storm(void *arg) {
    struct worker *w = arg;
    unsigned char *slots[SLOTS];
    memset(slots, 0, sizeof slots);
    uint64_t state = 0x9E3779B97F4A7C15ULL * (w->index + 1);
    uint64_t sum = 0;
    for (long i = 0; i < w->pairs; ++i) {
        const uint64_t r = next_random(&state);
        const unsigned slot = (unsigned)(r % SLOTS);
        const size_t size = 16 + (size_t)((r >> 16) % 240);
        if (slots[slot]) {
            sum = sum * 31 + slots[slot][0] + slots[slot][15];
            free(slots[slot]);
        }
        unsigned char *p = malloc(size);
        if (!p) {
            fprintf(stderr, "malloc_storm: out of memory\n");
            exit(1);
        }
        p[0] = (unsigned char)(i ^ size);
        p[15] = (unsigned char)(r >> 40);
        p[size - 1] = (unsigned char)i;
        slots[slot] = p;
    }
    for (unsigned s = 0; s < SLOTS; ++s) {
        if (!slots[s]) continue;
        sum = sum * 31 + slots[s][0];
        free(slots[s]);
    }
    w->checksum = sum;
    return NULL;
}

int main(int argc, char **argv) {
    const long threads = argc > 1 ? strtol(argv[1], NULL, 10) : 1;
    const long pairs = argc > 2 ? strtol(argv[2], NULL, 10) : 2000000;
    if (threads < 1 || threads > 64 || pairs < 0) {
        fprintf(stderr, "usage: malloc_storm [THREADS (1-64) [PAIRS]]\n");
        return 2;
    }
    struct worker workers[64];
    for (long t = 0; t < threads; ++t) {
        workers[t].index = (unsigned)t;
        /* The first threads take the remainder, so the total is exactly PAIRS. */
        workers[t].pairs = pairs / threads + (t < pairs % threads ? 1 : 0);
        workers[t].checksum = 0;
    }
    if (threads == 1) {
        storm(&workers[0]);
    } else {
        for (long t = 0; t < threads; ++t) {
            if (pthread_create(&workers[t].thread, NULL, storm, &workers[t]) != 0) {
                fprintf(stderr, "malloc_storm: cannot create thread %ld\n", t);
                return 1;
            }
        }
        for (long t = 0; t < threads; ++t) pthread_join(workers[t].thread, NULL);
    }
    uint64_t checksum = 0;
    for (long t = 0; t < threads; ++t) checksum = checksum * 1000003 + workers[t].checksum;
    printf("malloc_storm: threads %ld pairs %ld checksum %016llx\n", threads, pairs, (unsigned long long)checksum);
    return 0;
}

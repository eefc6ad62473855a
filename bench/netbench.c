/* The client and server bench/net.py runs on the host and in busybox containers (built static, so the very
 * same program runs in both places):
 *
 *   netbench serve PORT            accept connections one at a time; the first byte says what follows:
 *                                  'r': answer "OK 1\n" and close first; 's': read to EOF, answer
 *                                  "OK <bytes>\n"
 *   netbench rate IP PORT SECONDS  connect, send 'r', read the answer to the server's close, close; again
 *                                  until SECONDS pass; prints "<connections> <seconds>"
 *   netbench stream IP PORT MIB    one connection, 's' and MIB mebibytes in 128 KiB writes, then the
 *                                  answer; prints "<bytes> <seconds>"
 *
 * The server closes a rate connection first, so the TIME_WAIT it leaves is the server's. Were it the
 * client's, tens of thousands of them to one server would use up the client's ephemeral ports, and outside
 * the loopback (net.ipv4.tcp_tw_reuse=2 reuses them on loopback only) connect() would then search ever
 * longer for a free port: container to container fell from 14,000 to 800 connections/s after one round.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int connect_to(const char *ip, int port) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, ip, &address.sin_addr) != 1) {
        fprintf(stderr, "netbench: not an IPv4 address: %s\n", ip);
        exit(2);
    }
    int sock = socket(AF_INET, SOCK_STREAM, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&address, sizeof address) != 0) {
        perror("netbench: connect");
        exit(1);
    }
    return sock;
}

static void read_answer(int sock) {
    char answer[64];
    ssize_t got = 0, n;
    while ((n = read(sock, answer + got, sizeof answer - 1 - got)) > 0)
        got += n;
    if (got < 3 || strncmp(answer, "OK ", 3) != 0) {
        fprintf(stderr, "netbench: no answer from the server\n");
        exit(1);
    }
}

static int serve(int port) {
    int listener = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 128) != 0) {
        perror("netbench: listen");
        return 1;
    }
    static char buffer[1 << 17];
    for (;;) {
        int sock = accept(listener, NULL, NULL);
        if (sock < 0)
            continue;
        char kind = 0;
        if (read(sock, &kind, 1) != 1) {
            close(sock);
            continue;
        }
        long long total = 0;
        ssize_t n;
        if (kind == 'r')
            total = 1;
        else
            while ((n = read(sock, buffer, sizeof buffer)) > 0)
                total += n;
        char answer[64];
        int length = snprintf(answer, sizeof answer, "OK %lld\n", total);
        if (write(sock, answer, length) < 0)
            perror("netbench: write");
        close(sock);
    }
}

static int rate(const char *ip, int port, double seconds) {
    long count = 0;
    double start = now(), elapsed;
    do {
        int sock = connect_to(ip, port);
        if (write(sock, "r", 1) != 1) {
            perror("netbench: write");
            return 1;
        }
        read_answer(sock);
        close(sock);
        count++;
    } while ((elapsed = now() - start) < seconds);
    printf("%ld %.6f\n", count, elapsed);
    return 0;
}

static int stream(const char *ip, int port, long mebibytes) {
    static char buffer[1 << 17];
    memset(buffer, 'x', sizeof buffer);
    double start = now();
    int sock = connect_to(ip, port);
    if (write(sock, "s", 1) != 1) {
        perror("netbench: write");
        return 1;
    }
    long long total = (long long)mebibytes << 20, sent = 0;
    while (sent < total) {
        ssize_t n = write(sock, buffer, sizeof buffer);
        if (n <= 0) {
            perror("netbench: write");
            return 1;
        }
        sent += n;
    }
    shutdown(sock, SHUT_WR);
    read_answer(sock);
    close(sock);
    printf("%lld %.6f\n", sent, now() - start);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "serve") == 0)
        return serve(atoi(argv[2]));
    if (argc == 5 && strcmp(argv[1], "rate") == 0)
        return rate(argv[2], atoi(argv[3]), atof(argv[4]));
    if (argc == 5 && strcmp(argv[1], "stream") == 0)
        return stream(argv[2], atoi(argv[3]), atol(argv[4]));
    fprintf(stderr, "usage: netbench serve PORT | rate IP PORT SECONDS | stream IP PORT MIB\n");
    return 2;
}

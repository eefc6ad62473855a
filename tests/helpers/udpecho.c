/* A UDP echo server for the network tests (busybox's nc has no UDP): `udpecho PORT` answers each datagram
 * with the same bytes and writes them to stdout. Built static by tests/test_networks.py. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: udpecho PORT\n");
        return 2;
    }
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1]))};
    if (sock < 0 || bind(sock, (struct sockaddr *)&address, sizeof address) != 0) {
        perror("udpecho");
        return 1;
    }
    char buffer[65536];
    for (;;) {
        struct sockaddr_in peer;
        socklen_t length = sizeof peer;
        ssize_t got = recvfrom(sock, buffer, sizeof buffer, 0, (struct sockaddr *)&peer, &length);
        if (got < 0)
            continue;
        sendto(sock, buffer, got, 0, (struct sockaddr *)&peer, length);
        fwrite(buffer, 1, got, stdout);
        fflush(stdout);
    }
}

/* One ICMP echo to 127.0.0.1 over an ICMP datagram socket (what ping uses without
 * CAP_NET_RAW, allowed by net.ipv4.ping_group_range); prints "pong" on the reply.
 * Built statically by berth's tests. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

int main(void) {
    int s = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    if (s < 0) {
        perror("icmp datagram socket");
        return 1;
    }
    struct icmphdr echo;
    memset(&echo, 0, sizeof echo);
    echo.type = ICMP_ECHO;
    echo.un.echo.sequence = htons(1);
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (sendto(s, &echo, sizeof echo, 0, (struct sockaddr *)&to, sizeof to) < 0) {
        perror("sendto");
        return 1;
    }
    struct timeval tv = {5, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[128];
    if (recv(s, buf, sizeof buf, 0) < (long)sizeof(struct icmphdr)) {
        perror("recv");
        return 1;
    }
    if (((struct icmphdr *)buf)->type != ICMP_ECHOREPLY) {
        fprintf(stderr, "not an echo reply\n");
        return 1;
    }
    puts("pong");
    return 0;
}

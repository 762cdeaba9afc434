/*
 * Closed-loop TCP echo load client for pybench.py (vmbench's method): CONNS
 * connections to 127.0.0.1:PORT, each sends a SIZE-byte message, waits for
 * all SIZE bytes to come back, and sends again. Runs WARMUP seconds, then
 * counts round trips for MEASURE seconds, reading the server's CPU time
 * (utime + stime from /proc/SERVER_PID/stat) at both ends of that window.
 * One thread, epoll, non-blocking sockets: written in C so that the load
 * client is never what limits a Python server.
 *
 * Prints one JSON line: {"requests", "seconds", "server_cpu", "bytes"}.
 * usage: echo_client PORT CONNS SIZE WARMUP MEASURE SERVER_PID
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

struct conn {
    int fd;
    size_t sent, recvd;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double server_cpu(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long utime = 0, stime = 0;
    /* after ") ": state(3) ... utime is field 14, stime 15 */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / sysconf(_SC_CLK_TCK);
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s PORT CONNS SIZE WARMUP MEASURE SERVER_PID\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), nconns = atoi(argv[2]);
    size_t size = (size_t)atol(argv[3]);
    double warmup = atof(argv[4]), measure = atof(argv[5]);
    int pid = atoi(argv[6]);
    if (nconns <= 0 || size == 0) return 2;

    char *out = malloc(size), *in = malloc(size);
    memset(out, 'x', size);
    struct conn *conns = calloc(nconns, sizeof *conns);
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    for (int i = 0; i < nconns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) die("socket");
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
        conns[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    }

    double t0 = now(), m_start = t0 + warmup, m_end = m_start + measure;
    double cpu0 = -1, cpu1 = -1, t_start = 0, t_end = 0;
    unsigned long long requests = 0;
    int measuring = 0;
    struct epoll_event events[256];
    for (;;) {
        double t = now();
        if (!measuring && t >= m_start) {
            measuring = 1;
            t_start = t;
            cpu0 = server_cpu(pid);
            requests = 0;
        }
        if (measuring && t >= m_end) {
            t_end = t;
            cpu1 = server_cpu(pid);
            break;
        }
        int n = epoll_wait(ep, events, 256, 50);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            struct conn *c = &conns[events[k].data.u32];
            /* Edge-triggered: do all that can be done now. */
            for (;;) {
                int progressed = 0;
                if (c->sent < size) {
                    ssize_t w = send(c->fd, out + c->sent, size - c->sent, MSG_NOSIGNAL);
                    if (w > 0) {
                        c->sent += (size_t)w;
                        progressed = 1;
                    } else if (w < 0 && errno != EAGAIN) {
                        die("send");
                    }
                }
                if (c->recvd < size) {
                    ssize_t r = recv(c->fd, in, size - c->recvd, 0);
                    if (r > 0) {
                        c->recvd += (size_t)r;
                        progressed = 1;
                    } else if (r == 0) {
                        fprintf(stderr, "server closed a connection\n");
                        return 1;
                    } else if (errno != EAGAIN) {
                        die("recv");
                    }
                }
                if (c->sent == size && c->recvd == size) {
                    requests++;
                    c->sent = c->recvd = 0;
                    continue;
                }
                if (!progressed) break;
            }
        }
    }
    for (int i = 0; i < nconns; i++) close(conns[i].fd);
    close(ep);
    printf("{\"requests\": %llu, \"seconds\": %.6f, \"server_cpu\": %.4f, \"bytes\": %llu}\n",
           requests, t_end - t_start, (cpu0 >= 0 && cpu1 >= 0) ? cpu1 - cpu0 : -1.0,
           requests * (unsigned long long)size * 2);
    free(out);
    free(in);
    free(conns);
    return 0;
}

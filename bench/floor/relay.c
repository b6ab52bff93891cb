// The cheapest relay of one upload that this machine can run: a reference point for bench/floor.sh, not a proxy.
//
// One thread, blocking sockets, no HTTP beyond finding the end of the request head and its Content-Length: it
// accepts a connection, forwards the head to the upstream, moves the body across (keeping a copy in an unlinked
// O_TMPFILE spool file when MODE ends in "-spool", allocated up front with fallocate as Holdfast does), then relays
// the upstream's response (head and Content-Length body) and closes. Whatever a real spooling proxy costs beyond
// this is the price of being a proxy (event loop, HTTP framing, replay, many connections), not of spooling.
//
// usage: relay PORT UPSTREAM_PORT MODE SPOOL_DIR
//   MODE: copy | copy-spool       recv into a buffer, pwrite it to the spool, send it upstream
//         splice | splice-spool   splice(2) socket -> pipe -> socket, tee(2) into the spool file
// env:  CHUNK  bytes per recv/pwrite/send (default 1048576)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what) {
  perror(what);
  exit(1);
}

static int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, (void *)&addr, sizeof addr)) die("connect");
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static void send_all(int fd, const char *buf, size_t len) {
  for (size_t done = 0; done < len;) {
    ssize_t n = send(fd, buf + done, len - done, 0);
    if (n <= 0) die("send");
    done += n;
  }
}

// Reads until the end of an HTTP head; returns the bytes read (head and any body after it) and sets *head_len.
static size_t read_head(int fd, char *buf, size_t cap, size_t *head_len, long long *content_length) {
  size_t have = 0;
  char *end = NULL;
  while (!end) {
    if (have == cap) die("head too large");
    ssize_t n = recv(fd, buf + have, cap - have, 0);
    if (n <= 0) die("recv head");
    have += n;
    end = memmem(buf, have, "\r\n\r\n", 4);
  }
  *head_len = end + 4 - buf;
  char saved = buf[*head_len - 1];
  buf[*head_len - 1] = 0;
  char *cl = strcasestr(buf, "\ncontent-length:");
  *content_length = cl ? atoll(cl + 16) : 0;
  buf[*head_len - 1] = saved;
  return have;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: relay PORT UPSTREAM_PORT MODE SPOOL_DIR\n");
    return 2;
  }
  int port = atoi(argv[1]), upstream = atoi(argv[2]);
  const char *mode = argv[3], *dir = argv[4];
  int spool = strstr(mode, "-spool") != NULL, use_splice = strncmp(mode, "splice", 6) == 0;
  long chunk = getenv("CHUNK") ? atol(getenv("CHUNK")) : 1 << 20;
  char *buf = malloc(chunk + 65536);

  int listener = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (bind(listener, (void *)&addr, sizeof addr) || listen(listener, 16)) die("listen");
  printf("listening 127.0.0.1:%d\n", port);
  fflush(stdout);

  for (;;) {
    int client = accept(listener, NULL, NULL);
    if (client < 0) die("accept");
    size_t head_len;
    long long len;
    size_t have = read_head(client, buf, chunk + 65536, &head_len, &len);
    int up = connect_to(upstream);
    int file = -1;
    off_t off = 0;
    if (spool) {
      file = open(dir, O_TMPFILE | O_RDWR, 0600);
      if (file < 0) die("O_TMPFILE");
      if (len > 0 && fallocate(file, FALLOC_FL_KEEP_SIZE, 0, len)) die("fallocate");
    }
    send_all(up, buf, have);
    long long done = have - head_len;
    if (spool && done > 0) {
      if (pwrite(file, buf + head_len, done, 0) != done) die("pwrite");
      off = done;
    }
    if (use_splice) {
      int in[2], copy[2];
      if (pipe(in) || pipe(copy)) die("pipe");
      fcntl(in[0], F_SETPIPE_SZ, chunk);
      fcntl(copy[0], F_SETPIPE_SZ, chunk);
      while (done < len) {
        ssize_t n = splice(client, NULL, in[1], NULL, len - done < chunk ? len - done : chunk, SPLICE_F_MOVE);
        if (n <= 0) die("splice from client");
        if (spool) {
          if (tee(in[0], copy[1], n, 0) != n) die("tee");
          for (ssize_t w = 0; w < n;) {
            ssize_t m = splice(copy[0], NULL, file, &off, n - w, SPLICE_F_MOVE);
            if (m <= 0) die("splice to spool");
            w += m;
          }
        }
        for (ssize_t w = 0; w < n;) {
          ssize_t m = splice(in[0], NULL, up, NULL, n - w, SPLICE_F_MOVE | SPLICE_F_MORE);
          if (m <= 0) die("splice to upstream");
          w += m;
        }
        done += n;
      }
      close(in[0]), close(in[1]), close(copy[0]), close(copy[1]);
    } else {
      while (done < len) {
        ssize_t n = recv(client, buf, len - done < chunk ? len - done : chunk, 0);
        if (n <= 0) die("recv body");
        if (spool) {
          if (pwrite(file, buf, n, off) != n) die("pwrite");
          off += n;
        }
        send_all(up, buf, n);
        done += n;
      }
    }
    // The response: head, then exactly its Content-Length.
    long long body_len;
    have = read_head(up, buf, chunk + 65536, &head_len, &body_len);
    send_all(client, buf, have);
    for (long long sent = have - head_len; sent < body_len;) {
      ssize_t n = recv(up, buf, chunk, 0);
      if (n <= 0) die("recv response");
      send_all(client, buf, n);
      sent += n;
    }
    if (file >= 0) close(file);
    close(up);
    close(client);
  }
}

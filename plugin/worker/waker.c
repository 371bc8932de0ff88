/* A minimal MQTT 3.1.1 client that only ever sends PINGREQ: see bootstrap_waker.h. Worker thread
 * only (it pokes the broker when replies are ready). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "bootstrap_waker.h"

#define CONNECT_WAIT_MS 1000
/* 128 random bits after the prefix: nobody can guess the id to take the connection over */
#define ID_RANDOM_BYTES 16
#define PREFIX_MAX 32

struct waker {
	int port;
	int fd;
	bool refused;
	char prefix[PREFIX_MAX];
	char client_id[PREFIX_MAX + 1 + 2 * ID_RANDOM_BYTES + 1]; /* of the current connection */
};

struct waker *waker__new(int port, const char *client_id_prefix)
{
	struct waker *w;

	if(port <= 0 || strlen(client_id_prefix) >= PREFIX_MAX) return NULL;
	w = calloc(1, sizeof(*w));
	if(!w) return NULL;
	w->port = port;
	w->fd = -1;
	memcpy(w->prefix, client_id_prefix, strlen(client_id_prefix) + 1);
	return w;
}

static void waker__close(struct waker *w)
{
	if(w->fd >= 0) close(w->fd);
	w->fd = -1;
}

/* A fresh client id for every connection: <prefix>-<32 random hex digits>. Another client
 * holding an earlier one (it was displaced, or read it somewhere) holds nothing of ours. */
static bool waker__new_id(struct waker *w)
{
	unsigned char r[ID_RANDOM_BYTES];
	size_t len = strlen(w->prefix);

	if(RAND_bytes(r, sizeof(r)) != 1) return false;
	memcpy(w->client_id, w->prefix, len);
	w->client_id[len++] = '-';
	for(size_t i = 0; i < sizeof(r); i++){
		w->client_id[len++] = "0123456789abcdef"[r[i] >> 4];
		w->client_id[len++] = "0123456789abcdef"[r[i] & 0x0f];
	}
	w->client_id[len] = '\0';
	OPENSSL_cleanse(r, sizeof(r));
	return true;
}

/* Blocking connect and CONNECT/CONNACK with a short timeout: the worker can afford it once. */
static bool waker__connect(struct waker *w)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)w->port) };
	unsigned char pkt[14 + sizeof(w->client_id)], ack[4];
	size_t idlen;
	struct timeval tv = { .tv_sec = CONNECT_WAIT_MS / 1000, .tv_usec = (CONNECT_WAIT_MS % 1000) * 1000 };
	int one = 1, got = 0;

	if(!waker__new_id(w)) return false;
	idlen = strlen(w->client_id);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	w->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if(w->fd < 0) return false;
	setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(w->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(w->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if(connect(w->fd, (struct sockaddr *)&sa, sizeof(sa))){
		waker__close(w);
		return false;
	}
	/* CONNECT: protocol MQTT 3.1.1, clean session, keepalive 0 (the broker never times it out) */
	pkt[0] = 0x10;
	pkt[1] = (unsigned char)(10 + 2 + idlen);
	memcpy(pkt + 2, "\x00\x04MQTT\x04\x02\x00\x00", 10);
	pkt[12] = 0;
	pkt[13] = (unsigned char)idlen;
	memcpy(pkt + 14, w->client_id, idlen);
	if(send(w->fd, pkt, 14 + idlen, MSG_NOSIGNAL) != (ssize_t)(14 + idlen)){
		waker__close(w);
		return false;
	}
	while(got < 4){
		ssize_t r = recv(w->fd, ack + got, (size_t)(4 - got), 0);
		if(r <= 0){
			waker__close(w);
			return false;
		}
		got += (int)r;
	}
	if(ack[0] != 0x20 || ack[3] != 0){
		w->refused = true;
		waker__close(w);
		return false;
	}
	/* from now on never block: PINGRESPs are drained and dropped */
	fcntl(w->fd, F_SETFL, fcntl(w->fd, F_GETFL) | O_NONBLOCK);
	return true;
}

/* Reads and drops what the broker sent (PINGRESPs). False when the connection has ended: the
 * broker closed it (a client took its id over, or the broker restarted its listener). */
static bool waker__drain(struct waker *w)
{
	unsigned char drain[256];
	ssize_t r;

	while((r = recv(w->fd, drain, sizeof(drain), 0)) > 0);
	return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

bool waker__poke(struct waker *w)
{
	if(!w || w->refused) return false;
	/* a connection found closed is made again at once, under a new id: this poke still wakes */
	for(int attempt = 0; attempt < 2; attempt++){
		if(w->fd >= 0 && !waker__drain(w)) waker__close(w);
		if(w->fd < 0 && !waker__connect(w)) return false;
		if(send(w->fd, "\xc0\x00", 2, MSG_NOSIGNAL | MSG_DONTWAIT) == 2) return true;
		/* its buffer full (never under normal load): the broker is awake anyway */
		if(errno == EAGAIN || errno == EWOULDBLOCK) return false;
		waker__close(w);
	}
	return false;
}

bool waker__refused(const struct waker *w)
{
	return w && w->refused;
}

void waker__free(struct waker *w)
{
	if(!w) return;
	if(w->fd >= 0){
		send(w->fd, "\xe0\x00", 2, MSG_NOSIGNAL | MSG_DONTWAIT); /* DISCONNECT: no "closed unexpectedly" log line */
		close(w->fd);
	}
	free(w);
}

/* mosquitto_bootstrap, broker thread: are the ports of plugin_opt_dynreg_tls_ports TLS ones?
 *
 * The plugin cannot read a listener's settings (Mosquitto 2.0 gives it none), so it asks each
 * named port once, the way a device would: a TLS handshake from loopback. A port that answers
 * with any TLS record is TLS; one that closes or answers with something else (a plain MQTT
 * listener drops a ClientHello as a malformed CONNECT) is plain, and dynreg CONNECTs on it are
 * refused. A port that cannot be reached from loopback (a listener bound to another address) or
 * does not answer in time is left to the operator's word, and the log says so. Stepped from
 * MOSQ_EVT_TICK on non-blocking sockets: it never waits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <mosquitto.h>

#include "bootstrap_broker.h"
#include "bootstrap_probe.h"

#define PROBE_TIMEOUT_MS 3000

struct port_probe {
	int port;
	enum probe_verdict verdict;
	int fd;
	SSL *ssl;
	bool connected;
	bool heard_tls;  /* a TLS record came back (the message callback) */
	int family;      /* 0: 127.0.0.1, 1: ::1, 2: none left */
	int64_t started_ms;
};

struct probe {
	SSL_CTX *ctx;
	struct port_probe ports[DYNREG_PORTS_MAX];
	int n;
	int pending;
};

/* Any record the server sent that parsed as TLS: a handshake message, an alert, ... */
static void probe__on_message(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg)
{
	struct port_probe *pp = arg;

	(void)version;
	(void)buf;
	(void)len;
	(void)ssl;
	if(!write_p && content_type >= 20 && content_type <= 23) pp->heard_tls = true;
}

static void probe__close(struct port_probe *pp)
{
	if(pp->ssl) SSL_free(pp->ssl);
	if(pp->fd >= 0) close(pp->fd);
	pp->ssl = NULL;
	pp->fd = -1;
	pp->connected = false;
}

static void probe__settle(struct probe *pr, struct port_probe *pp, enum probe_verdict verdict, const char *detail)
{
	/* a close_notify, so that the broker does not log the probe's close as an error */
	if(verdict == PROBE_TLS && pp->ssl) (void)SSL_shutdown(pp->ssl);
	probe__close(pp);
	pp->verdict = verdict;
	pr->pending--;
	ERR_clear_error();
	switch(verdict){
		case PROBE_TLS:
			mosquitto_log_printf(MOSQ_LOG_INFO, PLUGIN_NAME ": dynreg: port %d answers TLS: Link SDK devices are served there",
					pp->port);
			break;
		case PROBE_PLAIN:
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": plugin_opt_dynreg_tls_ports: port %d is not a TLS listener (%s): "
					"dynreg CONNECTs on it are refused, the DeviceSecret would travel in the clear. Name only listeners "
					"with a certfile", pp->port, detail);
			break;
		default:
			mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": dynreg: could not check that port %d answers TLS (%s): "
					"taking plugin_opt_dynreg_tls_ports' word for it", pp->port, detail);
			break;
	}
}

/* A non-blocking connection to the next loopback address; false when none is left. */
static bool probe__connect(struct probe *pr, struct port_probe *pp)
{
	for(; pp->family < 2; pp->family++){
		struct sockaddr_storage sa;
		socklen_t salen;
		int fd;

		memset(&sa, 0, sizeof(sa));
		if(pp->family == 0){
			struct sockaddr_in *in = (struct sockaddr_in *)&sa;
			in->sin_family = AF_INET;
			in->sin_port = htons((uint16_t)pp->port);
			in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			salen = sizeof(*in);
		}else{
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons((uint16_t)pp->port);
			in6->sin6_addr = in6addr_loopback;
			salen = sizeof(*in6);
		}
		fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if(fd < 0) continue;
		if(connect(fd, (struct sockaddr *)&sa, salen) && errno != EINPROGRESS){
			close(fd);
			continue;
		}
		if(!(pp->ssl = SSL_new(pr->ctx)) || !SSL_set_fd(pp->ssl, fd)){
			if(pp->ssl) SSL_free(pp->ssl);
			pp->ssl = NULL;
			close(fd);
			return false;
		}
		pp->fd = fd;
		SSL_set_connect_state(pp->ssl);
		SSL_set_msg_callback(pp->ssl, probe__on_message);
		SSL_set_msg_callback_arg(pp->ssl, pp);
		pp->family++;
		return true;
	}
	return false;
}

/* One look at a port under probe: never waits. */
static void probe__step_one(struct probe *pr, struct port_probe *pp, int64_t now_ms)
{
	int rc, err = 0;
	socklen_t errlen = sizeof(err);

	if(pp->fd < 0 && !probe__connect(pr, pp)){
		probe__settle(pr, pp, PROBE_UNCHECKED, "nothing listens on it on 127.0.0.1 or ::1");
		return;
	}
	if(now_ms - pp->started_ms > PROBE_TIMEOUT_MS){
		probe__settle(pr, pp, PROBE_UNCHECKED, "no answer within 3 s");
		return;
	}
	if(!pp->connected){
		struct pollfd pfd = { .fd = pp->fd, .events = POLLOUT };
		if(poll(&pfd, 1, 0) <= 0) return; /* still connecting */
		if(getsockopt(pp->fd, SOL_SOCKET, SO_ERROR, &err, &errlen) || err){
			probe__close(pp); /* refused there: the next address, at the next tick */
			return;
		}
		pp->connected = true;
	}
	ERR_clear_error();
	rc = SSL_connect(pp->ssl);
	if(rc == 1 || pp->heard_tls){
		probe__settle(pr, pp, PROBE_TLS, NULL);
		return;
	}
	switch(SSL_get_error(pp->ssl, rc)){
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE:
			return;
		default:
			probe__settle(pr, pp, PROBE_PLAIN, "it answered a TLS handshake with no TLS record");
			return;
	}
}

struct probe *probe__new(const int *ports, int n)
{
	struct probe *pr = calloc(1, sizeof(*pr));

	if(!pr) return NULL;
	/* no verification: the question is only whether the port speaks TLS at all */
	if(!(pr->ctx = SSL_CTX_new(TLS_client_method()))){
		free(pr);
		return NULL;
	}
	SSL_CTX_set_verify(pr->ctx, SSL_VERIFY_NONE, NULL);
	for(int i = 0; i < n && i < DYNREG_PORTS_MAX; i++){
		pr->ports[i].port = ports[i];
		pr->ports[i].fd = -1;
		pr->ports[i].verdict = PROBE_PENDING;
		pr->n++;
		pr->pending++;
	}
	return pr;
}

void probe__free(struct probe *pr)
{
	if(!pr) return;
	for(int i = 0; i < pr->n; i++) probe__close(&pr->ports[i]);
	SSL_CTX_free(pr->ctx);
	free(pr);
}

void probe__step(struct probe *pr, int64_t now_ms)
{
	if(!pr || !pr->pending) return;
	for(int i = 0; i < pr->n; i++){
		struct port_probe *pp = &pr->ports[i];
		if(pp->verdict != PROBE_PENDING) continue;
		if(!pp->started_ms) pp->started_ms = now_ms;
		probe__step_one(pr, pp, now_ms);
	}
}

bool probe__pending(const struct probe *pr)
{
	return pr && pr->pending > 0;
}

enum probe_verdict probe__verdict(const struct probe *pr, int port)
{
	for(int i = 0; pr && i < pr->n; i++){
		if(pr->ports[i].port == port) return pr->ports[i].verdict;
	}
	return PROBE_UNCHECKED;
}

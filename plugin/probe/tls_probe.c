/* mosquitto_bootstrap, the probe thread: are the ports of plugin_opt_dynreg_tls_ports TLS ones?
 *
 * The plugin cannot read a listener's settings (Mosquitto 2.0 gives it none), so it asks each
 * named port once on every address of this host (getifaddrs, and 127.0.0.1 and ::1), the way a
 * device would: a TLS handshake. An address and port that answer with any TLS record are TLS;
 * one that closes or answers with something else (a plain MQTT listener drops a ClientHello as
 * a malformed CONNECT) is plain. Two listeners may share a port number on different addresses,
 * so a client's own local address is what decides where the broker can tell it
 * (probe__verdict_at), and a port is TLS as a whole (probe__verdict, when only the port is
 * known) only if no address answers it in the clear. An address that does not answer in time
 * is left to the operator's word, and the log says so.
 *
 * No network I/O in a broker callback, so the asking is done by a thread of its own, one port
 * after another, on blocking sockets whose every wait is cut into short slices: it sees the stop
 * flag within a slice. Each verdict reaches the broker thread through a C11 atomic (its summary
 * written before it, with release order); the broker thread logs it from the tick, since no
 * broker API may be called from here. Probe thread, except probe__new, probe__free,
 * probe__on_tick, probe__pending, probe__verdict and probe__verdict_at (broker thread).
 */
/* IFF_UP (net/if.h) and getifaddrs are BSD and GNU, not POSIX */
#define _DEFAULT_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <mosquitto.h>

#include "bootstrap_broker.h"
#include "bootstrap_clock.h"
#include "bootstrap_probe.h"

#define PROBE_TIMEOUT_MS 3000
/* The longest a socket call, a poll or a pause blocks: how soon the thread sees the stop flag. */
#define PROBE_SLICE_MS 100
/* Mosquitto initialises plugins before it opens its listeners (src/mosquitto.c: security_init,
 * then listeners__start), so a refusal before the broker's first tick is retried, this long. */
#define PROBE_LISTEN_WAIT_MS 10000

/* the addresses asked per port: this host's, at most */
#define PROBE_ADDRESSES_MAX 16

/* One address and port. The probe thread writes sa, salen and name before it publishes the
 * count (struct probe's naddresses); verdict is stored by it and loaded by the broker thread. */
struct address_probe {
	struct sockaddr_storage sa;
	socklen_t salen;
	char name[INET6_ADDRSTRLEN];
	atomic_int verdict;    /* enum probe_verdict */
};

struct port_probe {
	int port;              /* set before the thread starts */
	char summary[256];     /* probe thread, before verdict: which addresses answered how */
	atomic_int verdict;    /* enum probe_verdict: probe thread stores, broker thread loads */
	bool logged;           /* broker thread */
	struct address_probe addresses[PROBE_ADDRESSES_MAX];
};

struct probe {
	SSL_CTX *ctx;          /* probe thread, once started */
	struct port_probe ports[DYNREG_PORTS_MAX];
	int n;                 /* set before the thread starts */
	atomic_int naddresses; /* probe thread stores (release) once the addresses are written */
	atomic_bool stop;      /* broker thread stores, at cleanup */
	atomic_bool listening; /* broker thread stores, at its first tick: the listeners are open */
	pthread_t thread;
	bool thread_started;   /* broker thread */
};

/* One handshake's state, on the probe thread's stack. */
struct attempt {
	SSL *ssl;
	int fd;
	bool heard_tls;        /* a TLS record came back (the message callback) */
};

/* ---- probe thread ---- */

/* Any record the server sent that parsed as TLS: a handshake message, an alert, ... */
static void probe__on_message(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg)
{
	struct attempt *a = arg;

	(void)version;
	(void)buf;
	(void)len;
	(void)ssl;
	if(!write_p && content_type >= 20 && content_type <= 23) a->heard_tls = true;
}

static bool probe__stopping(struct probe *pr)
{
	return atomic_load_explicit(&pr->stop, memory_order_relaxed);
}

/* A pause of one slice. */
static void probe__pause(void)
{
	struct timespec ts = { 0, PROBE_SLICE_MS * 1000000L };

	while(nanosleep(&ts, &ts) && errno == EINTR);
}

static void probe__settle(struct port_probe *pp, enum probe_verdict verdict)
{
	atomic_store_explicit(&pp->verdict, verdict, memory_order_release);
}

/* A blocking socket connected to ap, each call on it bounded by a slice; -1 with errno
 * ECONNREFUSED when refused, ETIMEDOUT past deadline_ms, ECANCELED when stopped. */
static int probe__connect(struct probe *pr, const struct address_probe *ap, int64_t deadline_ms)
{
	const struct sockaddr_storage *sap = &ap->sa;
	struct timeval tv = { 0, PROBE_SLICE_MS * 1000L };
	int fd, err = 0;
	socklen_t errlen = sizeof(err);

	if((fd = socket(sap->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) return -1;
	if(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv))){
		close(fd);
		return -1;
	}
	if(!connect(fd, (const struct sockaddr *)sap, ap->salen)) return fd;
	/* SO_SNDTIMEO ran out (EINPROGRESS): the connection goes on; wait for it a slice at a time */
	while(errno == EINPROGRESS){
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		int n;

		if(probe__stopping(pr)){
			errno = ECANCELED;
			break;
		}
		if(clock__ms() > deadline_ms){
			errno = ETIMEDOUT;
			break;
		}
		if((n = poll(&pfd, 1, PROBE_SLICE_MS)) < 0 && errno == EINTR){
			errno = EINPROGRESS;
			continue;
		}
		if(n == 0){
			errno = EINPROGRESS;
			continue;
		}
		if(n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen)) break;
		if(!err) return fd;
		errno = err;
		break;
	}
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

/* The handshake on a connected socket; PROBE_PENDING when stopped meanwhile. */
static enum probe_verdict probe__handshake(struct probe *pr, struct attempt *a, int64_t deadline_ms)
{
	int rc;

	if(!(a->ssl = SSL_new(pr->ctx)) || !SSL_set_fd(a->ssl, a->fd)){
		return PROBE_UNCHECKED;
	}
	SSL_set_connect_state(a->ssl);
	SSL_set_msg_callback(a->ssl, probe__on_message);
	SSL_set_msg_callback_arg(a->ssl, a);
	for(;;){
		ERR_clear_error();
		rc = SSL_connect(a->ssl);
		if(rc == 1 || a->heard_tls){
			/* a close_notify, so that the broker does not log the probe's close as an error */
			(void)SSL_shutdown(a->ssl);
			return PROBE_TLS;
		}
		switch(SSL_get_error(a->ssl, rc)){
			case SSL_ERROR_WANT_READ:
			case SSL_ERROR_WANT_WRITE:
				/* a slice ran out (SO_RCVTIMEO / SO_SNDTIMEO) with nothing heard yet */
				if(probe__stopping(pr)) return PROBE_PENDING;
				if(clock__ms() > deadline_ms){
					return PROBE_UNCHECKED;
				}
				continue;
			default:
				return PROBE_PLAIN;
		}
	}
}

/* An address as the probe keeps it: v4-mapped IPv6 as IPv4, the port set. */
static bool probe__address(struct address_probe *ap, const struct sockaddr *sa, int port)
{
	memset(ap, 0, sizeof(*ap));
	if(sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)sa)->sin6_addr)){
		struct sockaddr_in *in = (struct sockaddr_in *)&ap->sa;
		in->sin_family = AF_INET;
		memcpy(&in->sin_addr, &((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr[12], 4);
	}else if(sa->sa_family == AF_INET){
		memcpy(&ap->sa, sa, sizeof(struct sockaddr_in));
	}else if(sa->sa_family == AF_INET6){
		memcpy(&ap->sa, sa, sizeof(struct sockaddr_in6));
	}else{
		return false;
	}
	if(ap->sa.ss_family == AF_INET){
		struct sockaddr_in *in = (struct sockaddr_in *)&ap->sa;
		in->sin_port = htons((uint16_t)port);
		ap->salen = sizeof(*in);
		inet_ntop(AF_INET, &in->sin_addr, ap->name, sizeof(ap->name));
	}else{
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ap->sa;
		in6->sin6_port = htons((uint16_t)port);
		in6->sin6_flowinfo = 0;
		ap->salen = sizeof(*in6);
		inet_ntop(AF_INET6, &in6->sin6_addr, ap->name, sizeof(ap->name));
	}
	return true;
}

static bool probe__same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if(a->ss_family != b->ss_family) return false;
	if(a->ss_family == AF_INET){
		const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a, *y = (const struct sockaddr_in6 *)b;
	return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr))
			&& (!IN6_IS_ADDR_LINKLOCAL(&x->sin6_addr) || x->sin6_scope_id == y->sin6_scope_id);
}

/* This host's addresses for every port (the loopbacks first, then those of interfaces that are
 * up), published for the broker thread; the count of them. */
static int probe__gather(struct probe *pr)
{
	struct sockaddr_in lo4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 lo6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct ifaddrs *ifs = NULL;
	int n = 0;

	for(int k = 0; k < 2; k++){
		for(int i = 0; i < pr->n; i++) probe__address(&pr->ports[i].addresses[n], k ? (struct sockaddr *)&lo6 : (struct sockaddr *)&lo4, pr->ports[i].port);
		n++;
	}
	if(!getifaddrs(&ifs)){
		for(struct ifaddrs *ifa = ifs; ifa && n < PROBE_ADDRESSES_MAX; ifa = ifa->ifa_next){
			struct address_probe candidate;
			bool seen = false;

			if(!ifa->ifa_addr || !(ifa->ifa_flags & IFF_UP) || !probe__address(&candidate, ifa->ifa_addr, pr->ports[0].port)) continue;
			for(int j = 0; j < n; j++) seen = seen || probe__same_address(&candidate.sa, &pr->ports[0].addresses[j].sa);
			if(seen) continue;
			for(int i = 0; i < pr->n; i++) probe__address(&pr->ports[i].addresses[n], ifa->ifa_addr, pr->ports[i].port);
			n++;
		}
		freeifaddrs(ifs);
	}
	for(int i = 0; i < pr->n; i++){
		for(int j = 0; j < n; j++) atomic_init(&pr->ports[i].addresses[j].verdict, PROBE_PENDING);
	}
	atomic_store_explicit(&pr->naddresses, n, memory_order_release);
	return n;
}

/* One address: TLS, PLAIN, NONE (nothing listens there), UNCHECKED (no answer in time);
 * PENDING when stopped. */
static enum probe_verdict probe__ask(struct probe *pr, struct address_probe *ap)
{
	int64_t deadline_ms = clock__ms() + PROBE_TIMEOUT_MS;
	struct attempt a = { .fd = -1 };
	enum probe_verdict v;

	if((a.fd = probe__connect(pr, ap, deadline_ms)) < 0){
		if(errno == ECANCELED) return PROBE_PENDING;
		if(errno == ETIMEDOUT){
			return PROBE_UNCHECKED;
		}
		return PROBE_NONE; /* refused there, or no route: nothing listens */
	}
	v = probe__handshake(pr, &a, deadline_ms);
	if(a.ssl) SSL_free(a.ssl);
	close(a.fd);
	ERR_clear_error();
	return v;
}

/* Appends "what on name" to the port's summary. */
static void probe__note(struct port_probe *pp, const char *what, const char *name)
{
	size_t len = strlen(pp->summary);

	snprintf(pp->summary + len, sizeof(pp->summary) - len, "%s%s on %s", len ? ", " : "", what, name);
}

/* One port, on every address: nothing listening anywhere before the broker's first tick is
 * asked again (the listeners open after the plugins start), later it is final. The port's own
 * verdict: PLAIN if any address answers in the clear, else TLS if any answers TLS, else
 * UNCHECKED. */
static void probe__port(struct probe *pr, struct port_probe *pp, int naddresses, int64_t started_ms)
{
	for(;;){
		/* read before connecting: a refusal with the listeners already open is final */
		bool listening = atomic_load_explicit(&pr->listening, memory_order_acquire);
		bool plain = false, tls = false, open = false;

		pp->summary[0] = '\0';
		for(int j = 0; j < naddresses; j++){
			struct address_probe *ap = &pp->addresses[j];
			enum probe_verdict v = probe__ask(pr, ap);

			if(v == PROBE_PENDING) return; /* stopped */
			if(v == PROBE_NONE) continue;
			open = true;
			atomic_store_explicit(&ap->verdict, v, memory_order_release);
			plain = plain || v == PROBE_PLAIN;
			tls = tls || v == PROBE_TLS;
			probe__note(pp, v == PROBE_TLS ? "TLS" : v == PROBE_PLAIN ? "in the clear" : "no answer in time", ap->name);
		}
		if(open || listening || clock__ms() - started_ms > PROBE_LISTEN_WAIT_MS){
			for(int j = 0; j < naddresses; j++){
				struct address_probe *ap = &pp->addresses[j];
				if(atomic_load_explicit(&ap->verdict, memory_order_relaxed) == PROBE_PENDING){
					atomic_store_explicit(&ap->verdict, PROBE_NONE, memory_order_release);
				}
			}
			if(!open) snprintf(pp->summary, sizeof(pp->summary), "nothing listens on it on this host's %d addresses", naddresses);
			probe__settle(pp, plain ? PROBE_PLAIN : tls ? PROBE_TLS : PROBE_UNCHECKED);
			return;
		}
		probe__pause();
		if(probe__stopping(pr)) return;
	}
}

static void *probe__run(void *arg)
{
	struct probe *pr = arg;
	int64_t started_ms = clock__ms();

	int naddresses = probe__gather(pr);

	for(int i = 0; i < pr->n && !probe__stopping(pr); i++) probe__port(pr, &pr->ports[i], naddresses, started_ms);
	OPENSSL_thread_stop();
	return NULL;
}

/* ---- broker thread ---- */

struct probe *probe__new(const int *ports, int n)
{
	struct probe *pr = calloc(1, sizeof(*pr));
	sigset_t all, old;
	int rc;

	if(!pr) return NULL;
	/* no verification: the question is only whether the port speaks TLS at all */
	if(!(pr->ctx = SSL_CTX_new(TLS_client_method()))){
		free(pr);
		return NULL;
	}
	SSL_CTX_set_verify(pr->ctx, SSL_VERIFY_NONE, NULL);
	atomic_init(&pr->stop, false);
	atomic_init(&pr->listening, false);
	atomic_init(&pr->naddresses, 0);
	for(int i = 0; i < n && i < DYNREG_PORTS_MAX; i++){
		pr->ports[i].port = ports[i];
		atomic_init(&pr->ports[i].verdict, PROBE_PENDING);
		pr->n++;
	}
	if(!pr->n) return pr;
	/* the thread starts with every signal blocked: the broker's signals are the broker
	 * thread's, and a write to a port that closed fails with EPIPE instead of raising SIGPIPE
	 * (the broker ignores it only once its listeners are open: signal__setup,
	 * src/mosquitto.c) */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&pr->thread, NULL, probe__run, pr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if(rc){
		SSL_CTX_free(pr->ctx);
		free(pr);
		return NULL;
	}
	pr->thread_started = true;
	return pr;
}

/* Within a slice or so: every wait of the thread is one. */
void probe__free(struct probe *pr)
{
	if(!pr) return;
	atomic_store_explicit(&pr->stop, true, memory_order_relaxed);
	if(pr->thread_started) pthread_join(pr->thread, NULL);
	SSL_CTX_free(pr->ctx);
	free(pr);
}

void probe__on_tick(struct probe *pr)
{
	if(!pr) return;
	atomic_store_explicit(&pr->listening, true, memory_order_release);
	for(int i = 0; i < pr->n; i++){
		struct port_probe *pp = &pr->ports[i];
		enum probe_verdict v;

		if(pp->logged || (v = atomic_load_explicit(&pp->verdict, memory_order_acquire)) == PROBE_PENDING) continue;
		pp->logged = true;
		switch(v){
			case PROBE_TLS:
				mosquitto_log_printf(MOSQ_LOG_INFO, PLUGIN_NAME ": dynreg: port %d answers TLS (%s): Link SDK devices are served "
						"there", pp->port, pp->summary);
				break;
			case PROBE_PLAIN:
				mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": plugin_opt_dynreg_tls_ports: port %d is not a TLS listener (%s): "
						"dynreg CONNECTs that arrive in the clear are refused, the DeviceSecret would travel in the clear. Name only "
						"ports that every listener using them serves with a certfile", pp->port, pp->summary);
				break;
			default:
				mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": dynreg: could not check that port %d answers TLS (%s): "
						"taking plugin_opt_dynreg_tls_ports' word for it", pp->port, pp->summary);
				break;
		}
	}
}

bool probe__pending(const struct probe *pr)
{
	for(int i = 0; pr && i < pr->n; i++){
		if(!pr->ports[i].logged) return true;
	}
	return false;
}

enum probe_verdict probe__verdict_at(const struct probe *pr, const struct sockaddr *local)
{
	struct address_probe want;
	int n, port;

	if(!pr || !local) return PROBE_NONE;
	if(local->sa_family == AF_INET) port = ntohs(((const struct sockaddr_in *)local)->sin_port);
	else if(local->sa_family == AF_INET6) port = ntohs(((const struct sockaddr_in6 *)local)->sin6_port);
	else return PROBE_NONE;
	if(!probe__address(&want, local, port)) return PROBE_NONE;
	if(!(n = atomic_load_explicit(&pr->naddresses, memory_order_acquire))) return PROBE_PENDING;
	for(int i = 0; i < pr->n; i++){
		if(pr->ports[i].port != port) continue;
		for(int j = 0; j < n; j++){
			const struct address_probe *ap = &pr->ports[i].addresses[j];
			if(probe__same_address(&ap->sa, &want.sa)) return (enum probe_verdict)atomic_load_explicit(&ap->verdict, memory_order_acquire);
		}
	}
	return PROBE_NONE;
}

enum probe_verdict probe__verdict(const struct probe *pr, int port)
{
	for(int i = 0; pr && i < pr->n; i++){
		if(pr->ports[i].port == port) return (enum probe_verdict)atomic_load_explicit(&pr->ports[i].verdict, memory_order_acquire);
	}
	return PROBE_UNCHECKED;
}

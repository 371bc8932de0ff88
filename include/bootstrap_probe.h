#ifndef BOOTSTRAP_PROBE_H
#define BOOTSTRAP_PROBE_H
/* Whether the ports named in plugin_opt_dynreg_tls_ports answer TLS (plugin/probe/tls_probe.c):
 * one TLS handshake to each on every address of this host, made by the probe thread. These functions are the
 * broker thread's; none of them waits but probe__free, which stops and joins the thread. */
#include <stdbool.h>
#include <stdint.h>

enum probe_verdict {
	PROBE_PENDING,   /* not asked yet, or no answer yet */
	PROBE_TLS,       /* a TLS record came back */
	PROBE_PLAIN,     /* it closed, or answered with something else than TLS */
	PROBE_UNCHECKED, /* no answer in time, or (a port) nothing listens on this host's addresses: the operator's word */
	PROBE_NONE,      /* (an address) nothing listens there, or an address the probe did not ask */
};

struct probe;
/* Starts the probe thread. NULL when out of memory (or OpenSSL gives no context, or no thread). */
struct probe *probe__new(const int *ports, int n);
/* Stops the thread (within about 100 ms, even mid-handshake) and joins it. */
void probe__free(struct probe *probe);
/* From MOSQ_EVT_TICK: tells the thread the listeners are open, logs each new verdict once. */
void probe__on_tick(struct probe *probe);
/* A verdict not yet logged. */
bool probe__pending(const struct probe *probe);
/* A port as a whole: PLAIN if any address answers it in the clear. PROBE_UNCHECKED for a port
 * it was not given. */
enum probe_verdict probe__verdict(const struct probe *probe, int port);
struct sockaddr;
/* The address and port a client came in on (its socket's local address): PROBE_NONE for one
 * the probe did not ask (the client's address is then not one of this host's listed ones). */
enum probe_verdict probe__verdict_at(const struct probe *probe, const struct sockaddr *local);

#endif

#ifndef BOOTSTRAP_PROBE_H
#define BOOTSTRAP_PROBE_H
/* Whether the ports named in plugin_opt_dynreg_tls_ports answer TLS (plugin/broker/probe.c):
 * one TLS handshake from loopback to each, stepped from the tick on non-blocking sockets.
 * Broker thread only. */
#include <stdbool.h>
#include <stdint.h>

enum probe_verdict {
	PROBE_PENDING,   /* not asked yet, or no answer yet */
	PROBE_TLS,       /* a TLS record came back */
	PROBE_PLAIN,     /* it closed, or answered with something else than TLS */
	PROBE_UNCHECKED, /* not reachable from loopback, or no answer in time: the operator's word */
};

struct probe;
/* NULL when out of memory (or OpenSSL gives no context). */
struct probe *probe__new(const int *ports, int n);
void probe__free(struct probe *probe);
/* One non-blocking look at every port still pending; logs each verdict once. */
void probe__step(struct probe *probe, int64_t now_ms);
bool probe__pending(const struct probe *probe);
/* PROBE_UNCHECKED for a port it was not given. */
enum probe_verdict probe__verdict(const struct probe *probe, int port);

#endif

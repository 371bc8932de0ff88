#ifndef BOOTSTRAP_PROBE_H
#define BOOTSTRAP_PROBE_H
/* Whether the ports named in plugin_opt_dynreg_tls_ports answer TLS (plugin/probe/tls_probe.c):
 * one TLS handshake from loopback to each, made by the probe thread. These functions are the
 * broker thread's; none of them waits but probe__free, which stops and joins the thread. */
#include <stdbool.h>
#include <stdint.h>

enum probe_verdict {
	PROBE_PENDING,   /* not asked yet, or no answer yet */
	PROBE_TLS,       /* a TLS record came back */
	PROBE_PLAIN,     /* it closed, or answered with something else than TLS */
	PROBE_UNCHECKED, /* not reachable from loopback, or no answer in time: the operator's word */
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
/* PROBE_UNCHECKED for a port it was not given. */
enum probe_verdict probe__verdict(const struct probe *probe, int port);

#endif

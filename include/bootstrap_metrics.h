#ifndef BOOTSTRAP_METRICS_H
#define BOOTSTRAP_METRICS_H
/* Counters for $SYS/broker/bootstrap/: what the broker thread saw (requests, replies by
 * code, in all and per product, latency over the last interval) plus the worker's
 * (jobs_stats). A topic appears once its value has been non-zero (a counter moved, a gauge
 * was set) and is published from then on, 0 included; requests (and shared/state in
 * multi-broker mode) from the start. Broker thread only. */
#include <stddef.h>
#include <stdint.h>

#include "bootstrap_jobs.h"
#include "bootstrap_reply.h"

#define METRICS_TOPIC_PREFIX "$SYS/broker/bootstrap/"
#define METRICS_CODES (BOOTSTRAP_NOT_REGISTERED + 1)
#define METRICS_LATENCY_SAMPLES 4096
/* products counted apart: every product served at start-up and after each reload, so that a
 * churn of products files cannot grow the table for ever */
#define METRICS_PRODUCTS_MAX 4096
/* the topics rendered in a fixed order (all but the per-product ones), each remembered once it
 * moved: the per-action ones, the per-code ones, and room for the 30 others */
#define METRICS_SLOTS (40 + METRICS_CODES + PLATFORM_ACTIONS * (CALL_OUTCOMES + 1))

struct metrics_product {
	char key[PRODUCT_KEY_MAX + 1];
	unsigned long long replies[METRICS_CODES];
};

struct metrics {
	unsigned long long requests;
	unsigned long long requests_cbor;            /* of requests: those on <request_topic>/cbor */
	unsigned long long replies[METRICS_CODES];
	unsigned long long dropped_connection_ended; /* bound replies whose connection had ended */
	unsigned long long dropped_rate_limited;     /* refusals not answered: over the refusal limit */
	unsigned long long dropped_unaddressable;    /* refusals not answered: no usable client id */
	double latency_ms[METRICS_LATENCY_SAMPLES]; /* this interval's, the first ones kept */
	int nlatency;
	struct metrics_product *products; /* sorted by key; only products the broker serves (or served) */
	size_t nproducts;
	unsigned char moved[(METRICS_SLOTS + 7) / 8]; /* by slot: its value has been non-zero */
};

void metrics__request(struct metrics *m);
/* Counts product_key's replies apart from now on (a product the broker serves: never a name a
 * client made up). 0, or -1 when out of memory or past METRICS_PRODUCTS_MAX. */
int metrics__product(struct metrics *m, const char *product_key);
/* A reply went out, for product_key (NULL, or a product not counted apart: the totals alone);
 * latency_ms < 0 when there was no platform flow to time. */
void metrics__reply(struct metrics *m, const char *product_key, enum bootstrap_code code, double latency_ms);
void metrics__cleanup(struct metrics *m);

/* Calls emit(topic, value) for every metric that has moved (and those always present), then
 * starts a new latency interval. */
void metrics__render(struct metrics *m, const struct jobs_stats *st, size_t outstanding,
		void (*emit)(const char *topic, const char *value, void *ud), void *ud);
/* Multi-broker mode's metrics, under shared/: Redis's state and round trips, and what the
 * worker (st) and the broker thread (late_replays) did with them. */
void metrics__render_shared(struct metrics *m, const struct shared_stats *sst, const struct jobs_stats *st, unsigned long long late_replays,
		void (*emit)(const char *topic, const char *value, void *ud), void *ud);

#endif

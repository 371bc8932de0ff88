/* $SYS/broker/bootstrap/ counters: a topic appears when it first moves. Broker thread only. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap_metrics.h"

static const char *const call_outcome_names[CALL_OUTCOMES] = {
	"ok", "exists", "not_exists", "auth", "refused", "throttled", "unavailable", "transport_error", "not_yet", "signature",
};

void metrics__request(struct metrics *m)
{
	m->requests++;
}

static int product__cmp(const void *key, const void *entry)
{
	return strcmp(key, ((const struct metrics_product *)entry)->key);
}

static struct metrics_product *product__find(const struct metrics *m, const char *product_key)
{
	if(!product_key || !m->nproducts) return NULL;
	return bsearch(product_key, m->products, m->nproducts, sizeof(*m->products), product__cmp);
}

int metrics__product(struct metrics *m, const char *product_key)
{
	struct metrics_product *grown;
	size_t at = 0;

	if(product__find(m, product_key)) return 0;
	if(strlen(product_key) > PRODUCT_KEY_MAX || m->nproducts >= METRICS_PRODUCTS_MAX) return -1;
	grown = realloc(m->products, (m->nproducts + 1) * sizeof(*grown));
	if(!grown) return -1;
	m->products = grown;
	while(at < m->nproducts && strcmp(m->products[at].key, product_key) < 0) at++;
	memmove(&m->products[at + 1], &m->products[at], (m->nproducts - at) * sizeof(*m->products));
	memset(&m->products[at], 0, sizeof(*m->products));
	memcpy(m->products[at].key, product_key, strlen(product_key) + 1);
	m->nproducts++;
	return 0;
}

void metrics__reply(struct metrics *m, const char *product_key, enum bootstrap_code code, double latency_ms)
{
	struct metrics_product *prod = product__find(m, product_key);

	if((int)code >= 0 && (int)code < METRICS_CODES){
		m->replies[code]++;
		if(prod) prod->replies[code]++;
	}
	if(latency_ms >= 0 && m->nlatency < METRICS_LATENCY_SAMPLES) m->latency_ms[m->nlatency++] = latency_ms;
}

static int double__cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* shared/'s topics: the last slots (metrics__render_shared) */
#define SHARED_SLOTS 16

/* One rendering: the topics in their fixed order, each taking the next slot before end. */
struct render {
	struct metrics *m;
	void (*emit)(const char *topic, const char *value, void *ud);
	void *ud;
	unsigned slot, end;
};

/* A topic appears once its value has been non-zero (always: from the start) and stays from
 * then on, 0 included: an idle broker shows a few topics, not 170 zeros, and a monitor never
 * sees one vanish. */
static void render__value(struct render *r, const char *topic, const char *value, bool nonzero, bool always)
{
	unsigned slot = r->slot++;

	/* past its slots (a topic added without growing METRICS_SLOTS): published, never lost */
	if(slot < r->end){
		if(nonzero) r->m->moved[slot / 8] |= (unsigned char)(1u << (slot % 8));
		if(!always && !(r->m->moved[slot / 8] & (1u << (slot % 8)))) return;
	}
	r->emit(topic, value, r->ud);
}

static void render__number(struct render *r, const char *topic, unsigned long long v)
{
	char value[32];

	snprintf(value, sizeof(value), "%llu", v);
	render__value(r, topic, value, v != 0, false);
}

static void render__ms(struct render *r, const char *topic, double v)
{
	char value[32];

	snprintf(value, sizeof(value), "%.1f", v);
	render__value(r, topic, value, v != 0.0, false);
}

void metrics__render(struct metrics *m, const struct jobs_stats *st, size_t outstanding,
		void (*emit)(const char *topic, const char *value, void *ud), void *ud)
{
	struct render r = { m, emit, ud, 0, METRICS_SLOTS - SHARED_SLOTS };
	char topic[192], value[32];

	/* the one counter there from the start: the metrics are being published */
	snprintf(value, sizeof(value), "%llu", m->requests);
	render__value(&r, METRICS_TOPIC_PREFIX "requests", value, m->requests != 0, true);
	render__number(&r, METRICS_TOPIC_PREFIX "requests/cbor", m->requests_cbor);
	for(int c = 0; c < METRICS_CODES; c++){
		snprintf(topic, sizeof(topic), METRICS_TOPIC_PREFIX "replies/%s", reply__code_name((enum bootstrap_code)c));
		render__number(&r, topic, m->replies[c]);
	}
	/* per product, each code once it happened (the topics name the product: a product nobody
	 * asked for is not listed to whoever may read $SYS; counters that only grow, so they need
	 * no slot to stay once published) */
	for(size_t i = 0; i < m->nproducts; i++){
		for(int c = 0; c < METRICS_CODES; c++){
			if(!m->products[i].replies[c]) continue;
			snprintf(topic, sizeof(topic), METRICS_TOPIC_PREFIX "products/%s/replies/%s", m->products[i].key,
					reply__code_name((enum bootstrap_code)c));
			snprintf(value, sizeof(value), "%llu", m->products[i].replies[c]);
			emit(topic, value, ud);
		}
	}
	render__number(&r, METRICS_TOPIC_PREFIX "dropped/connection_closed", m->dropped_connection_ended);
	render__number(&r, METRICS_TOPIC_PREFIX "dropped/rate_limited", m->dropped_rate_limited);
	render__number(&r, METRICS_TOPIC_PREFIX "dropped/unaddressable", m->dropped_unaddressable);
	/* per action (bootstrap_actions.h): its calls by outcome, and the devices their answers
	 * carried (for a batch action, how many devices its calls served) */
	for(int a = 0; a < PLATFORM_ACTIONS; a++){
		for(int o = 0; o < CALL_OUTCOMES; o++){
			snprintf(topic, sizeof(topic), METRICS_TOPIC_PREFIX "platform/%s/%s", platform_actions[a].name, call_outcome_names[o]);
			render__number(&r, topic, st->calls_by[a][o]);
		}
		snprintf(topic, sizeof(topic), METRICS_TOPIC_PREFIX "platform/%s/devices", platform_actions[a].name);
		render__number(&r, topic, st->devices_by[a]);
	}
	render__number(&r, METRICS_TOPIC_PREFIX "platform/batch_registrations", st->applies);
	render__number(&r, METRICS_TOPIC_PREFIX "platform/batch_registrations_handed_back", st->applies_abandoned);
	/* what devices joining a batch registration are told to wait, and what it is learnt from:
	 * once one has started (before, the defaults have told nobody anything) */
	snprintf(value, sizeof(value), "%.1f", st->batch_check_ms);
	render__value(&r, METRICS_TOPIC_PREFIX "platform/batch_estimate/check_ms", value, st->applies != 0, false);
	snprintf(value, sizeof(value), "%.1f", st->batch_create_ms);
	render__value(&r, METRICS_TOPIC_PREFIX "platform/batch_estimate/create_ms", value, st->applies != 0, false);
	render__number(&r, METRICS_TOPIC_PREFIX "platform/batch_estimate/checks_seen", st->batch_checks_seen);
	render__number(&r, METRICS_TOPIC_PREFIX "platform/batch_estimate/creates_seen", st->batch_creates_seen);
	render__number(&r, METRICS_TOPIC_PREFIX "platform/batch_names", st->batch_names);
	render__number(&r, METRICS_TOPIC_PREFIX "platform/batch_names_told_busy", st->batch_names_told);
	render__number(&r, METRICS_TOPIC_PREFIX "platform/batch_names_failed", st->batch_names_failed);
	render__number(&r, METRICS_TOPIC_PREFIX "platform/calls", st->calls);
	render__number(&r, METRICS_TOPIC_PREFIX "platform/retries", st->retries);
	render__number(&r, METRICS_TOPIC_PREFIX "platform/throttled", st->throttled);
	render__number(&r, METRICS_TOPIC_PREFIX "queue/outstanding", outstanding);
	render__number(&r, METRICS_TOPIC_PREFIX "queue/waiting", st->waiting);
	render__number(&r, METRICS_TOPIC_PREFIX "queue/inflight", st->inflight);

	/* latency over the last interval; 0 when nothing was answered */
	qsort(m->latency_ms, (size_t)m->nlatency, sizeof(double), double__cmp);
	render__ms(&r, METRICS_TOPIC_PREFIX "latency/p50_ms", m->nlatency ? m->latency_ms[m->nlatency / 2] : 0.0);
	render__ms(&r, METRICS_TOPIC_PREFIX "latency/p99_ms", m->nlatency ? m->latency_ms[(m->nlatency * 99) / 100] : 0.0);
	m->nlatency = 0;
}

void metrics__cleanup(struct metrics *m)
{
	free(m->products);
	m->products = NULL;
	m->nproducts = 0;
}

void metrics__render_shared(struct metrics *m, const struct shared_stats *sst, const struct jobs_stats *st, unsigned long long late_replays,
		void (*emit)(const char *topic, const char *value, void *ud), void *ud)
{
	struct render r = { m, emit, ud, METRICS_SLOTS - SHARED_SLOTS, METRICS_SLOTS };
	char value[32];

	/* there from the start: whether this broker shares its state */
	render__value(&r, METRICS_TOPIC_PREFIX "shared/state", sst->state == SHARED_UP ? "connected" : sst->state == SHARED_DOWN
			? "unreachable" : "connecting", true, true);
	render__number(&r, METRICS_TOPIC_PREFIX "shared/outages", sst->downs);
	render__number(&r, METRICS_TOPIC_PREFIX "shared/brokers", (unsigned long long)(sst->brokers > 0 ? sst->brokers : 0));
	render__number(&r, METRICS_TOPIC_PREFIX "shared/round_trips", sst->round_trips);
	render__number(&r, METRICS_TOPIC_PREFIX "shared/commands", sst->commands);
	render__number(&r, METRICS_TOPIC_PREFIX "shared/unanswered", sst->refused);
	render__number(&r, METRICS_TOPIC_PREFIX "shared/fallback", st->shared_fallback ? 1 : 0);
	/* moves with fallback: a share below the whole quota */
	snprintf(value, sizeof(value), "%.3f", st->shared_fallback ? st->shared_share : 1.0);
	render__value(&r, METRICS_TOPIC_PREFIX "shared/quota_share", value, st->shared_fallback, false);
	render__number(&r, METRICS_TOPIC_PREFIX "shared/replays_refused", st->shared_replays + late_replays);
	render__number(&r, METRICS_TOPIC_PREFIX "shared/flow_waits", st->shared_waits);
	render__number(&r, METRICS_TOPIC_PREFIX "shared/flow_busy", st->shared_busy);
	render__number(&r, METRICS_TOPIC_PREFIX "shared/flow_after_other", st->shared_hints);
	render__number(&r, METRICS_TOPIC_PREFIX "shared/admitted_locally", st->shared_local);
	render__number(&r, METRICS_TOPIC_PREFIX "shared/quota_leases", st->shared_leases);
	render__number(&r, METRICS_TOPIC_PREFIX "shared/quota_slots", st->shared_slots);
	render__number(&r, METRICS_TOPIC_PREFIX "shared/quota_slots_unused", st->shared_slots_expired);
}

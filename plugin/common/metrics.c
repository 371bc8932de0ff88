/* $SYS/broker/bootstrap/ counters. Broker thread only. */
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

static void emit__number(void (*emit)(const char *, const char *, void *), void *ud, const char *topic, unsigned long long v)
{
	char value[32];

	snprintf(value, sizeof(value), "%llu", v);
	emit(topic, value, ud);
}

void metrics__render(struct metrics *m, const struct jobs_stats *st, size_t outstanding,
		void (*emit)(const char *topic, const char *value, void *ud), void *ud)
{
	char topic[192], value[32];

	emit__number(emit, ud, METRICS_TOPIC_PREFIX "requests", m->requests);
	for(int c = 0; c < METRICS_CODES; c++){
		snprintf(topic, sizeof(topic), METRICS_TOPIC_PREFIX "replies/%s", reply__code_name((enum bootstrap_code)c));
		emit__number(emit, ud, topic, m->replies[c]);
	}
	/* per product, once it has had a reply (the topics name the product: a product nobody asked
	 * for is not listed to whoever may read $SYS): ok, and the other codes once they happened (a
	 * counter never goes back to 0: a topic once published stays right) */
	for(size_t i = 0; i < m->nproducts; i++){
		unsigned long long any = 0;
		for(int c = 0; c < METRICS_CODES; c++) any += m->products[i].replies[c];
		if(!any) continue;
		for(int c = 0; c < METRICS_CODES; c++){
			if(c != BOOTSTRAP_OK && !m->products[i].replies[c]) continue;
			snprintf(topic, sizeof(topic), METRICS_TOPIC_PREFIX "products/%s/replies/%s", m->products[i].key,
					reply__code_name((enum bootstrap_code)c));
			emit__number(emit, ud, topic, m->products[i].replies[c]);
		}
	}
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "dropped/connection_closed", m->dropped_connection_ended);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "dropped/rate_limited", m->dropped_rate_limited);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "dropped/unaddressable", m->dropped_unaddressable);
	/* per action (bootstrap_actions.h): its calls by outcome, and the devices their answers
	 * carried (for a batch action, how many devices its calls served) */
	for(int a = 0; a < PLATFORM_ACTIONS; a++){
		for(int o = 0; o < CALL_OUTCOMES; o++){
			snprintf(topic, sizeof(topic), METRICS_TOPIC_PREFIX "platform/%s/%s", platform_actions[a].name, call_outcome_names[o]);
			emit__number(emit, ud, topic, st->calls_by[a][o]);
		}
		snprintf(topic, sizeof(topic), METRICS_TOPIC_PREFIX "platform/%s/devices", platform_actions[a].name);
		emit__number(emit, ud, topic, st->devices_by[a]);
	}
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "platform/batch_registrations", st->applies);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "platform/batch_registrations_handed_back", st->applies_abandoned);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "platform/calls", st->calls);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "platform/retries", st->retries);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "platform/throttled", st->throttled);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "queue/outstanding", outstanding);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "queue/waiting", st->waiting);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "queue/inflight", st->inflight);

	/* latency over the last interval; 0 when nothing was answered */
	qsort(m->latency_ms, (size_t)m->nlatency, sizeof(double), double__cmp);
	snprintf(value, sizeof(value), "%.1f", m->nlatency ? m->latency_ms[m->nlatency / 2] : 0.0);
	emit(METRICS_TOPIC_PREFIX "latency/p50_ms", value, ud);
	snprintf(value, sizeof(value), "%.1f", m->nlatency ? m->latency_ms[(m->nlatency * 99) / 100] : 0.0);
	emit(METRICS_TOPIC_PREFIX "latency/p99_ms", value, ud);
	m->nlatency = 0;
}

void metrics__cleanup(struct metrics *m)
{
	free(m->products);
	m->products = NULL;
	m->nproducts = 0;
}

void metrics__render_shared(const struct shared_stats *sst, const struct jobs_stats *st, unsigned long long late_replays,
		void (*emit)(const char *topic, const char *value, void *ud), void *ud)
{
	char value[32];

	emit(METRICS_TOPIC_PREFIX "shared/state", sst->state == SHARED_UP ? "connected" : sst->state == SHARED_DOWN ? "unreachable" : "connecting", ud);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "shared/outages", sst->downs);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "shared/brokers", (unsigned long long)(sst->brokers > 0 ? sst->brokers : 0));
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "shared/round_trips", sst->round_trips);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "shared/commands", sst->commands);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "shared/unanswered", sst->refused);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "shared/fallback", st->shared_fallback ? 1 : 0);
	snprintf(value, sizeof(value), "%.3f", st->shared_fallback ? st->shared_share : 1.0);
	emit(METRICS_TOPIC_PREFIX "shared/quota_share", value, ud);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "shared/replays_refused", st->shared_replays + late_replays);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "shared/flow_waits", st->shared_waits);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "shared/flow_busy", st->shared_busy);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "shared/flow_after_other", st->shared_hints);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "shared/admitted_locally", st->shared_local);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "shared/quota_leases", st->shared_leases);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "shared/quota_slots", st->shared_slots);
	emit__number(emit, ud, METRICS_TOPIC_PREFIX "shared/quota_slots_unused", st->shared_slots_expired);
}

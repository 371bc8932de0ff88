/* Batch lookups (plugin/worker/lookup.c, BatchQueryDeviceDetail) on a fake clock against the
 * stateful fake platform: who is looked up together, what the found and the missing devices
 * get, transient failures, a missing grant, the probe under strategy auto, and one product
 * per batch. */
#include "bootstrap_platform.h"
#include "bootstrap_scheduler.h"
#include "fake_world.h"
#include "unit.h"

static struct jobs_stats stats_of(const struct world *w)
{
	struct jobs_stats st;
	scheduler__stats(w->s, &st);
	return st;
}

static void world_lookups(struct world *w, uint64_t seed)
{
	world_init(w, seed);
	w->cfg.strategy = STRATEGY_QUERY_FIRST;
}

static void submit_range(struct world *w, const char *pk, const char *prefix, int from, int to, bool preregister)
{
	char name[32];
	for(int i = from; i < to; i++){
		snprintf(name, sizeof(name), "%s%04d", prefix, i);
		if(preregister) fp_preregister(&w->fp, pk ? pk : "a1Prod", name);
		world_submit(w, pk, name);
	}
}

/* Existing devices waiting together: one BatchQueryDeviceDetail, each its own triple. */
static void test_lookup_found(void)
{
	struct world w;
	const struct fp_call *c;
	struct jobs_stats st;

	world_lookups(&w, 1);
	world_start(&w);
	submit_range(&w, NULL, "old-", 0, 30, true);
	CHECK(world_settle(&w, 5000));
	CHECK(fp_count(&w.fp, ACTION_BATCH_QUERY) == 1 && fp_count(&w.fp, ACTION_QUERY) == 0);
	c = fp_nth(&w.fp, ACTION_BATCH_QUERY, 0);
	CHECK(c && c->nnames == 30 && !strcmp(c->product_key, "a1Prod"));
	for(int i = 0; i < 30; i++){
		char name[32];
		snprintf(name, sizeof(name), "old-%04d", i);
		CHECK(world_req(&w, name)->result == BOOTSTRAP_OK);
		CHECK_STR(world_req(&w, name)->secret, fp_device(&w.fp, "a1Prod", name)->secret);
	}
	st = stats_of(&w);
	CHECK(st.devices_by[ACTION_BATCH_QUERY] == 30);
	CHECK(st.calls_by[ACTION_BATCH_QUERY][CALL_OK] == 1);
	CHECK(w.violations == 0);
	world_free(&w);
}

/* Found and missing in one lookup: the missing ones are registered singly, and only they. */
static void test_lookup_mixed(void)
{
	struct world w;

	world_lookups(&w, 2);
	world_start(&w);
	submit_range(&w, NULL, "old-", 0, 10, true);
	submit_range(&w, NULL, "new-", 0, 10, false);
	CHECK(world_settle(&w, 10000));
	CHECK(fp_count(&w.fp, ACTION_BATCH_QUERY) == 1 && fp_nth(&w.fp, ACTION_BATCH_QUERY, 0)->nnames == 20);
	CHECK(fp_count(&w.fp, ACTION_REGISTER) == 10);
	for(size_t i = 0; i < fp_count(&w.fp, ACTION_REGISTER); i++) CHECK(!strncmp(fp_nth(&w.fp, ACTION_REGISTER, i)->names, "new-", 4));
	CHECK(w.fp.created_by_register == 10);
	for(size_t i = 0; i < w.nreq; i++) CHECK(w.req[i].answered && w.req[i].result == BOOTSTRAP_OK);
	CHECK(w.violations == 0);
	world_free(&w);
}

/* A lone device is never held for a batch; two products are never in one lookup. */
static void test_lookup_lone_and_products(void)
{
	struct world w;

	world_lookups(&w, 3);
	world_start(&w);
	fp_preregister(&w.fp, "a1Prod", "old-lone");
	world_submit(&w, NULL, "old-lone");
	CHECK(world_settle(&w, 5000));
	CHECK(fp_count(&w.fp, ACTION_BATCH_QUERY) == 0 && fp_count(&w.fp, ACTION_QUERY) == 1);

	submit_range(&w, "a1Prod", "same-", 0, 5, true);
	submit_range(&w, "a1Other", "same-", 0, 5, true);
	CHECK(world_settle(&w, 5000));
	/* the oldest's product in the lookup, the other's five go on singly meanwhile (the next
	 * lookup token is 200 ms away) */
	CHECK(fp_count(&w.fp, ACTION_BATCH_QUERY) == 1);
	CHECK(!strcmp(fp_nth(&w.fp, ACTION_BATCH_QUERY, 0)->product_key, "a1Prod") && fp_nth(&w.fp, ACTION_BATCH_QUERY, 0)->nnames == 5);
	CHECK(fp_count(&w.fp, ACTION_QUERY) == 1 + 5);
	for(size_t i = 1; i < fp_count(&w.fp, ACTION_QUERY); i++) CHECK(!strcmp(fp_nth(&w.fp, ACTION_QUERY, i)->product_key, "a1Other"));
	/* the same name in two products: each its own product's device */
	for(size_t i = 0; i < w.nreq; i++){
		CHECK(w.req[i].result == BOOTSTRAP_OK);
		CHECK_STR(w.req[i].secret, fp_device(&w.fp, w.req[i].product_key, w.req[i].device_id)->secret);
	}
	CHECK(w.violations == 0);
	world_free(&w);
}

/* A lookup answered 5xx: every device backs off and is batched again (one retry counted). */
static void test_lookup_transient(void)
{
	struct world w;
	struct jobs_stats st;

	world_lookups(&w, 4);
	world_start(&w);
	world_fault(&w, ACTION_BATCH_QUERY, FAULT_5XX, 1);
	submit_range(&w, NULL, "old-", 0, 20, true);
	CHECK(world_settle(&w, 10000));
	st = stats_of(&w);
	CHECK(st.retries == 1);
	CHECK(st.calls_by[ACTION_BATCH_QUERY][CALL_UNAVAILABLE] == 1);
	CHECK(fp_count(&w.fp, ACTION_BATCH_QUERY) >= 1);
	for(size_t i = 0; i < w.nreq; i++) CHECK(w.req[i].result == BOOTSTRAP_OK);
	CHECK(w.violations == 0);
	world_free(&w);
}

/* Forbidden.RAM on BatchQueryDeviceDetail: lookups off (until the credentials change), the
 * devices asked about singly. */
static void test_lookup_grant_missing(void)
{
	struct world w;
	struct jobs_stats st;

	world_lookups(&w, 5);
	w.fp.denied[ACTION_BATCH_QUERY] = true;
	world_start(&w);
	submit_range(&w, NULL, "old-", 0, 20, true);
	CHECK(world_settle(&w, 10000));
	st = stats_of(&w);
	CHECK(st.batching_refused[ACTION_BATCH_QUERY] && !st.batching_refused[ACTION_BATCH_CHECK]);
	CHECK(fp_count(&w.fp, ACTION_BATCH_QUERY) == 1 && fp_count(&w.fp, ACTION_QUERY) == 20);
	submit_range(&w, NULL, "old-", 20, 30, true);
	CHECK(world_settle(&w, 10000));
	CHECK(fp_count(&w.fp, ACTION_BATCH_QUERY) == 1); /* not again */
	for(size_t i = 0; i < w.nreq; i++) CHECK(w.req[i].result == BOOTSTRAP_OK);
	world_free(&w);
}

/* Strategy auto, a crowd big enough for a batch registration, nothing known yet: the newest
 * hundred are looked up first (the probe) while the oldest go on singly. */
static void test_probe(void)
{
	struct world w;
	const struct fp_call *c;

	world_init(&w, 6);
	w.cfg.strategy = STRATEGY_AUTO;
	w.cfg.qps[ACTION_REGISTER] = 10;
	world_start(&w);
	submit_range(&w, NULL, "dev-", 0, 150, false);
	/* the batched devices are told busy and come back after retryAfter */
	CHECK(world_settle_follow(&w, 60000));
	c = fp_nth(&w.fp, ACTION_BATCH_QUERY, 0);
	CHECK(c && c->nnames == 100 && !strncmp(c->names, "dev-0050,", 9));
	CHECK(c && w.fp.calls[0].action == ACTION_BATCH_QUERY);
	/* none existed: the fleet is new, and a batch registration follows */
	CHECK(fp_count(&w.fp, ACTION_BATCH_CHECK) >= 1);
	CHECK(stats_of(&w).existing_share < 0.5);
	for(size_t i = 0; i < w.nreq; i++) CHECK(w.req[i].result == BOOTSTRAP_OK || (w.req[i].result == BOOTSTRAP_BUSY && w.req[i].followed));
	CHECK(w.fp.created_by_register + w.fp.created_by_batch == 150);
	CHECK(w.violations == 0);
	world_free(&w);
}

/* A quota of 1/s with Redis down (one broker: its fallback share, 0.95/s): still never two
 * lookups in one second, whatever the bucket's slack after a quiet spell. */
static void test_lookup_quota_one_in_fallback(void)
{
	struct world w;

	world_lookups(&w, 7);
	world_use_redis(&w);
	w.redis_state = SHARED_DOWN;
	w.cfg.qps[ACTION_BATCH_QUERY] = 1;
	w.cfg.qps[ACTION_QUERY] = 1; /* single queries no faster: lookups are worth waiting for */
	world_start(&w);
	world_run_until(&w, w.now + 5000); /* quiet: the bucket fills */
	for(int round = 0; round < 3; round++){
		char prefix[16];
		snprintf(prefix, sizeof(prefix), "r%d-", round);
		submit_range(&w, NULL, prefix, 0, 4, true);
		world_run_until(&w, w.now + 300);
	}
	CHECK(world_settle(&w, 20000));
	CHECK(stats_of(&w).shared_fallback);
	CHECK(fp_count(&w.fp, ACTION_BATCH_QUERY) >= 2);
	for(size_t i = 1; i < fp_count(&w.fp, ACTION_BATCH_QUERY); i++){
		CHECK(fp_nth(&w.fp, ACTION_BATCH_QUERY, i)->at_ms - fp_nth(&w.fp, ACTION_BATCH_QUERY, i - 1)->at_ms >= 1000);
	}
	CHECK(w.violations == 0);
	world_free(&w);
}

int main(void)
{
	RUN(test_lookup_found);
	RUN(test_lookup_mixed);
	RUN(test_lookup_lone_and_products);
	RUN(test_lookup_transient);
	RUN(test_lookup_grant_missing);
	RUN(test_probe);
	RUN(test_lookup_quota_one_in_fallback);
	return unit_main_result();
}

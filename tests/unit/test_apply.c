/* Batch registrations (plugin/worker/apply.c) on a fake clock against the stateful fake
 * platform: every stage transition (check, poll, register, poll, pages), a failed check, a
 * stage that stalls, a forgotten ApplyId (before and after the register call), Throttling of
 * a batch call, a deadline reached mid-batch, a refused grant. */
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

/* n new devices dev-0000.. at once, register first (no lookup probe), batching auto. */
static void world_backlog(struct world *w, uint64_t seed, double register_qps, int n)
{
	char name[32];

	world_init(w, seed);
	w->cfg.strategy = STRATEGY_REGISTER_FIRST;
	w->cfg.qps[ACTION_REGISTER] = register_qps;
	world_start(w);
	for(int i = 0; i < n; i++){
		snprintf(name, sizeof(name), "dev-%04d", i);
		world_submit(w, NULL, name);
	}
}

/* The batch actions of the calls, consecutive repeats collapsed, as letters:
 * C check, S status, R register, P page. */
static void stages(const struct world *w, char *out, size_t len)
{
	static const char letter[PLATFORM_ACTIONS] = { [ACTION_BATCH_CHECK] = 'C', [ACTION_BATCH_STATUS] = 'S',
		[ACTION_BATCH_REGISTER] = 'R', [ACTION_BATCH_PAGE] = 'P' };
	size_t n = 0;

	for(size_t i = 0; i < w->fp.ncalls && n + 1 < len; i++){
		char l = letter[w->fp.calls[i].action];
		if(l && (n == 0 || out[n - 1] != l)) out[n++] = l;
	}
	out[n] = '\0';
}

static bool all_ok(const struct world *w, int n)
{
	char name[32];
	bool ok = true;

	for(int i = 0; i < n; i++){
		snprintf(name, sizeof(name), "dev-%04d", i);
		const struct tracked *t = world_req(w, name);
		if(!t || !t->answered || t->result != BOOTSTRAP_OK){
			fprintf(stderr, "  %s: %s %d\n", name, t && t->answered ? "answered" : "not answered", t ? (int)t->result : -1);
			ok = false;
		}
	}
	return ok;
}

/* A backlog single calls would not clear soon: the newest names go to one batch registration,
 * through every stage; the oldest keep single RegisterDevice calls. */
static void test_stages(void)
{
	struct world w;
	const struct fp_call *c;
	char seq[32], expect[16];
	struct jobs_stats st;
	long apply_id;

	world_backlog(&w, 1, 10, 120);
	CHECK(world_settle(&w, 30000));
	stages(&w, seq, sizeof(seq));
	CHECK_STR(seq, "CSRSP");
	c = fp_nth(&w.fp, ACTION_BATCH_CHECK, 0);
	/* keep: what single calls clear in the estimate (10/s * 0.97 * 5 s + 1): 49, the rest batched */
	CHECK(c && c->nnames == 71 && !strncmp(c->names, "dev-0049,dev-0050,", 18) && strstr(c->names, "dev-0119") != NULL);
	CHECK(c && !strcmp(c->product_key, "a1Prod"));
	apply_id = c ? strtol(c->apply_id, NULL, 10) : 0;
	(void)apply_id;
	/* status polls while checking, then the register call with the ApplyId the check gave */
	c = fp_nth(&w.fp, ACTION_BATCH_REGISTER, 0);
	CHECK(c && c->code[0] == '\0' && fp_count(&w.fp, ACTION_BATCH_REGISTER) == 1);
	snprintf(expect, sizeof(expect), "%ld", w.fp.applies[0].id);
	CHECK(c && !strcmp(c->apply_id, expect));
	CHECK(fp_count(&w.fp, ACTION_BATCH_STATUS) >= 2);
	for(size_t i = 0; i < fp_count(&w.fp, ACTION_BATCH_STATUS); i++) CHECK(!strcmp(fp_nth(&w.fp, ACTION_BATCH_STATUS, i)->apply_id, expect));
	{
		/* every stage seen, in order: polled while running, moved on when it ended */
		char seen[128] = "";
		const char *last = "";
		for(size_t i = 0; i < fp_count(&w.fp, ACTION_BATCH_STATUS); i++){
			const char *stage = fp_nth(&w.fp, ACTION_BATCH_STATUS, i)->stage;
			if(!strcmp(stage, last)) continue;
			if(seen[0]) strcat(seen, ",");
			strcat(seen, stage);
			last = stage;
		}
		CHECK_STR(seen, "CHECK,CHECK_SUCCESS,CREATE,CREATE_SUCCESS");
	}
	/* two pages of 50 */
	CHECK(fp_count(&w.fp, ACTION_BATCH_PAGE) == 2);
	CHECK(fp_nth(&w.fp, ACTION_BATCH_PAGE, 0)->page == 1 && fp_nth(&w.fp, ACTION_BATCH_PAGE, 0)->page_size == 50);
	CHECK(fp_nth(&w.fp, ACTION_BATCH_PAGE, 1)->page == 2);
	CHECK(w.fp.created_by_batch == 71 && w.fp.created_by_register == 49);
	CHECK(fp_count(&w.fp, ACTION_REGISTER) == 49);
	CHECK(all_ok(&w, 120));
	st = stats_of(&w);
	CHECK(st.applies == 1 && st.applies_abandoned == 0);
	CHECK(st.devices_by[ACTION_BATCH_PAGE] == 71);
	CHECK(st.calls_by[ACTION_BATCH_CHECK][CALL_OK] == 1);
	CHECK(w.violations == 0);
	world_free(&w);
}

/* A failed check: the names that exist are looked up, the others checked again on their own. */
static void test_check_failed(void)
{
	struct world w;
	char name[32];
	struct fp_device *pre[5];
	char secrets[5][33];

	world_init(&w, 2);
	w.cfg.strategy = STRATEGY_REGISTER_FIRST;
	w.cfg.qps[ACTION_REGISTER] = 10;
	for(int i = 0; i < 5; i++){
		snprintf(name, sizeof(name), "dev-%04d", 100 + i);
		pre[i] = fp_preregister(&w.fp, "a1Prod", name);
		snprintf(secrets[i], sizeof(secrets[i]), "%s", pre[i]->secret);
	}
	world_start(&w);
	for(int i = 0; i < 120; i++){
		snprintf(name, sizeof(name), "dev-%04d", i);
		world_submit(&w, NULL, name);
	}
	CHECK(world_settle(&w, 30000));
	CHECK(fp_count(&w.fp, ACTION_BATCH_CHECK) == 2);
	CHECK(fp_nth(&w.fp, ACTION_BATCH_CHECK, 0)->nnames == 71);
	CHECK(fp_nth(&w.fp, ACTION_BATCH_CHECK, 1)->nnames == 66);
	CHECK(strstr(fp_nth(&w.fp, ACTION_BATCH_CHECK, 1)->names, "dev-0100") == NULL);
	CHECK(w.fp.created_by_batch == 66);
	CHECK(all_ok(&w, 120));
	for(int i = 0; i < 5; i++){
		snprintf(name, sizeof(name), "dev-%04d", 100 + i);
		CHECK_STR(world_req(&w, name)->secret, secrets[i]);
	}
	CHECK(fp_count(&w.fp, ACTION_REGISTER) == 49); /* the existing ones were never sent to RegisterDevice */
	CHECK(w.violations == 0);
	world_free(&w);
}

/* The check never finishes: the apply hands its devices back to single RegisterDevice calls
 * (nothing was created: no lookup first) and counts as abandoned. */
static void test_stall_in_check(void)
{
	struct world w;
	struct jobs_stats st;

	world_init(&w, 3);
	w.fp.stuck_check = true;
	w.cfg.strategy = STRATEGY_REGISTER_FIRST;
	w.cfg.qps[ACTION_REGISTER] = 10;
	world_start(&w);
	for(int i = 0; i < 120; i++){
		char name[32];
		snprintf(name, sizeof(name), "dev-%04d", i);
		world_submit(&w, NULL, name);
	}
	CHECK(world_settle(&w, 40000));
	CHECK(fp_count(&w.fp, ACTION_BATCH_REGISTER) == 0 && fp_count(&w.fp, ACTION_BATCH_PAGE) == 0);
	CHECK(fp_count(&w.fp, ACTION_BATCH_STATUS) >= 5);
	CHECK(w.fp.created_by_batch == 0 && w.fp.created_by_register == 120);
	CHECK(fp_count(&w.fp, ACTION_QUERY) == 0);
	CHECK(all_ok(&w, 120));
	st = stats_of(&w);
	CHECK(st.applies == 1 && st.applies_abandoned == 1);
	CHECK(w.violations == 0);
	world_free(&w);
}

/* Creation never finishes: the devices may be ours already, so each handed-back device is
 * looked up first (QueryDeviceDetail), then registered. */
static void test_stall_in_create(void)
{
	struct world w;
	int64_t handed_back = 0;
	bool query_first = true;

	world_init(&w, 4);
	w.fp.stuck_create = true;
	w.cfg.strategy = STRATEGY_REGISTER_FIRST;
	w.cfg.qps[ACTION_REGISTER] = 10;
	world_start(&w);
	for(int i = 0; i < 120; i++){
		char name[32];
		snprintf(name, sizeof(name), "dev-%04d", i);
		world_submit(&w, NULL, name);
	}
	CHECK(world_settle(&w, 40000));
	CHECK(fp_count(&w.fp, ACTION_BATCH_REGISTER) == 1);
	/* the first single call for each batched name after the hand-back is a lookup */
	for(size_t i = 0; i < w.fp.ncalls; i++){
		if(w.fp.calls[i].action == ACTION_BATCH_STATUS) handed_back = w.fp.calls[i].at_ms;
	}
	for(int k = 49; k < 120; k++){
		char name[32];
		snprintf(name, sizeof(name), "dev-%04d", k);
		for(size_t i = 0; i < w.fp.ncalls; i++){
			const struct fp_call *c = &w.fp.calls[i];
			if(c->at_ms <= handed_back || !c->names || strcmp(c->names, name)) continue;
			if(c->action != ACTION_QUERY) query_first = false;
			break;
		}
	}
	CHECK(query_first);
	CHECK(w.fp.created_by_register == 120 && w.fp.created_by_batch == 0);
	CHECK(all_ok(&w, 120));
	CHECK(stats_of(&w).applies_abandoned == 1);
	CHECK(w.violations == 0);
	world_free(&w);
}

/* Steps the world until the platform has answered n calls of action. */
static bool run_to_call(struct world *w, enum platform_action action, size_t n, int64_t max_ms)
{
	int64_t end = w->now + max_ms;
	while(fp_count(&w->fp, action) < n && w->now < end) world_run_until(w, w->now + 5);
	return fp_count(&w->fp, action) >= n;
}

/* The platform forgets the ApplyId (a restart): before the register call, single
 * RegisterDevice calls; after it, a lookup first. Nothing is made twice either way. */
static void test_forgotten_apply(void)
{
	struct world w;

	world_backlog(&w, 5, 10, 120);
	CHECK(run_to_call(&w, ACTION_BATCH_CHECK, 1, 5000));
	fp_forget_applies(&w.fp);
	CHECK(world_settle(&w, 40000));
	CHECK(!strcmp(fp_nth(&w.fp, ACTION_BATCH_STATUS, 0)->code, "iot.device.DeviceApplyIsNotFound"));
	CHECK(fp_count(&w.fp, ACTION_BATCH_STATUS) == 1 && fp_count(&w.fp, ACTION_BATCH_REGISTER) == 0);
	CHECK(fp_count(&w.fp, ACTION_QUERY) == 0 && w.fp.created_by_register == 120);
	CHECK(all_ok(&w, 120));
	CHECK(stats_of(&w).applies_abandoned == 1);
	CHECK(w.violations == 0);
	world_free(&w);

	world_backlog(&w, 6, 10, 120);
	CHECK(run_to_call(&w, ACTION_BATCH_REGISTER, 1, 10000));
	fp_forget_applies(&w.fp);
	CHECK(world_settle(&w, 40000));
	CHECK(fp_count(&w.fp, ACTION_BATCH_PAGE) == 0);
	CHECK(fp_count(&w.fp, ACTION_QUERY) == 71);   /* each handed-back device looked up */
	CHECK(w.fp.created_by_register == 120 && w.fp.created_by_batch == 0);
	CHECK(all_ok(&w, 120));
	CHECK(w.violations == 0);
	world_free(&w);

	/* forgotten once created: the lookups find the devices the batch made */
	world_backlog(&w, 7, 10, 120);
	CHECK(run_to_call(&w, ACTION_BATCH_REGISTER, 1, 10000));
	world_run_until(&w, w.now + 1100); /* creation done */
	CHECK(w.fp.created_by_batch == 71);
	fp_forget_applies(&w.fp);
	CHECK(world_settle(&w, 40000));
	CHECK(w.fp.created_by_register == 49);
	CHECK(all_ok(&w, 120));
	CHECK(w.violations == 0);
	world_free(&w);
}

/* Throttling or a lost answer on the register call: the apply asks the status before sending
 * it again (it may have gone through); still one creation per device. */
static void test_batch_register_throttled_or_lost(void)
{
	for(int k = 0; k < 2; k++){
		struct world w;
		char seq[32];
		world_backlog(&w, 8 + (uint64_t)k, 10, 120);
		world_fault(&w, ACTION_BATCH_REGISTER, k ? FAULT_DROP : FAULT_THROTTLE, 1);
		CHECK(world_settle(&w, 40000));
		stages(&w, seq, sizeof(seq));
		/* what reached the platform: the throttled call never did */
		CHECK_STR(seq, "CSRSP");
		if(k == 0){
			/* sent twice: the status in between said CHECK_SUCCESS, not created yet */
			CHECK(w.nsends[ACTION_BATCH_REGISTER] == 2 && fp_count(&w.fp, ACTION_BATCH_REGISTER) == 1);
			CHECK(stats_of(&w).throttled == 1);
			CHECK(stats_of(&w).rate[ACTION_BATCH_REGISTER] < stats_of(&w).configured_rate[ACTION_BATCH_REGISTER]);
		}else{
			/* the lost call went through: the status tells, no second one */
			CHECK(w.nsends[ACTION_BATCH_REGISTER] == 1 && fp_count(&w.fp, ACTION_BATCH_REGISTER) == 1);
		}
		CHECK(w.fp.created_by_batch == 71);
		CHECK(all_ok(&w, 120));
		CHECK(w.violations == 0);
		world_free(&w);
	}
}

/* The deadline comes mid-batch (a check far slower than the estimate): the apply hands its
 * devices back in time for single calls to answer them by their deadline. */
static void test_deadline_mid_batch(void)
{
	struct world w;
	struct jobs_stats st;

	world_init(&w, 9);
	w.fp.check_ms = 60000;
	w.cfg.strategy = STRATEGY_REGISTER_FIRST;
	w.cfg.request_deadline_ms = 12000;
	world_start(&w);
	for(int i = 0; i < 200; i++){
		char name[32];
		snprintf(name, sizeof(name), "dev-%04d", i);
		world_submit(&w, NULL, name);
	}
	CHECK(world_settle(&w, 30000));
	CHECK(fp_count(&w.fp, ACTION_BATCH_CHECK) == 1);
	CHECK(all_ok(&w, 200));
	for(size_t i = 0; i < w.nreq; i++) CHECK(w.req[i].answered_ms - w.req[i].submitted_ms <= 12000);
	st = stats_of(&w);
	CHECK(st.applies_abandoned == 1);
	CHECK(w.violations == 0);
	world_free(&w);
}

/* The apply hands back too many devices for single calls to clear before their deadline (a
 * slow register quota): each is still answered by its deadline, platform_unavailable with
 * retryAfter for those single calls could not reach (README, Retries: "When
 * request_deadline_ms passes, the device gets platform_unavailable"), and no call is started
 * for a device past its deadline. */
static void test_deadline_after_hand_back(void)
{
	struct world w;
	size_t ok = 0, unavailable = 0, late = 0;

	world_init(&w, 12);
	w.fp.stuck_check = true;
	w.cfg.strategy = STRATEGY_REGISTER_FIRST;
	w.cfg.qps[ACTION_REGISTER] = 4;
	w.cfg.request_deadline_ms = 12000;
	world_start(&w);
	for(int i = 0; i < 120; i++){
		char name[32];
		snprintf(name, sizeof(name), "dev-%04d", i);
		world_submit(&w, NULL, name);
	}
	CHECK(world_settle(&w, 60000));
	CHECK(stats_of(&w).applies_abandoned == 1);
	for(size_t i = 0; i < w.nreq; i++){
		late += !w.req[i].answered || w.req[i].answered_ms - w.req[i].submitted_ms > 12000 + 250;
		ok += w.req[i].result == BOOTSTRAP_OK;
		unavailable += w.req[i].result == BOOTSTRAP_PLATFORM_UNAVAILABLE && w.req[i].retry_after > 0;
	}
	if(late) fprintf(stderr, "  %zu of 120 answered after their deadline\n", late);
	CHECK(late == 0);
	CHECK(ok + unavailable == 120 && unavailable > 0);
	CHECK(w.violations == 0);
	world_free(&w);
}

/* A missing grant (Forbidden.RAM) turns batch registration off; the devices go on singly. */
static void test_grant_missing(void)
{
	struct world w;
	struct jobs_stats st;

	world_init(&w, 10);
	w.fp.denied[ACTION_BATCH_CHECK] = true;
	w.cfg.strategy = STRATEGY_REGISTER_FIRST;
	w.cfg.qps[ACTION_REGISTER] = 10;
	world_start(&w);
	for(int i = 0; i < 120; i++){
		char name[32];
		snprintf(name, sizeof(name), "dev-%04d", i);
		world_submit(&w, NULL, name);
	}
	CHECK(world_settle(&w, 40000));
	st = stats_of(&w);
	CHECK(st.batching_refused[ACTION_BATCH_CHECK] && st.batching_refused[ACTION_BATCH_PAGE]);
	CHECK(!st.batching_refused[ACTION_BATCH_QUERY]);
	CHECK(strstr(st.batching_detail, "Forbidden.RAM") != NULL);
	CHECK(fp_count(&w.fp, ACTION_BATCH_CHECK) == 1 && w.fp.created_by_register == 120);
	CHECK(all_ok(&w, 120));
	world_free(&w);
}

int main(void)
{
	RUN(test_stages);
	RUN(test_check_failed);
	RUN(test_stall_in_check);
	RUN(test_stall_in_create);
	RUN(test_forgotten_apply);
	RUN(test_batch_register_throttled_or_lost);
	RUN(test_deadline_mid_batch);
	RUN(test_deadline_after_hand_back);
	RUN(test_grant_missing);
	return unit_main_result();
}

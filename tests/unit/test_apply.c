/* Batch registrations (plugin/worker/apply.c, batch_names.c) on a fake clock against the
 * stateful fake platform: an apply holds names, not requests. Every stage transition (check,
 * poll, register, poll; no pages), the devices told busy with the apply's expected end and
 * coming back for a lookup, a retry before the end (busy with the time left, no platform
 * call), a failed check, a stage that stalls, a forgotten ApplyId (before and after the
 * register call) after the devices were told to come back (single calls, batch_failed),
 * Throttling of a batch call, the estimate learnt from the stages seen, a refused grant. */
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

/* New devices dev-<from>.. dev-<to - 1> ask at once. */
static void submit_range(struct world *w, int from, int to)
{
	char name[32];

	for(int i = from; i < to; i++){
		snprintf(name, sizeof(name), "dev-%04d", i);
		world_submit(w, NULL, name);
	}
}

/* n new devices dev-0000.. at once, register first (no lookup probe), batching auto. */
static void world_backlog(struct world *w, uint64_t seed, double register_qps, int n)
{
	world_init(w, seed);
	w->cfg.strategy = STRATEGY_REGISTER_FIRST;
	w->cfg.qps[ACTION_REGISTER] = register_qps;
	world_start(w);
	submit_range(w, 0, n);
}

/* The batch actions of the calls, consecutive repeats collapsed, as letters:
 * C check, S status, R register, P page (never sent now). */
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

/* The latest request of each of dev-0000..dev-(n-1) got its triple. */
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

/* The first request for name (its first answer). */
static const struct tracked *first_req(const struct world *w, const char *name)
{
	for(size_t i = 0; i < w->nreq; i++){
		if(!strcmp(w->req[i].device_id, name)) return &w->req[i];
	}
	return NULL;
}

/* Whether the apply's check named dev-k. */
static bool batched(const struct world *w, int k)
{
	const struct fp_call *c = fp_nth(&w->fp, ACTION_BATCH_CHECK, 0);
	char name[32];
	size_t len;
	const char *p;

	snprintf(name, sizeof(name), "dev-%04d", k);
	len = strlen(name);
	for(p = c ? c->names : NULL; p && (p = strstr(p, name)); p += len){
		if((p == c->names || p[-1] == ',') && (p[len] == ',' || p[len] == '\0')) return true;
	}
	return false;
}

/* Platform calls that named dev-k after at_ms (a single call's DeviceName, or one of a batch's). */
static size_t calls_naming(const struct world *w, int k, int64_t after_ms)
{
	char name[32];
	size_t n = 0;

	snprintf(name, sizeof(name), "dev-%04d", k);
	for(size_t i = 0; i < w->fp.ncalls; i++){
		const struct fp_call *c = &w->fp.calls[i];
		n += c->at_ms > after_ms && c->names && strstr(c->names, name) != NULL;
	}
	return n;
}

/* A backlog single calls would not clear soon: after a moment's gathering the newest names go
 * to one apply, through every stage, and their devices are answered busy at once with its
 * expected end (default estimates: check 2 s, creation 3 s, a status poll 2 s: 7 s). They come
 * back then and a lookup serves them: no RegisterDevice, no page, for a batched name. */
static void test_stages(void)
{
	struct world w;
	const struct fp_call *c;
	char seq[32], expect[16];
	struct jobs_stats st;
	size_t nb;
	int told = 0;

	world_backlog(&w, 1, 10, 120);
	CHECK(world_settle_follow(&w, 60000));
	stages(&w, seq, sizeof(seq));
	CHECK_STR(seq, "CSRS");
	c = fp_nth(&w.fp, ACTION_BATCH_CHECK, 0);
	nb = c ? c->nnames : 0;
	/* 120 is more than single calls clear in the estimate (10/s * 0.97 * 5 s + 1: 49): a fleet.
	 * Single calls keep what they serve soon (10/s * 0.97 * 3 s + 1: 30), the newest 90 join an
	 * apply at once, whose check goes when its gathering second is over */
	CHECK(nb == 90 && c && strstr(c->names, "dev-0119") != NULL && !strcmp(c->product_key, "a1Prod"));
	CHECK(c && c->at_ms >= w.req[0].submitted_ms + 1000 && c->at_ms <= w.req[0].submitted_ms + 1100);
	c = fp_nth(&w.fp, ACTION_BATCH_REGISTER, 0);
	snprintf(expect, sizeof(expect), "%ld", w.fp.applies[0].id);
	CHECK(c && !strcmp(c->apply_id, expect) && fp_count(&w.fp, ACTION_BATCH_REGISTER) == 1);
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
	CHECK(fp_count(&w.fp, ACTION_BATCH_PAGE) == 0);
	CHECK(w.fp.created_by_batch == nb && w.fp.created_by_register == 120 - nb);
	CHECK(fp_count(&w.fp, ACTION_REGISTER) == 120 - nb && fp_count(&w.fp, ACTION_QUERY) == 0);
	for(int k = 0; k < 120; k++){
		char name[32];
		const struct tracked *t;
		snprintf(name, sizeof(name), "dev-%04d", k);
		t = first_req(&w, name);
		if(!batched(&w, k)) continue;
		/* joined: busy at once, retryAfter the expected end (the gathering second, then 7 s: all
		 * in the lookups' first second) */
		CHECK(t && t->result == BOOTSTRAP_BUSY && t->reason == REASON_BATCH_PENDING && t->retry_after == 8);
		CHECK(t && t->answered_ms - t->submitted_ms <= 1100);
		told++;
		/* after the end: served by a lookup */
		CHECK(world_req(&w, name)->reason == REASON_REGISTERED);
	}
	CHECK((size_t)told == nb);
	CHECK(all_ok(&w, 120));
	st = stats_of(&w);
	CHECK(st.applies == 1 && st.applies_abandoned == 0);
	CHECK(st.devices_by[ACTION_BATCH_QUERY] == nb && fp_count(&w.fp, ACTION_BATCH_QUERY) == 1);
	CHECK(st.batch_names == nb && st.batch_names_told == nb && st.batch_names_failed == 0);
	CHECK(st.calls_by[ACTION_BATCH_CHECK][CALL_OK] == 1);
	CHECK(w.violations == 0);
	world_free(&w);
}

/* Stages far longer than a request's deadline (20 s and 40 s against 12 s): the apply goes
 * on without its requests. A device asking again before the end is told busy with the time
 * left and costs no platform call; one asking after is looked up. The stages teach the
 * estimate: a second crowd is told the learnt time. */
static void test_long_stages_and_estimate(void)
{
	struct world w;
	struct jobs_stats st;
	const struct tracked *t;
	int k = -1, r1;
	int64_t told_at;
	size_t calls_before;

	world_init(&w, 11);
	w.fp.check_ms = 20000;
	w.fp.create_ms = 40000;
	w.cfg.strategy = STRATEGY_REGISTER_FIRST;
	w.cfg.qps[ACTION_REGISTER] = 10;
	w.cfg.request_deadline_ms = 12000;
	world_start(&w);
	submit_range(&w, 0, 120);
	world_run_until(&w, w.now + 3000);
	for(int i = 119; i >= 0 && k < 0; i--) if(batched(&w, i)) k = i;
	CHECK(k >= 0);
	if(k < 0){
		world_free(&w);
		return;
	}
	t = first_req(&w, "dev-0119");
	CHECK(t && t->result == BOOTSTRAP_BUSY && t->retry_after == 8);
	told_at = t ? t->answered_ms : 0;
	/* before the end: busy again, with the time left, and no platform call for it */
	world_run_until(&w, told_at + 7000);
	calls_before = calls_naming(&w, 119, 0);
	world_submit(&w, NULL, "dev-0119");
	world_run_until(&w, w.now + 10);
	t = world_req(&w, "dev-0119");
	/* the check (sent a gathering second after) is overdue at 6 s (2 s estimated): as long
	 * again as it has taken, plus creation */
	CHECK(t && t->answered && t->result == BOOTSTRAP_BUSY && t->reason == REASON_BATCH_PENDING);
	r1 = t ? t->retry_after : 0;
	CHECK(r1 >= 6 + 3 + 2 && r1 <= 6 + 3 + 2 + 1);
	CHECK(calls_naming(&w, 119, 0) == calls_before);
	CHECK(fp_count(&w.fp, ACTION_BATCH_CHECK) == 1);
	/* past the check: creation estimated as long as the check seen took (20 s), and its spread */
	world_run_until(&w, told_at + 25000);
	st = stats_of(&w);
	CHECK(st.batch_checks_seen == 1 && st.batch_check_ms >= 20000 && st.batch_check_ms <= 20000 * 1.2 + 2 * 2000);
	world_submit(&w, NULL, "dev-0119");
	world_run_until(&w, w.now + 10);
	t = world_req(&w, "dev-0119");
	CHECK(t && t->result == BOOTSTRAP_BUSY && t->retry_after >= 20 && t->retry_after <= 20 + 2 + 1 + 5);
	CHECK(calls_naming(&w, 119, 0) == calls_before);
	/* after the end: a lookup serves every batched device, no RegisterDevice for any of them */
	CHECK(world_settle_follow(&w, 200000));
	CHECK(all_ok(&w, 120));
	CHECK(fp_count(&w.fp, ACTION_BATCH_CHECK) == 1 && w.fp.created_by_batch + w.fp.created_by_register == 120);
	CHECK(fp_count(&w.fp, ACTION_REGISTER) == w.fp.created_by_register);
	st = stats_of(&w);
	CHECK(st.batch_creates_seen == 1 && st.batch_create_ms >= 40000 && st.batch_create_ms <= 40000 * 1.2 + 2 * 2000);
	CHECK(w.violations == 0);

	/* a second crowd (single calls keep what they clear by the deadline, 117): told the learnt
	 * estimate (check + creation + spread + a poll) */
	submit_range(&w, 200, 500);
	world_run_until(&w, w.now + 3000);
	t = first_req(&w, "dev-0499");
	{
		double expect = (st.batch_check_ms + st.batch_create_ms + 2000) / 1000.0;
		CHECK(t && t->result == BOOTSTRAP_BUSY && t->retry_after >= (int)expect && t->retry_after <= (int)expect + 2);
	}
	CHECK(world_settle_follow(&w, 300000));
	CHECK(fp_count(&w.fp, ACTION_BATCH_CHECK) == 2);
	/* retries: at most the first answer, and the one after the end, for the second crowd */
	for(int i = 200; i < 500; i++){
		char name[32];
		size_t asked = 0;
		snprintf(name, sizeof(name), "dev-%04d", i);
		for(size_t j = 0; j < w.nreq; j++) asked += !strcmp(w.req[j].device_id, name);
		CHECK(asked <= 2);
		CHECK(world_req(&w, name)->result == BOOTSTRAP_OK);
	}
	CHECK(w.violations == 0);
	world_free(&w);
}

/* A failed check: the names that exist are looked up when their devices come back, the others
 * checked again on their own. */
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
		snprintf(name, sizeof(name), "dev-%04d", 115 + i);
		pre[i] = fp_preregister(&w.fp, "a1Prod", name);
		snprintf(secrets[i], sizeof(secrets[i]), "%s", pre[i]->secret);
	}
	world_start(&w);
	submit_range(&w, 0, 120);
	CHECK(world_settle_follow(&w, 60000));
	CHECK(fp_count(&w.fp, ACTION_BATCH_CHECK) == 2);
	CHECK(fp_nth(&w.fp, ACTION_BATCH_CHECK, 1)->nnames == fp_nth(&w.fp, ACTION_BATCH_CHECK, 0)->nnames - 5);
	CHECK(strstr(fp_nth(&w.fp, ACTION_BATCH_CHECK, 1)->names, "dev-0115") == NULL);
	CHECK(w.fp.created_by_batch == fp_nth(&w.fp, ACTION_BATCH_CHECK, 1)->nnames);
	CHECK(all_ok(&w, 120));
	for(int i = 0; i < 5; i++){
		snprintf(name, sizeof(name), "dev-%04d", 115 + i);
		CHECK_STR(world_req(&w, name)->secret, secrets[i]);
		CHECK(world_req(&w, name)->reason == REASON_EXISTING_DEVICE);
	}
	/* the existing ones were never sent to RegisterDevice */
	CHECK(fp_count(&w.fp, ACTION_REGISTER) == 120 - fp_nth(&w.fp, ACTION_BATCH_CHECK, 0)->nnames);
	CHECK(w.violations == 0);
	world_free(&w);
}

/* The check never finishes: the apply fails its names after 3x the estimate, 10 minutes at
 * least. The devices, told to come back, are busy again until then; on their next request
 * after it they go to single RegisterDevice calls (nothing was created: no lookup first),
 * with the audit reason batch_failed. */
static void test_stall_in_check(void)
{
	struct world w;
	struct jobs_stats st;

	world_init(&w, 3);
	w.fp.stuck_check = true;
	w.cfg.strategy = STRATEGY_REGISTER_FIRST;
	w.cfg.qps[ACTION_REGISTER] = 10;
	world_start(&w);
	submit_range(&w, 0, 120);
	CHECK(world_settle_follow(&w, 1200000));
	CHECK(fp_count(&w.fp, ACTION_BATCH_REGISTER) == 0 && fp_count(&w.fp, ACTION_BATCH_PAGE) == 0);
	CHECK(fp_count(&w.fp, ACTION_BATCH_STATUS) >= 5);
	CHECK(w.fp.created_by_batch == 0 && w.fp.created_by_register == 120);
	CHECK(fp_count(&w.fp, ACTION_QUERY) == 0);
	CHECK(all_ok(&w, 120));
	for(int k = 0; k < 120; k++){
		char name[32];
		snprintf(name, sizeof(name), "dev-%04d", k);
		if(batched(&w, k)){
			CHECK(world_req(&w, name)->reason == REASON_BATCH_FAILED);
			/* the failure came at 10 minutes: no device was answered after it without a single call */
			CHECK(world_req(&w, name)->submitted_ms >= w.req[0].submitted_ms + 600000);
		}
	}
	st = stats_of(&w);
	CHECK(st.applies == 1 && st.applies_abandoned == 1 && st.batch_names_failed == fp_nth(&w.fp, ACTION_BATCH_CHECK, 0)->nnames);
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

/* The platform forgets the ApplyId (a restart) after the devices were told to come back:
 * before the register call, their next request gets single RegisterDevice calls; after it, a
 * lookup first (QueryDeviceDetail). Nothing is made twice either way; the audit says
 * batch_failed. */
static void test_forgotten_apply(void)
{
	struct world w;
	size_t nb;

	world_backlog(&w, 5, 10, 120);
	CHECK(run_to_call(&w, ACTION_BATCH_CHECK, 1, 5000));
	nb = fp_nth(&w.fp, ACTION_BATCH_CHECK, 0)->nnames;
	fp_forget_applies(&w.fp);
	CHECK(world_settle_follow(&w, 60000));
	CHECK(!strcmp(fp_nth(&w.fp, ACTION_BATCH_STATUS, 0)->code, "iot.device.DeviceApplyIsNotFound"));
	CHECK(fp_count(&w.fp, ACTION_BATCH_STATUS) == 1 && fp_count(&w.fp, ACTION_BATCH_REGISTER) == 0);
	CHECK(fp_count(&w.fp, ACTION_QUERY) == 0 && w.fp.created_by_register == 120);
	CHECK(all_ok(&w, 120));
	CHECK(world_req(&w, "dev-0119")->reason == REASON_BATCH_FAILED);
	CHECK(stats_of(&w).applies_abandoned == 1 && stats_of(&w).batch_names_failed == nb);
	CHECK(w.violations == 0);
	world_free(&w);

	world_backlog(&w, 6, 10, 120);
	CHECK(run_to_call(&w, ACTION_BATCH_REGISTER, 1, 10000));
	nb = fp_nth(&w.fp, ACTION_BATCH_CHECK, 0)->nnames;
	fp_forget_applies(&w.fp);
	CHECK(world_settle_follow(&w, 60000));
	CHECK(fp_count(&w.fp, ACTION_BATCH_PAGE) == 0);
	CHECK(fp_count(&w.fp, ACTION_QUERY) == nb);   /* each failed name looked up first */
	CHECK(w.fp.created_by_register == 120 && w.fp.created_by_batch == 0);
	CHECK(all_ok(&w, 120));
	CHECK(world_req(&w, "dev-0119")->reason == REASON_BATCH_FAILED);
	CHECK(w.violations == 0);
	world_free(&w);

	/* forgotten once created: the lookups find the devices the batch made */
	world_backlog(&w, 7, 10, 120);
	CHECK(run_to_call(&w, ACTION_BATCH_REGISTER, 1, 10000));
	nb = fp_nth(&w.fp, ACTION_BATCH_CHECK, 0)->nnames;
	world_run_until(&w, w.now + 1100); /* creation done */
	CHECK(w.fp.created_by_batch == nb);
	fp_forget_applies(&w.fp);
	CHECK(world_settle_follow(&w, 60000));
	CHECK(w.fp.created_by_register == 120 - nb);
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
		CHECK(world_settle_follow(&w, 60000));
		stages(&w, seq, sizeof(seq));
		/* what reached the platform: the throttled call never did */
		CHECK_STR(seq, "CSRS");
		if(k == 0){
			/* sent twice: the status in between said CHECK_SUCCESS, not created yet */
			CHECK(w.nsends[ACTION_BATCH_REGISTER] == 2 && fp_count(&w.fp, ACTION_BATCH_REGISTER) == 1);
			CHECK(stats_of(&w).throttled == 1);
			CHECK(stats_of(&w).rate[ACTION_BATCH_REGISTER] < stats_of(&w).configured_rate[ACTION_BATCH_REGISTER]);
		}else{
			/* the lost call went through: the status tells, no second one */
			CHECK(w.nsends[ACTION_BATCH_REGISTER] == 1 && fp_count(&w.fp, ACTION_BATCH_REGISTER) == 1);
		}
		CHECK(w.fp.created_by_batch == fp_nth(&w.fp, ACTION_BATCH_CHECK, 0)->nnames);
		CHECK(all_ok(&w, 120));
		CHECK(w.violations == 0);
		world_free(&w);
	}
}

/* A missing grant (Forbidden.RAM) turns batch registration off; the devices told to wait for
 * it go on singly when they come back. */
static void test_grant_missing(void)
{
	struct world w;
	struct jobs_stats st;

	world_init(&w, 10);
	w.fp.denied[ACTION_BATCH_CHECK] = true;
	w.cfg.strategy = STRATEGY_REGISTER_FIRST;
	w.cfg.qps[ACTION_REGISTER] = 10;
	world_start(&w);
	submit_range(&w, 0, 120);
	CHECK(world_settle_follow(&w, 60000));
	st = stats_of(&w);
	CHECK(st.batching_refused[ACTION_BATCH_CHECK] && st.batching_refused[ACTION_BATCH_PAGE]);
	CHECK(!st.batching_refused[ACTION_BATCH_QUERY]);
	CHECK(strstr(st.batching_detail, "Forbidden.RAM") != NULL);
	CHECK(fp_count(&w.fp, ACTION_BATCH_CHECK) == 1 && w.fp.created_by_register == 120);
	CHECK(all_ok(&w, 120));
	world_free(&w);
}

/* A state file whoever wrote it: estimates beyond an hour, times far from the clock and huge
 * counts are not restored (no overflow under UBSan, no absurd retryAfter); the broker goes on. */
static void test_state_hostile(void)
{
	struct world w;
	char text[1024];
	const struct tracked *t;
	static const char *const estimates[] = {
		"{\"checkMs\":1e300,\"createMs\":1e300,\"checks\":3,\"creates\":3}",
		"{\"checkMs\":1e10,\"createMs\":1e10,\"checks\":3,\"creates\":3}",
		"{\"checkMs\":5000,\"createMs\":5000,\"checks\":-1,\"creates\":1e30,\"checkDevMs\":-1e300}",
	};

	for(size_t i = 0; i < sizeof(estimates) / sizeof(estimates[0]); i++){
		world_init(&w, 40 + i);
		w.fp.check_ms = 20000;
		w.cfg.strategy = STRATEGY_REGISTER_FIRST;
		world_start(&w);
		snprintf(text, sizeof(text), "{\"version\":1,\"estimate\":%s,\"applies\":[{\"applyId\":\"7\","
				"\"productKey\":\"a1Prod\",\"state\":\"checking\",\"rounds\":1e30,\"startedAt\":-9223372036854775807,"
				"\"stageAt\":9223372036854775807,\"giveUpAt\":9223372036854775807,\"names\":[\"dev-0001\"]}]}",
				estimates[i]);
		CHECK(scheduler__batch_restore(w.s, text, strlen(text), w.now) == 1);
		world_submit(&w, NULL, "dev-0001");
		world_run_until(&w, w.now + 1);
		t = world_req(&w, "dev-0001");
		/* told to come back within the hour a stage may take, not in 231 days */
		CHECK(t && t->answered && t->result == BOOTSTRAP_BUSY && t->retry_after > 0 && t->retry_after <= 2 * 3600);
		CHECK(world_settle_follow(&w, 600000));
		world_free(&w);
	}
}

/* The applies under way, dumped (no secret) and restored in a new scheduler (a restart): the
 * names are busy again without a platform call, the estimate is kept; an ApplyId the platform
 * no longer knows fails its names (single calls). Unusable text is refused. */
static void test_state_restore(void)
{
	struct world w, w2;
	struct jobs_stats st;
	char *text;
	size_t nb, calls;
	const struct tracked *t;
	static const char *bad[] = { "", "{", "[]", "{\"version\":2,\"applies\":[]}",
		"{\"version\":1,\"applies\":[{\"applyId\":\"1\",\"productKey\":\"a1Prod\",\"state\":\"checking\",\"names\":[1,{},\"\"]}]}",
		"{\"version\":1,\"applies\":[{\"applyId\":\"1 2\",\"productKey\":\"a1Prod\",\"state\":\"checking\",\"names\":[\"x\"]}]}" };

	world_init(&w, 13);
	w.fp.check_ms = 20000;
	w.cfg.strategy = STRATEGY_REGISTER_FIRST;
	w.cfg.qps[ACTION_REGISTER] = 10;
	world_start(&w);
	submit_range(&w, 0, 120);
	world_run_until(&w, w.now + 3000);
	nb = fp_nth(&w.fp, ACTION_BATCH_CHECK, 0) ? fp_nth(&w.fp, ACTION_BATCH_CHECK, 0)->nnames : 0;
	CHECK(nb >= 50);
	text = scheduler__batch_dump(w.s, w.now);
	CHECK(text && strstr(text, "\"state\":\"checking\"") && strstr(text, "dev-0119") && !strstr(text, "ecret"));

	world_init(&w2, 14);
	w2.cfg.strategy = STRATEGY_REGISTER_FIRST;
	world_start(&w2);
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++){
		int r = scheduler__batch_restore(w2.s, bad[i], strlen(bad[i]), w2.now);
		CHECK(r <= 0 || i == 4); /* names that are not names are left out */
	}
	CHECK(stats_of(&w2).batch_names == 0);
	w2.fp.check_ms = 20000;
	CHECK(text && scheduler__batch_restore(w2.s, text, strlen(text), w2.now) == 1);
	st = stats_of(&w2);
	CHECK(st.batch_names == nb);
	/* the devices come back: busy, no call for them (the status poll is the apply's) */
	calls = w2.nsends[ACTION_REGISTER] + w2.nsends[ACTION_QUERY] + w2.nsends[ACTION_BATCH_QUERY];
	world_submit(&w2, NULL, "dev-0119");
	world_run_until(&w2, w2.now + 1);
	t = world_req(&w2, "dev-0119");
	CHECK(t && t->answered && t->result == BOOTSTRAP_BUSY && t->reason == REASON_BATCH_PENDING);
	CHECK(calls == w2.nsends[ACTION_REGISTER] + w2.nsends[ACTION_QUERY] + w2.nsends[ACTION_BATCH_QUERY]);
	/* this platform never gave that ApplyId: the apply fails, its names go to single calls */
	CHECK(world_settle_follow(&w2, 60000));
	t = world_req(&w2, "dev-0119");
	CHECK(t && t->result == BOOTSTRAP_OK && t->reason == REASON_BATCH_FAILED);
	CHECK(fp_count(&w2.fp, ACTION_BATCH_CHECK) == 0 && fp_count(&w2.fp, ACTION_BATCH_STATUS) >= 1);
	CHECK(w2.violations == 0);
	free(text);
	world_free(&w2);
	world_free(&w);
}

/* A fleet (1 200 new devices at once, RegisterDevice 30/s: more than single calls clear in an
 * apply's time): single calls keep what they serve within 3 s (30 * 0.97 * 3 + 1: 88), every
 * other device joins one apply and is answered busy at once, not held while it gathers; 300
 * more half a second later join the same apply at once, told the gathering left. The check
 * goes when the gathering second ends; the retries are spread at the lookups' capacity
 * (BatchQueryDeviceDetail's 500/s and QueryDeviceDetail's 50/s, paced), never sooner than the
 * apply's expected end; every device is served, a batched one in two requests. */
static void test_fleet_gathers(void)
{
	struct world w;
	const struct fp_call *c;
	int per_second[64] = { 0 };
	int min_after = 1000, max_after = 0, held = 0, batched_n = 0;
	int64_t t0;

	world_backlog(&w, 21, 30, 1200);
	t0 = w.now;
	world_run_until(&w, t0 + 500);
	CHECK(fp_count(&w.fp, ACTION_BATCH_CHECK) == 0);
	submit_range(&w, 1200, 1500);
	world_run_until(&w, t0 + 1500);
	CHECK(fp_count(&w.fp, ACTION_BATCH_CHECK) == 1);
	c = fp_nth(&w.fp, ACTION_BATCH_CHECK, 0);
	CHECK(c && c->at_ms >= t0 + 1000 && c->at_ms <= t0 + 1100);
	/* the first 1 112 and (all but what single calls keep again) the 300 later ones */
	CHECK(c && c->nnames >= 1112 + 250 && c->nnames <= 1112 + 300);
	for(size_t i = 0; i < w.nreq; i++){
		const struct tracked *t = &w.req[i];
		if(!t->answered || t->reason != REASON_BATCH_PENDING) continue;
		batched_n++;
		held += t->answered_ms - t->submitted_ms > 50;
		/* gathering left + check 2 s + creation 3 s + a poll 2 s, at least */
		CHECK(t->answered_ms + (int64_t)t->retry_after * 1000 >= t0 + 1000 + 7000);
		if(t->retry_after < min_after) min_after = t->retry_after;
		if(t->retry_after > max_after) max_after = t->retry_after;
		if(t->submitted_ms < t0 + 500 && t->retry_after < 64) per_second[t->retry_after]++;
	}
	CHECK(c && (size_t)batched_n == c->nnames);
	CHECK(held == 0);
	/* 1 112 devices told at once: no second's lookups get more than (500 + 50) * 0.97 of them */
	for(int k = 0; k < 64; k++) CHECK(per_second[k] <= 534);
	CHECK(min_after == 8 && max_after >= 10 && max_after <= 11);
	CHECK(world_settle_follow(&w, 200000));
	CHECK(all_ok(&w, 1500));
	CHECK(fp_count(&w.fp, ACTION_BATCH_CHECK) == 1);
	c = fp_nth(&w.fp, ACTION_BATCH_CHECK, 0); /* the calls' array moved meanwhile */
	CHECK(c && w.fp.created_by_batch == c->nnames && fp_count(&w.fp, ACTION_REGISTER) == 1500 - c->nnames);
	CHECK(w.nreq <= 1500 + (size_t)batched_n);
	CHECK(w.violations == 0);
	world_free(&w);
}

/* An apply that is full (10 000 names) stops gathering: its check goes at once, and the rest
 * of the fleet gathers in a second apply. */
static void test_fleet_full_apply(void)
{
	struct world w;
	const struct fp_call *c;
	int64_t t0;

	world_backlog(&w, 22, 30, 10200);
	t0 = w.now;
	world_run_until(&w, t0 + 500);
	CHECK(fp_count(&w.fp, ACTION_BATCH_CHECK) == 1);
	c = fp_nth(&w.fp, ACTION_BATCH_CHECK, 0);
	CHECK(c && c->nnames == 10000 && c->at_ms <= t0 + 200);
	world_run_until(&w, t0 + 1500);
	c = NULL;
	CHECK(fp_count(&w.fp, ACTION_BATCH_CHECK) == 2);
	c = fp_nth(&w.fp, ACTION_BATCH_CHECK, 1);
	CHECK(c && c->nnames >= 50 && c->nnames <= 200 - 88 && c->at_ms >= t0 + 1000);
	CHECK(w.violations == 0);
	world_free(&w);
}

/* A moderate burst single calls clear within an apply's time (140 at 30/s: under 146) is
 * theirs: no apply, each device served by its first request. */
static void test_moderate_burst_single(void)
{
	struct world w;

	world_backlog(&w, 23, 30, 140);
	CHECK(world_settle_follow(&w, 60000));
	CHECK(all_ok(&w, 140));
	CHECK(fp_count(&w.fp, ACTION_BATCH_CHECK) == 0 && fp_count(&w.fp, ACTION_REGISTER) == 140);
	CHECK(w.nreq == 140);
	CHECK(w.violations == 0);
	world_free(&w);
}

/* A fleet arriving more slowly than it fills applies: with 4 applies running, a new one
 * gathers 2 s, not 1 (and its devices are told so). */
static void test_fleet_gathers_longer(void)
{
	struct world w;
	const struct fp_call *c;
	int next = 0;
	int64_t t0 = 0;

	world_init(&w, 24);
	w.fp.check_ms = 60000;
	w.fp.create_ms = 120000;
	w.cfg.strategy = STRATEGY_REGISTER_FIRST;
	w.cfg.qps[ACTION_REGISTER] = 30;
	world_start(&w);
	for(int round = 0; round < 5; round++){
		t0 = w.now;
		for(int i = 0; i < 300; i++, next++){
			char name[32];
			snprintf(name, sizeof(name), "dev-%04d", next);
			world_submit(&w, NULL, name);
		}
		world_run_until(&w, t0 + (round < 4 ? 1200 : 1500));
	}
	/* four checks sent a second after their first name; the fifth not yet */
	CHECK(fp_count(&w.fp, ACTION_BATCH_CHECK) == 4);
	world_run_until(&w, t0 + 2100);
	CHECK(fp_count(&w.fp, ACTION_BATCH_CHECK) == 5);
	c = fp_nth(&w.fp, ACTION_BATCH_CHECK, 4);
	CHECK(c && c->at_ms >= t0 + 2000 && c->at_ms <= t0 + 2100);
	{
		/* its devices: told the 2 s of gathering and both stages (2 s + 3 s) and a poll */
		const struct tracked *t = world_req(&w, "dev-1499");
		CHECK(t && t->result == BOOTSTRAP_BUSY && t->retry_after >= 9);
	}
	CHECK(w.violations == 0);
	world_free(&w);
}

int main(void)
{
	RUN(test_stages);
	RUN(test_long_stages_and_estimate);
	RUN(test_check_failed);
	RUN(test_stall_in_check);
	RUN(test_forgotten_apply);
	RUN(test_batch_register_throttled_or_lost);
	RUN(test_grant_missing);
	RUN(test_state_restore);
	RUN(test_state_hostile);
	RUN(test_fleet_gathers);
	RUN(test_fleet_full_apply);
	RUN(test_moderate_burst_single);
	RUN(test_fleet_gathers_longer);
	return unit_main_result();
}

/* The worker's single-call decisions (bootstrap_scheduler.h) on a fake clock against the
 * stateful fake platform: the strategy, retries and deadlines, Throttling, signature errors,
 * credentials expiring mid-call, and the multi-broker mode's admissions and leases. Every
 * answer is the platform's JSON, read by the plugin's own parser. */
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

/* The fake platform reads what the plugin builds and answers what its parser reads: V1 and
 * V3, every action (the harness itself, before it judges anything). */
static void test_fake_platform_speaks_the_plugin(void)
{
	for(int v = 0; v < 2; v++){
		struct world w;
		struct platform_http_request req;
		struct platform_answer a;
		struct fp_answer ans;
		const char *names[] = { "dev-a001", "dev-a002" };
		struct platform_call call = { .action = ACTION_REGISTER, .product_key = "a1Prod", .names = names, .count = 1 };
		char apply[24];

		world_init(&w, 1);
		w.cfg.signature_version = v ? SIGNATURE_V3 : SIGNATURE_V1;
		CHECK(platform__call_request(&w.cfg, &call, world_wall(&w), &req) == 0);
		CHECK(fp_handle(&w.fp, req.url, req.body, (const char *const *)req.headers, &ans) == 0);
		platform__http_request_free(&req);
		platform__parse_answer(ACTION_REGISTER, ans.status, ans.body, strlen(ans.body), &a);
		CHECK(a.outcome == PLATFORM_SUCCESS);
		CHECK_STR(a.triple.device_name, "dev-a001");
		CHECK_STR(a.triple.device_secret, fp_device(&w.fp, "a1Prod", "dev-a001")->secret);
		platform__answer_cleanup(&a);
		fp_answer_free(&ans);
		CHECK(w.fp.bad_requests == 0 && w.fp.refused_signature == 0);

		/* a wrong secret is a signature error */
		w.cfg.creds.access_key_secret = "not-the-secret";
		call.action = ACTION_QUERY;
		CHECK(platform__call_request(&w.cfg, &call, world_wall(&w), &req) == 0);
		fp_handle(&w.fp, req.url, req.body, (const char *const *)req.headers, &ans);
		platform__http_request_free(&req);
		platform__parse_answer(ACTION_QUERY, ans.status, ans.body, strlen(ans.body), &a);
		CHECK(a.outcome == PLATFORM_AUTH && platform__code_is_signature(a.code));
		fp_answer_free(&ans);
		w.cfg.creds.access_key_secret = "fake-access-key-secret";

		/* a batch registration end to end: check, status, register, status, page */
		w.fp.check_ms = 0;
		w.fp.create_ms = 0;
		call = (struct platform_call){ .action = ACTION_BATCH_CHECK, .product_key = "a1Prod", .names = names, .count = 2 };
		CHECK(platform__call_request(&w.cfg, &call, world_wall(&w), &req) == 0);
		fp_handle(&w.fp, req.url, req.body, (const char *const *)req.headers, &ans);
		platform__http_request_free(&req);
		platform__parse_answer(ACTION_BATCH_CHECK, ans.status, ans.body, strlen(ans.body), &a);
		CHECK(a.outcome == PLATFORM_SUCCESS && a.apply_id[0]);
		snprintf(apply, sizeof(apply), "%s", a.apply_id);
		platform__answer_cleanup(&a);
		fp_answer_free(&ans);
		call = (struct platform_call){ .action = ACTION_BATCH_STATUS, .product_key = "a1Prod", .apply_id = apply };
		CHECK(platform__call_request(&w.cfg, &call, world_wall(&w), &req) == 0);
		fp_handle(&w.fp, req.url, req.body, (const char *const *)req.headers, &ans);
		platform__http_request_free(&req);
		platform__parse_answer(ACTION_BATCH_STATUS, ans.status, ans.body, strlen(ans.body), &a);
		/* dev-a001 exists: the check fails for it */
		CHECK_STR(a.stage, "CHECK_FAILED");
		CHECK(a.ndevices == 2);
		for(size_t i = 0; i < a.ndevices; i++){
			CHECK(a.devices[i].kind == (strcmp(a.devices[i].name, "dev-a001") ? DEVICE_VALID : DEVICE_EXISTS));
		}
		platform__answer_cleanup(&a);
		fp_answer_free(&ans);
		call = (struct platform_call){ .action = ACTION_BATCH_REGISTER, .product_key = "a1Prod", .apply_id = apply };
		CHECK(platform__call_request(&w.cfg, &call, world_wall(&w), &req) == 0);
		fp_handle(&w.fp, req.url, req.body, (const char *const *)req.headers, &ans);
		platform__http_request_free(&req);
		platform__parse_answer(ACTION_BATCH_REGISTER, ans.status, ans.body, strlen(ans.body), &a);
		CHECK(a.outcome == PLATFORM_REFUSED); /* IncorrentDeviceApplyInfo: the check failed */
		fp_answer_free(&ans);
		call = (struct platform_call){ .action = ACTION_BATCH_PAGE, .apply_id = apply, .page = 1 };
		CHECK(platform__call_request(&w.cfg, &call, world_wall(&w), &req) == 0);
		fp_handle(&w.fp, req.url, req.body, (const char *const *)req.headers, &ans);
		platform__http_request_free(&req);
		CHECK(fp_last(&w.fp)->page_size == 50);
		fp_answer_free(&ans);
		call = (struct platform_call){ .action = ACTION_BATCH_STATUS, .product_key = "a1Prod", .apply_id = "999" };
		CHECK(platform__call_request(&w.cfg, &call, world_wall(&w), &req) == 0);
		fp_handle(&w.fp, req.url, req.body, (const char *const *)req.headers, &ans);
		platform__http_request_free(&req);
		platform__parse_answer(ACTION_BATCH_STATUS, ans.status, ans.body, strlen(ans.body), &a);
		CHECK(a.outcome == PLATFORM_APPLY_LOST);
		fp_answer_free(&ans);
		CHECK(w.fp.bad_requests == 0);
		world_free(&w);
	}
}

static void world_singles(struct world *w, enum flow_strategy strategy)
{
	world_init(w, 7);
	w->cfg.batching = BATCHING_OFF;
	w->cfg.strategy = strategy;
}

/* Register first: a new device is one RegisterDevice; an existing one AlreadyExists, then
 * QueryDeviceDetail; both get the platform's own triple. */
static void test_register_first(void)
{
	struct world w;
	const struct fp_call *c;

	world_singles(&w, STRATEGY_REGISTER_FIRST);
	fp_preregister(&w.fp, "a1Prod", "dev-old1");
	world_start(&w);
	world_submit(&w, NULL, "dev-new1");
	CHECK(w.fp.ncalls == 0); /* nothing before the next run */
	CHECK(world_settle(&w, 5000));
	CHECK(fp_count(&w.fp, ACTION_REGISTER) == 1 && fp_count(&w.fp, ACTION_QUERY) == 0);
	c = fp_nth(&w.fp, ACTION_REGISTER, 0);
	CHECK(c && !strcmp(c->names, "dev-new1") && !strcmp(c->product_key, "a1Prod") && c->code[0] == '\0');
	CHECK(world_req(&w, "dev-new1")->result == BOOTSTRAP_OK);
	CHECK_STR(world_req(&w, "dev-new1")->secret, fp_device(&w.fp, "a1Prod", "dev-new1")->secret);

	world_submit(&w, NULL, "dev-old1");
	CHECK(world_settle(&w, 5000));
	c = fp_nth(&w.fp, ACTION_REGISTER, 1);
	CHECK(c && !strcmp(c->names, "dev-old1") && !strcmp(c->code, "iot.device.AlreadyExistedDeviceName"));
	c = fp_nth(&w.fp, ACTION_QUERY, 0);
	CHECK(c && !strcmp(c->names, "dev-old1") && c->code[0] == '\0');
	CHECK(world_req(&w, "dev-old1")->result == BOOTSTRAP_OK);
	CHECK_STR(world_req(&w, "dev-old1")->secret, fp_device(&w.fp, "a1Prod", "dev-old1")->secret);
	{
		struct jobs_stats st = stats_of(&w);
		CHECK(st.calls == 3);
		CHECK(st.calls_by[ACTION_REGISTER][CALL_OK] == 1 && st.calls_by[ACTION_REGISTER][CALL_EXISTS] == 1);
		CHECK(st.calls_by[ACTION_QUERY][CALL_OK] == 1);
	}
	CHECK(w.violations == 0);
	world_free(&w);
}

/* Query first: an existing device is one QueryDeviceDetail; a new one NotExistedDevice, then
 * RegisterDevice. Preregistered: never a RegisterDevice, a missing device is not_registered. */
static void test_query_first_and_preregistered(void)
{
	struct world w;

	world_singles(&w, STRATEGY_QUERY_FIRST);
	fp_preregister(&w.fp, "a1Prod", "dev-old1");
	world_start(&w);
	world_submit(&w, NULL, "dev-old1");
	world_submit(&w, NULL, "dev-new1");
	CHECK(world_settle(&w, 5000));
	CHECK(fp_count(&w.fp, ACTION_QUERY) == 2 && fp_count(&w.fp, ACTION_REGISTER) == 1);
	CHECK(!strcmp(fp_nth(&w.fp, ACTION_REGISTER, 0)->names, "dev-new1"));
	CHECK(!strcmp(fp_nth(&w.fp, ACTION_QUERY, 0)->names, "dev-old1")); /* in arrival order */
	CHECK(world_req(&w, "dev-old1")->result == BOOTSTRAP_OK && world_req(&w, "dev-new1")->result == BOOTSTRAP_OK);
	CHECK(w.violations == 0);
	world_free(&w);

	world_singles(&w, STRATEGY_AUTO);
	w.cfg.registration = REGISTRATION_PREREGISTERED;
	fp_preregister(&w.fp, "a1Prod", "dev-old1");
	world_start(&w);
	world_submit(&w, NULL, "dev-old1");
	world_submit(&w, NULL, "dev-new1");
	CHECK(world_settle(&w, 5000));
	CHECK(fp_count(&w.fp, ACTION_REGISTER) == 0 && fp_count(&w.fp, ACTION_QUERY) == 2);
	CHECK(world_req(&w, "dev-old1")->result == BOOTSTRAP_OK);
	CHECK(world_req(&w, "dev-new1")->result == BOOTSTRAP_NOT_REGISTERED);
	CHECK(fp_device(&w.fp, "a1Prod", "dev-new1") == NULL);
	world_free(&w);
}

/* existing_devices unactive: a device that has connected is refused, never handed out. */
static void test_existing_policy(void)
{
	struct world w;

	world_singles(&w, STRATEGY_REGISTER_FIRST);
	snprintf(fp_preregister(&w.fp, "a1Prod", "dev-live")->status, 12, "ONLINE");
	world_start(&w);
	world_submit(&w, NULL, "dev-live");
	CHECK(world_settle(&w, 5000));
	CHECK(world_req(&w, "dev-live")->result == BOOTSTRAP_ALREADY_ACTIVATED);
	CHECK(world_req(&w, "dev-live")->secret[0] == '\0');
	world_free(&w);
}

/* Strategy auto learns from answers: a fleet of existing devices moves it to query first. */
static void test_auto_strategy_learns(void)
{
	struct world w;
	char name[32];
	struct jobs_stats st;

	world_singles(&w, STRATEGY_AUTO);
	for(int i = 0; i < 12; i++){
		snprintf(name, sizeof(name), "dev-old%02d", i);
		fp_preregister(&w.fp, "a1Prod", name);
	}
	world_start(&w);
	st = stats_of(&w);
	CHECK(st.query_first == 0);
	for(int i = 0; i < 12; i++){
		snprintf(name, sizeof(name), "dev-old%02d", i);
		world_submit(&w, NULL, name);
		CHECK(world_settle(&w, 5000));
	}
	/* the first started with RegisterDevice (AlreadyExists), the last with QueryDeviceDetail */
	CHECK(!strcmp(w.fp.calls[0].names, "dev-old00") && w.fp.calls[0].action == ACTION_REGISTER);
	CHECK(!strcmp(fp_last(&w.fp)->names, "dev-old11") && fp_last(&w.fp)->action == ACTION_QUERY);
	CHECK(w.fp.ncalls >= 2 && w.fp.calls[w.fp.ncalls - 2].action != ACTION_REGISTER);
	st = stats_of(&w);
	CHECK(st.query_first == 1 && st.existing_share > 0.5);
	for(int i = 0; i < 12; i++){
		snprintf(name, sizeof(name), "dev-old%02d", i);
		CHECK(world_req(&w, name)->result == BOOTSTRAP_OK);
	}
	CHECK(w.violations == 0);
	world_free(&w);
}

/* Throttling: the rate is halved, the device retried (a new request), and the calls never
 * exceed the configured quota in any second. */
static void test_throttling(void)
{
	struct world w;
	char name[32];
	struct jobs_stats st;
	size_t after = 0;
	int64_t throttled_at = 0;

	world_singles(&w, STRATEGY_REGISTER_FIRST);
	w.cfg.qps[ACTION_REGISTER] = 10;
	world_start(&w);
	for(int i = 0; i < 40; i++){
		snprintf(name, sizeof(name), "dev-t%03d", i);
		world_submit(&w, NULL, name);
	}
	world_run_until(&w, w.now + 1500);
	world_fault(&w, ACTION_REGISTER, FAULT_THROTTLE, 2);
	throttled_at = w.now;
	CHECK(world_settle(&w, 30000));
	st = stats_of(&w);
	CHECK(st.throttled == 2);
	CHECK(st.calls_by[ACTION_REGISTER][CALL_THROTTLED] == 2);
	CHECK(st.retries >= 2);
	CHECK(st.rate[ACTION_REGISTER] < st.configured_rate[ACTION_REGISTER]);
	/* the second after the throttling: at most the halved rate (and a token left over) */
	for(size_t i = 0; i < w.fp.ncalls; i++){
		if(w.fp.calls[i].action == ACTION_REGISTER && w.fp.calls[i].at_ms > throttled_at + 100 && w.fp.calls[i].at_ms <= throttled_at + 1100) after++;
	}
	CHECK(after <= 6);
	for(int i = 0; i < 40; i++){
		snprintf(name, sizeof(name), "dev-t%03d", i);
		CHECK(world_req(&w, name)->result == BOOTSTRAP_OK);
	}
	CHECK(fp_count(&w.fp, ACTION_REGISTER) == 40); /* the gateway refused the 2 throttled ones */
	CHECK(w.nsends[ACTION_REGISTER] == 42);
	CHECK(w.fp.created_by_register == 40);
	CHECK(w.violations == 0); /* the quota, every second */
	world_free(&w);
}

/* Transient failures until the deadline: the device is answered unavailable with retryAfter
 * by its deadline, after several attempts (each a new request). */
static void test_deadline_on_transient_failures(void)
{
	struct world w;
	const struct tracked *t;
	struct jobs_stats st;

	world_singles(&w, STRATEGY_REGISTER_FIRST);
	w.cfg.request_deadline_ms = 8000;
	world_start(&w);
	world_fault(&w, -1, FAULT_5XX, 1000);
	world_submit(&w, NULL, "dev-late");
	CHECK(world_settle(&w, 20000));
	t = world_req(&w, "dev-late");
	CHECK(t->answered && t->result == BOOTSTRAP_PLATFORM_UNAVAILABLE && t->retry_after == PLATFORM_RETRY_UNAVAILABLE_S);
	CHECK(t->answered_ms - t->submitted_ms <= 8000 + 50);
	st = stats_of(&w);
	CHECK(st.calls_by[ACTION_REGISTER][CALL_UNAVAILABLE] >= 3);
	CHECK(w.violations == 0);
	world_free(&w);

	/* transport failures, and a lost answer to a RegisterDevice that went through: the retry
	 * finds the device (AlreadyExists) and gets its triple; nothing is created twice */
	world_singles(&w, STRATEGY_REGISTER_FIRST);
	world_start(&w);
	world_fault(&w, ACTION_REGISTER, FAULT_DROP, 1);
	world_fault(&w, ACTION_REGISTER, FAULT_TRANSPORT, 1);
	world_submit(&w, NULL, "dev-drop");
	CHECK(world_settle(&w, 30000));
	t = world_req(&w, "dev-drop");
	CHECK(t->result == BOOTSTRAP_OK);
	CHECK_STR(t->secret, fp_device(&w.fp, "a1Prod", "dev-drop")->secret);
	CHECK(w.fp.created_by_register == 1);
	CHECK(fp_count(&w.fp, ACTION_QUERY) == 1);
	st = stats_of(&w);
	CHECK(st.calls_by[ACTION_REGISTER][CALL_TRANSPORT] == 2);
	CHECK(w.violations == 0);
	world_free(&w);
}

/* A signature error is the device's answer (not retried) and marks the action failing,
 * counted apart from permission refusals; the next answer clears the mark. */
static void test_signature_error(void)
{
	struct world w;
	struct jobs_stats st;

	world_singles(&w, STRATEGY_REGISTER_FIRST);
	world_start(&w);
	world_fault(&w, ACTION_REGISTER, FAULT_SIGNATURE, 1);
	world_submit(&w, NULL, "dev-sig1");
	CHECK(world_settle(&w, 5000));
	CHECK(world_req(&w, "dev-sig1")->result == BOOTSTRAP_PLATFORM_AUTH);
	CHECK(fp_count(&w.fp, ACTION_REGISTER) == 0); /* the gateway refused it: the platform never saw it */
	st = stats_of(&w);
	CHECK(st.calls_by[ACTION_REGISTER][CALL_SIGNATURE] == 1 && st.calls_by[ACTION_REGISTER][CALL_AUTH] == 0);
	CHECK(st.signature_failing[ACTION_REGISTER]);
	CHECK(strstr(st.signature_detail, "SignatureDoesNotMatch") != NULL);
	world_submit(&w, NULL, "dev-sig2");
	CHECK(world_settle(&w, 5000));
	CHECK(world_req(&w, "dev-sig2")->result == BOOTSTRAP_OK);
	st = stats_of(&w);
	CHECK(!st.signature_failing[ACTION_REGISTER]);
	world_free(&w);
}

/* STS credentials from a provider expire while a call is on its way: the platform refuses
 * that call (InvalidSecurityToken.Expired); no call goes out while none are valid; that call
 * and the next wait for the refreshed credentials and are signed with them. */
static void test_credentials_expire_mid_call(void)
{
	struct world w;
	const struct fp_call *c;
	struct jobs_stats st;
	time_t expires;

	world_init(&w, 11);
	w.cfg.batching = BATCHING_OFF;
	w.cfg.strategy = STRATEGY_REGISTER_FIRST;
	w.cfg.request_deadline_ms = 20000;
	world_use_sts(&w, 900);
	w.defer = true; /* the platform judges a call when it arrives */
	world_start(&w);
	world_run_until(&w, w.now + 100);
	CHECK(w.creds_issued == 1);
	expires = w.fp.keys[w.fp.nkeys - 1].expires_s;
	world_submit(&w, NULL, "dev-c001");
	CHECK(world_settle(&w, 5000));
	c = fp_nth(&w.fp, ACTION_REGISTER, 0);
	CHECK(c && !strcmp(c->access_key_id, "STS.fake0001") && c->code[0] == '\0');

	/* renewals fail from now on; just before the expiry a call leaves, slow to arrive */
	w.creds_failing = true;
	w.now += (int64_t)(expires - world_wall(&w)) * 1000 - 3500;
	world_run_until(&w, w.now + 1);
	CHECK(stats_of(&w).credentials_state != CREDENTIALS_EXPIRED); /* still valid, renewing */
	w.latency_ms = 4000;
	world_submit(&w, NULL, "dev-c002");
	world_run_until(&w, w.now + 10);
	CHECK(world_on_wire(&w, ACTION_REGISTER) == 1);
	world_run_until(&w, w.now + 4500);
	CHECK(world_wall(&w) > expires);
	c = fp_nth(&w.fp, ACTION_REGISTER, 1);
	CHECK(c && !strcmp(c->code, "InvalidSecurityToken.Expired"));
	CHECK(!world_req(&w, "dev-c002")->answered); /* retried once renewed, not a refusal */

	/* none valid: a new request waits, no call goes */
	w.latency_ms = 20;
	world_submit(&w, NULL, "dev-c003");
	world_run_until(&w, w.now + 3000);
	CHECK(fp_count(&w.fp, ACTION_REGISTER) == 2);
	st = stats_of(&w);
	CHECK(st.credentials_state == CREDENTIALS_EXPIRED);
	CHECK(!world_req(&w, "dev-c002")->answered && !world_req(&w, "dev-c003")->answered);
	/* the service is back: refreshed credentials, and both calls are signed with them */
	w.creds_failing = false;
	CHECK(world_settle(&w, 15000));
	CHECK(w.creds_issued == 2);
	CHECK(fp_count(&w.fp, ACTION_REGISTER) == 4);
	for(int i = 2; i < 4; i++){
		c = fp_nth(&w.fp, ACTION_REGISTER, i);
		CHECK(c && !strcmp(c->access_key_id, "STS.fake0002") && c->code[0] == '\0');
	}
	CHECK(world_req(&w, "dev-c002")->result == BOOTSTRAP_OK);
	CHECK(world_req(&w, "dev-c003")->result == BOOTSTRAP_OK);
	CHECK(w.fp.refused_expired == 1);
	CHECK(w.violations == 0);
	world_free(&w);
}

/* The platform's clock runs ahead of ours: it calls a token expired that we still think has
 * seconds left. The call is retried with a token renewed at once, not answered as a refusal;
 * a static token (no provider to renew it) is reported as the refusal it is. */
static void test_credentials_expired_early(void)
{
	struct world w;
	const struct fp_call *c;
	time_t expires;

	world_init(&w, 12);
	w.cfg.batching = BATCHING_OFF;
	w.cfg.strategy = STRATEGY_REGISTER_FIRST;
	w.cfg.request_deadline_ms = 20000;
	world_use_sts(&w, 900);
	world_start(&w);
	world_run_until(&w, w.now + 100);
	CHECK(w.creds_issued == 1);
	expires = w.fp.keys[w.fp.nkeys - 1].expires_s;
	/* 200 s before the expiry by our clock (renewal is due 180 s before), 60 s past by the platform's */
	w.now += (int64_t)(expires - world_wall(&w)) * 1000 - 200000;
	w.platform_ahead_s = 260;
	world_submit(&w, NULL, "dev-e001");
	CHECK(world_settle(&w, 10000));
	CHECK(w.creds_issued == 2);
	c = fp_nth(&w.fp, ACTION_REGISTER, 0);
	CHECK(c && !strcmp(c->access_key_id, "STS.fake0001") && !strcmp(c->code, "InvalidSecurityToken.Expired"));
	c = fp_nth(&w.fp, ACTION_REGISTER, 1);
	CHECK(c && !strcmp(c->access_key_id, "STS.fake0002") && c->code[0] == '\0');
	CHECK(world_req(&w, "dev-e001")->result == BOOTSTRAP_OK);
	CHECK(w.violations == 0);
	world_free(&w);
}

/* No credentials ever come (the credentials service fails): a request that waits out its
 * deadline is answered platform_unavailable, and its audit reason says why. */
static void test_no_credentials_reason(void)
{
	struct world w;

	world_init(&w, 14);
	w.cfg.request_deadline_ms = 5000;
	world_use_sts(&w, 900);
	w.creds_failing = true;
	world_start(&w);
	world_submit(&w, NULL, "dev-n001");
	world_run_until(&w, w.now + 6000);
	CHECK(world_req(&w, "dev-n001")->answered);
	CHECK(world_req(&w, "dev-n001")->result == BOOTSTRAP_PLATFORM_UNAVAILABLE);
	CHECK(world_req(&w, "dev-n001")->reason == REASON_NO_CREDENTIALS);
	CHECK(fp_count(&w.fp, ACTION_REGISTER) == 0);
	world_free(&w);
}

/* A static STS token (ALIBABA_CLOUD_SECURITY_TOKEN) that has expired cannot be renewed: the
 * refusal is reported (platform_auth), not retried until the deadline. */
static void test_static_token_expired(void)
{
	struct world w;

	world_init(&w, 13);
	w.cfg.batching = BATCHING_OFF;
	w.cfg.strategy = STRATEGY_REGISTER_FIRST;
	w.cfg.request_deadline_ms = 20000;
	w.cfg.creds_source.key.security_token = "CAIStatic";
	w.cfg.creds.security_token = "CAIStatic";
	/* the world's static key, now with a token that expired a second ago */
	snprintf(w.fp.keys[0].token, sizeof(w.fp.keys[0].token), "CAIStatic");
	w.fp.keys[0].expires_s = world_wall(&w) - 1;
	world_start(&w);
	world_submit(&w, NULL, "dev-s001");
	CHECK(world_settle(&w, 5000));
	CHECK(fp_count(&w.fp, ACTION_REGISTER) == 1);
	CHECK(w.fp.refused_expired >= 1);
	CHECK(world_req(&w, "dev-s001")->result == BOOTSTRAP_PLATFORM_AUTH);
	world_free(&w);
}

/* The start-up check: the first call, a QueryDeviceDetail for a name no device has, with a
 * query token; its answer makes the check ok. */
static void test_startup_check(void)
{
	struct world w;
	struct jobs_stats st;

	world_singles(&w, STRATEGY_REGISTER_FIRST);
	w.cfg.check_product_key = "a1Prod";
	world_start(&w);
	world_submit(&w, NULL, "dev-ck01");
	CHECK(world_settle(&w, 5000));
	CHECK(w.fp.ncalls == 2 && w.fp.calls[0].action == ACTION_QUERY);
	CHECK(!strcmp(w.fp.calls[0].names, PLATFORM_CHECK_DEVICE_NAME));
	CHECK(!strcmp(w.fp.calls[0].code, "iot.device.NotExistedDevice"));
	st = stats_of(&w);
	CHECK(st.check == PLATFORM_CHECK_OK);
	CHECK(st.calls == 1); /* the check is not a device's call */
	world_free(&w);
}

/* The credentials' states: found at start (not yet accepted), then what the platform said of
 * them: refused with its code (a wrong AccessKey secret: the check and a device's call), or
 * accepted (the check, or with no check a device's first call). */
static void test_credentials_verdict(void)
{
	struct world w;
	struct jobs_stats st;

	/* a wrong secret: found, then refused */
	world_singles(&w, STRATEGY_REGISTER_FIRST);
	w.cfg.check_product_key = "a1Prod";
	w.cfg.creds_source.key.access_key_secret = "not-the-secret";
	w.cfg.creds.access_key_secret = "not-the-secret";
	world_start(&w);
	st = stats_of(&w);
	CHECK(st.credentials_state == CREDENTIALS_FOUND && st.credentials_verdict == CREDENTIALS_UNTRIED);
	world_run_until(&w, w.now + 1000);
	st = stats_of(&w);
	CHECK(st.check == PLATFORM_CHECK_REFUSED && strstr(st.check_detail, "SignatureDoesNotMatch"));
	CHECK(st.credentials_state == CREDENTIALS_FOUND && st.credentials_verdict == CREDENTIALS_REFUSED);
	CHECK_STR(st.credentials_refusal, "SignatureDoesNotMatch");
	world_submit(&w, NULL, "dev-v001");
	CHECK(world_settle(&w, 5000));
	CHECK(world_req(&w, "dev-v001")->result == BOOTSTRAP_PLATFORM_AUTH);
	CHECK(stats_of(&w).credentials_verdict == CREDENTIALS_REFUSED);
	world_free(&w);

	/* the right one: found, then accepted by the check */
	world_singles(&w, STRATEGY_REGISTER_FIRST);
	w.cfg.check_product_key = "a1Prod";
	world_start(&w);
	CHECK(stats_of(&w).credentials_verdict == CREDENTIALS_UNTRIED);
	world_run_until(&w, w.now + 1000);
	st = stats_of(&w);
	CHECK(st.check == PLATFORM_CHECK_OK && st.credentials_verdict == CREDENTIALS_ACCEPTED && st.credentials_refusal[0] == '\0');
	world_free(&w);

	/* no check: a device's first call is the first answer */
	world_singles(&w, STRATEGY_REGISTER_FIRST);
	world_start(&w);
	world_run_until(&w, w.now + 1000);
	CHECK(stats_of(&w).credentials_verdict == CREDENTIALS_UNTRIED);
	world_submit(&w, NULL, "dev-v002");
	CHECK(world_settle(&w, 5000));
	CHECK(world_req(&w, "dev-v002")->result == BOOTSTRAP_OK);
	CHECK(stats_of(&w).credentials_verdict == CREDENTIALS_ACCEPTED);
	world_free(&w);
}

/* Multi-broker mode: admissions before any call, leases before every call; a lease Redis
 * does not give stops the calls (none without a slot) until Redis is declared down, then a
 * share of the quota; releases for every finished flow. */
static void test_lost_lease(void)
{
	struct world w;
	char name[32];
	size_t before;
	struct jobs_stats st;

	world_singles(&w, STRATEGY_REGISTER_FIRST);
	world_use_redis(&w);
	w.cfg.qps[ACTION_REGISTER] = 10;
	world_start(&w);
	for(int i = 0; i < 10; i++){
		snprintf(name, sizeof(name), "dev-r%03d", i);
		world_submit(&w, NULL, name);
	}
	CHECK(world_settle(&w, 10000));
	world_run_until(&w, w.now + 1000); /* the releases linger up to 500 ms */
	CHECK(w.ops_admit == 10 && w.ops_lease >= 1 && w.ops_release == 10);
	CHECK(fp_count(&w.fp, ACTION_REGISTER) == 10);
	CHECK(w.lease_slots >= 10);

	/* the lease is lost: Redis refuses it (two brokers share the quota) */
	w.redis_brokers = 2;
	world_run_until(&w, w.now + 200);
	w.redis_lease_fail = true;
	for(int i = 10; i < 30; i++){
		snprintf(name, sizeof(name), "dev-r%03d", i);
		world_submit(&w, NULL, name);
	}
	before = fp_count(&w.fp, ACTION_REGISTER);
	world_run_until(&w, w.now + WORLD_HEARTBEAT_MS - 50);
	CHECK(fp_count(&w.fp, ACTION_REGISTER) == before); /* no call without a slot */
	CHECK(stats_of(&w).calls_by[ACTION_REGISTER][CALL_OK] == 10);
	/* the heartbeat fails too: Redis down, on with local state, half the quota each */
	CHECK(world_settle(&w, 20000));
	CHECK(w.redis_state == SHARED_DOWN);
	st = stats_of(&w);
	CHECK(st.shared_fallback);
	CHECK(st.rate[ACTION_REGISTER] <= 10 * 0.5 + 1e-9);
	/* no second after that held more than the half */
	for(size_t i = before; i < w.fp.ncalls; i++){
		size_t n = 0;
		for(size_t k = before; k < w.fp.ncalls; k++){
			n += w.fp.calls[k].action == ACTION_REGISTER && w.fp.calls[k].at_ms > w.fp.calls[i].at_ms - 1000 && w.fp.calls[k].at_ms <= w.fp.calls[i].at_ms;
		}
		CHECK(n <= 5);
	}
	for(int i = 0; i < 30; i++){
		snprintf(name, sizeof(name), "dev-r%03d", i);
		CHECK(world_req(&w, name)->result == BOOTSTRAP_OK);
	}
	CHECK(w.violations == 0);
	world_free(&w);
}

/* Send slots expire: the worker stalls (a clock jump) past the slots of its lease; none is
 * used late, a new lease is asked for, and the calls after the stall keep to the quota. */
static void test_lease_slots_expire(void)
{
	struct world w;
	char name[32];
	struct jobs_stats st;
	unsigned long long leases;

	world_singles(&w, STRATEGY_REGISTER_FIRST);
	world_use_redis(&w);
	w.cfg.qps[ACTION_REGISTER] = 30;
	world_start(&w);
	for(int i = 0; i < 60; i++){
		snprintf(name, sizeof(name), "dev-s%03d", i);
		world_submit(&w, NULL, name);
	}
	world_run_until(&w, w.now + 500);
	leases = w.ops_lease;
	CHECK(leases >= 1 && fp_count(&w.fp, ACTION_REGISTER) > 0);
	world_jump(&w, 3000);
	CHECK(world_settle(&w, 20000));
	st = stats_of(&w);
	CHECK(st.shared_slots_expired > 0);
	CHECK(w.ops_lease > leases);
	CHECK(w.fp.created_by_register == 60);
	CHECK(w.violations == 0); /* no second above 30 calls, the stall included */
	world_free(&w);
}

/* Another broker works on the device: polled, and answered busy with a retryAfter at the
 * deadline, without a platform call. */
static void test_admission_busy(void)
{
	struct world w;
	const struct tracked *t;

	world_singles(&w, STRATEGY_REGISTER_FIRST);
	world_use_redis(&w);
	w.cfg.request_deadline_ms = 5000;
	w.redis_admit_busy = true;
	w.redis_busy_ms = 7500;
	world_start(&w);
	world_submit(&w, NULL, "dev-busy");
	CHECK(world_settle(&w, 10000));
	t = world_req(&w, "dev-busy");
	CHECK(t->result == BOOTSTRAP_BUSY && t->retry_after == 8);
	CHECK(t->answered_ms - t->submitted_ms <= 5000);
	CHECK(w.ops_admit > 10); /* asked again every 200 ms */
	CHECK(w.fp.ncalls == 0);
	world_free(&w);
}

int main(void)
{
	RUN(test_fake_platform_speaks_the_plugin);
	RUN(test_register_first);
	RUN(test_query_first_and_preregistered);
	RUN(test_existing_policy);
	RUN(test_auto_strategy_learns);
	RUN(test_throttling);
	RUN(test_deadline_on_transient_failures);
	RUN(test_signature_error);
	RUN(test_credentials_expire_mid_call);
	RUN(test_credentials_expired_early);
	RUN(test_static_token_expired);
	RUN(test_no_credentials_reason);
	RUN(test_startup_check);
	RUN(test_credentials_verdict);
	RUN(test_lost_lease);
	RUN(test_lease_slots_expire);
	RUN(test_admission_busy);
	return unit_main_result();
}

/* Smoke test of the worker's pure core (bootstrap_scheduler.h): a scheduler driven with a fake
 * io, a fake clock and scripted answers, without a thread or a socket. The scheduler's own
 * unit tests (tests/unit/test_scheduler*.c) go much further. */
#include "bootstrap_scheduler.h"
#include "unit.h"

struct fake {
	struct call *wire[8];
	char body[8][2048];
	size_t nwire;
	time_t wall;
	double draw;
};

static int fake_post(void *ud, const struct http_request *req, struct call *call)
{
	struct fake *f = ud;

	if(f->nwire == 8) return -1;
	snprintf(f->body[f->nwire], sizeof(f->body[0]), "%s", req->body ? req->body : "");
	f->wire[f->nwire++] = call;
	return 0;
}

static double fake_random(void *ud)
{
	return ((struct fake *)ud)->draw;
}

static time_t fake_wall(void *ud)
{
	return ((struct fake *)ud)->wall;
}

/* The oldest call on the wire, taken off it. */
static struct call *fake_take(struct fake *f)
{
	struct call *c = f->wire[0];

	memmove(&f->wire[0], &f->wire[1], (f->nwire - 1) * sizeof(f->wire[0]));
	memmove(&f->body[0], &f->body[1], (f->nwire - 1) * sizeof(f->body[0]));
	f->nwire--;
	return c;
}

static void test_register_after_a_transport_failure(void)
{
	struct fake f = { .wall = 1456231584, .draw = 0.5 };
	struct scheduler_io io = { .ud = &f, .post = fake_post, .random = fake_random, .wall_s = fake_wall };
	struct bootstrap_config cfg;
	struct scheduler *s;
	struct job_result *done;
	struct jobs_stats st;
	struct call *c;
	int64_t now = 1000000, wait;
	const char *ok = "{\"Success\":true,\"Data\":{\"IotId\":\"i\",\"ProductKey\":\"a1Prod\","
			"\"DeviceName\":\"dev-0001\",\"DeviceSecret\":\"s\"}}";
	struct http_result lost = { .status = 0, .error = "timeout", .detail = "timed out" };
	struct http_result answer = { .status = 200, .body = ok, .body_len = strlen(ok) };

	config__init(&cfg);
	cfg.product_key = "a1Prod";
	cfg.region = "cn-shanghai";
	cfg.endpoint = "http://127.0.0.1:1/";
	cfg.signature_version = SIGNATURE_V1;
	cfg.creds_source.kind = CREDENTIALS_STATIC;
	cfg.creds_source.origin = "test";
	cfg.creds_source.key.access_key_id = "id";
	cfg.creds_source.key.access_key_secret = "secret";
	cfg.creds.access_key_id = "id";
	cfg.creds.access_key_secret = "secret";
	s = scheduler__new(&cfg, &io, now);
	CHECK(s != NULL);
	if(!s) return;

	scheduler__submit(s, job__new("a1Prod", "dev-0001", NULL, now), now);
	CHECK(scheduler__holding(s) == 1);
	CHECK(f.nwire == 0); /* nothing leaves before a run */
	scheduler__run(s, now);
	CHECK(f.nwire == 1);
	CHECK(f.wire[0]->kind == CALL_KIND_JOB);
	CHECK(strstr(f.body[0], "Action=RegisterDevice") != NULL);
	CHECK(strstr(f.body[0], "DeviceName=dev-0001") != NULL);

	/* a lost answer: backed off by the injected draw, then sent again */
	c = fake_take(&f);
	scheduler__answer(s, c, &lost, now);
	CHECK(scheduler__take_finished(s) == NULL);
	wait = scheduler__run(s, now);
	CHECK(f.nwire == 0);
	CHECK(wait >= 1);
	now += wait;
	for(int i = 0; i < 20 && f.nwire == 0; i++) now += scheduler__run(s, now);
	CHECK(f.nwire == 1);
	if(f.nwire != 1){
		scheduler__free(s);
		return;
	}
	c = fake_take(&f);
	CHECK(container_of(c, struct job, call) != NULL);
	CHECK_STR(container_of(c, struct job, call)->result.device_id, "dev-0001");
	scheduler__answer(s, c, &answer, now);

	done = scheduler__take_finished(s);
	CHECK(done != NULL);
	if(done){
		CHECK(done->next == NULL);
		CHECK(done->flow && done->flow->result == BOOTSTRAP_OK);
		CHECK_STR(done->flow->triple.device_secret, "s");
		job__free(job__from_result(done));
	}
	CHECK(scheduler__holding(s) == 0);
	scheduler__stats(s, &st);
	CHECK(st.calls == 2);
	CHECK(st.retries == 1);
	CHECK(st.calls_by[ACTION_REGISTER][CALL_TRANSPORT] == 1);
	CHECK(st.calls_by[ACTION_REGISTER][CALL_OK] == 1);
	scheduler__free(s);
}

int main(void)
{
	RUN(test_register_after_a_transport_failure);
	return unit_main_result();
}

/* The scheduler in a fake world (fake_world.h): fake clocks, fake io, fake platform, fake
 * credentials service, fake Redis, and the invariant checks. Unit tests only. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "bootstrap_job.h"
#include "fake_world.h"

#define WORLD_ACCESS_KEY_ID "LTAIfakekeyid"
#define WORLD_ACCESS_KEY_SECRET "fake-access-key-secret"

double world_rand(struct world *w)
{
	/* xorshift64*: reproducible from the seed */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return (double)((w->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

void world_violation(struct world *w, const char *fmt, ...)
{
	va_list va;

	w->violations++;
	if(w->violations > 1) return;
	va_start(va, fmt);
	vsnprintf(w->first_violation, sizeof(w->first_violation), fmt, va);
	va_end(va);
	fprintf(stderr, "  violation at t=%lld: %s\n", (long long)w->now, w->first_violation);
}

time_t world_wall(const struct world *w)
{
	return (time_t)((w->wall0_ms + w->now) / 1000) + w->wall_skew_s;
}

static time_t io_wall(void *ud)
{
	return world_wall(ud);
}

static double io_random(void *ud)
{
	return world_rand(ud);
}

static const char *header_of(const char *const *headers, const char *name)
{
	size_t len = strlen(name);
	for(size_t i = 0; headers && headers[i]; i++){
		if(!strncasecmp(headers[i], name, len) && headers[i][len] == ':') return headers[i] + len + 2;
	}
	return NULL;
}

static int action_named(const char *name)
{
	for(int a = 0; name && a < PLATFORM_ACTIONS; a++){
		size_t len = strlen(platform_actions[a].name);
		if(!strncmp(name, platform_actions[a].name, len) && (name[len] == '\0' || name[len] == '&')) return a;
	}
	return -1;
}

/* The action a request names (V1: Action= in the body; V3: x-acs-action), or -1. */
static int request_action(const struct http_request *req)
{
	const char *h = header_of(req->headers, "x-acs-action");
	if(h) return action_named(h);
	if(req->body){
		const char *p = strstr(req->body, "Action=");
		if(p && (p == req->body || p[-1] == '&')) return action_named(p + 7);
	}
	return -1;
}

static struct tracked *pending_of(struct world *w, const char *pk, const char *name)
{
	for(size_t i = w->nreq; i-- > 0;){
		struct tracked *t = &w->req[i];
		if(!t->answered && !strcmp(t->device_id, name) && !strcmp(t->product_key, pk)) return t;
	}
	return NULL;
}

/* ---- the invariants on what goes out ---- */

static long quota_limit(const struct world *w, int a)
{
	double q = w->cfg.qps[a];
	if(q >= 1.0 && q <= 512) return (long)floor(q);
	return (long)ceil((w->cfg.burst[a] < 1 ? 1 : w->cfg.burst[a]) + q);
}

static void check_quota(struct world *w, int a)
{
	size_t n = 0;
	w->sends[a] = fake_grow(w->sends[a], &w->cap_sends[a], w->nsends[a] + 1, sizeof(int64_t));
	w->sends[a][w->nsends[a]++] = w->now;
	for(size_t i = w->nsends[a]; i-- > 0 && w->sends[a][i] > w->now - 1000;) n++;
	if((long)n > quota_limit(w, a)){
		world_violation(w, "%s: %zu calls in the last second, quota %.2f/s", platform_actions[a].name, n, w->cfg.qps[a]);
		if(getenv("WORLD_TRACE")){
			struct jobs_stats st;
			scheduler__stats(w->s, &st);
			fprintf(stderr, "  sends at:");
			for(size_t i = w->nsends[a] > 6 ? w->nsends[a] - 6 : 0; i < w->nsends[a]; i++) fprintf(stderr, " %lld", (long long)w->sends[a][i]);
			fprintf(stderr, "; rate %.3f configured %.3f; redis %s, fallback %d share %.2f, wall %lld\n", st.rate[a], st.configured_rate[a],
					!w->redis ? "none" : w->redis_state == SHARED_DOWN ? "down" : "up", (int)st.shared_fallback, st.shared_share, (long long)world_wall(w));
		}
	}
}

/* Creation of a device the scheduler knows exists, for a request still pending. */
static void check_creation(struct world *w, const struct fp_call *c)
{
	if(!c || !c->names || (c->action != ACTION_REGISTER && c->action != ACTION_BATCH_CHECK)) return;
	char *names = strdup(c->names), *save = NULL;
	if(!names) abort();
	for(char *n = strtok_r(names, ",", &save); n; n = strtok_r(NULL, ",", &save)){
		struct tracked *t = pending_of(w, c->product_key, n);
		if(t && t->creation_known){
			world_violation(w, "%s asked to create %s/%s, known created already", platform_actions[c->action].name, c->product_key, n);
		}
	}
	free(names);
}

/* ---- the fake credentials service ---- */

static void creds_answer(struct world *w, struct wire *x)
{
	char id[40], secret[48], token[48], exp[32];
	time_t expires = world_wall(w) + w->creds_ttl_s;
	struct tm tm;

	if(w->creds_failing){
		x->status = 500;
		x->body = strdup("{\"Code\":\"InternalError\",\"Message\":\"fake credentials service failing\"}");
		return;
	}
	w->creds_issued++;
	snprintf(id, sizeof(id), "STS.fake%04d", w->creds_issued);
	snprintf(secret, sizeof(secret), "sts-secret-%04d", w->creds_issued);
	snprintf(token, sizeof(token), "CAIStoken%04d", w->creds_issued);
	snprintf(w->creds_id, sizeof(w->creds_id), "%s", id);
	fp_add_key(&w->fp, id, secret, token, expires);
	if(w->fp.nkeys >= FP_MAX_KEYS){
		/* keep the key table bounded: the oldest issued ones go (static key first stays) */
		memmove(&w->fp.keys[1], &w->fp.keys[2], (FP_MAX_KEYS - 2) * sizeof(w->fp.keys[0]));
		w->fp.nkeys--;
	}
	gmtime_r(&expires, &tm);
	strftime(exp, sizeof(exp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_t *root = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "Code", "Success", "AccessKeyId", id, "AccessKeySecret", secret,
			"SecurityToken", token, "Expiration", exp, "LastUpdated", exp);
	x->status = 200;
	x->body = json_dumps(root, JSON_COMPACT);
	json_decref(root);
}

/* ---- io ---- */

static struct world_fault *fault_for(struct world *w, int action)
{
	for(size_t i = 0; i < w->nfaults; i++){
		if(w->faults[i].count > 0 && (w->faults[i].action < 0 || w->faults[i].action == action)) return &w->faults[i];
	}
	return NULL;
}

static int io_post(void *ud, const struct http_request *req, struct call *call)
{
	struct world *w = ud;
	struct wire x;
	enum fault_kind fault = FAULT_NONE;
	struct world_fault *f;
	struct fp_answer ans;

	memset(&x, 0, sizeof(x));
	x.call = call;
	x.sent_ms = w->now;
	x.timeout_ms = req->timeout_ms;
	x.action = call->kind == CALL_KIND_CREDENTIALS ? -1 : request_action(req);
	x.due_ms = w->now + w->latency_ms + (w->latency_jitter_ms ? (int64_t)(world_rand(w) * (double)w->latency_jitter_ms) : 0);
	if(call->kind == CALL_KIND_JOB){
		const struct job *job = container_of(call, struct job, call);
		x.device = strdup(job->result.device_id);
		/* the job's own contract (bootstrap_job.h): no new attempt after its deadline */
		if(w->check_deadlines && job->deadline_ms && w->now > job->deadline_ms){
			world_violation(w, "%s/%s: a new attempt %lld ms after its deadline (attempt %d, single_only %d)", job->result.product_key,
					job->result.device_id, (long long)(w->now - job->deadline_ms), job->attempt, (int)job->single_only);
		}
	}
	if(call->kind == CALL_KIND_CREDENTIALS){
		if(strcmp(req->url, WORLD_CREDS_URL)) world_violation(w, "a credentials request to %s", req->url);
		creds_answer(w, &x);
	}else if(x.action < 0){
		world_violation(w, "a request naming no known action (kind %d)", (int)call->kind);
		x.status = 404;
		x.body = strdup("{}");
	}else{
		if(req->timeout_ms <= 0) world_violation(w, "%s without a timeout", platform_actions[x.action].name);
		check_quota(w, x.action);
		if((f = fault_for(w, x.action))){
			fault = f->kind;
			f->count--;
		}else{
			double r = world_rand(w), acc = 0;
			for(int k = 1; k < FAULT_KINDS && fault == FAULT_NONE; k++){
				acc += w->fault_rate[k];
				if(r < acc) fault = (enum fault_kind)k;
			}
		}
		switch(fault){
			case FAULT_THROTTLE: fp_gateway_error(&ans, 503, "Throttling.User", "Request was denied due to user flow control."); break;
			case FAULT_5XX: fp_gateway_error(&ans, 503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server."); break;
			case FAULT_SIGNATURE: fp_gateway_error(&ans, 400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation."); break;
			case FAULT_GARBAGE:
				ans.status = 200;
				ans.body = strdup("<html>502 Bad Gateway</html>");
				break;
			case FAULT_TRANSPORT:
				ans.status = 0;
				ans.body = NULL;
				break;
			default:
				if(w->defer){
					/* handled on arrival (deliver) */
					size_t nh = 0;
					while(req->headers && req->headers[nh]) nh++;
					x.url = strdup(req->url);
					x.rbody = req->body ? strdup(req->body) : NULL;
					x.headers = calloc(nh + 1, sizeof(char *));
					for(size_t i = 0; i < nh; i++) x.headers[i] = strdup(req->headers[i]);
					ans.status = 0;
					ans.body = NULL;
					break;
				}
				fp_set_time(&w->fp, w->now, world_wall(w) + w->platform_ahead_s);
				fp_handle(&w->fp, req->url, req->body, req->headers, &ans);
				if(w->fp.bad_requests) world_violation(w, "the platform refused a malformed request: %s", w->fp.last_bad);
				check_creation(w, fp_last(&w->fp));
				x.apply_id = fp_last(&w->fp) ? strtol(fp_last(&w->fp)->apply_id, NULL, 10) : 0;
				break;
		}
		x.status = ans.status;
		x.body = ans.body;
		if(fault == FAULT_TRANSPORT){
			x.error = "connection refused";
			x.due_ms = w->now + 1;
		}else if(fault == FAULT_DROP){
			free(x.body);
			x.body = NULL;
			x.status = 0;
			x.error = "timeout";
			x.due_ms = w->now + req->timeout_ms;
		}
	}
	if(x.due_ms > w->now + x.timeout_ms && x.timeout_ms > 0 && !x.error){
		/* slower than its timeout: curl gives up */
		free(x.body);
		x.body = NULL;
		x.status = 0;
		x.error = "timeout";
		x.due_ms = w->now + x.timeout_ms;
	}
	w->wire = fake_grow(w->wire, &w->cap_wire, w->nwire + 1, sizeof(*w->wire));
	w->wire[w->nwire++] = x;
	return 0;
}

/* ---- fake Redis ---- */

static int io_shared_submit(void *ud, struct shared_op *op)
{
	struct world *w = ud;

	if(w->redis_state == SHARED_DOWN){
		free(op);
		return -1;
	}
	if(op->kind == SHARED_RELEASE){
		w->ops_release++;
		free(op);
		return 0;
	}
	w->ops = fake_grow(w->ops, &w->cap_ops, w->nops + 1, sizeof(*w->ops));
	w->ops[w->nops++] = op;
	return 0;
}

static void redis_round(struct world *w)
{
	struct shared_stats st;
	struct shared_op **ops = w->ops;
	size_t n = w->nops;

	/* a Redis that keeps refusing fails the module's heartbeat too: down (redis.c) */
	if(w->redis_lease_fail && w->redis_state == SHARED_UP){
		if(!w->lease_fail_since) w->lease_fail_since = w->now;
		if(w->now - w->lease_fail_since >= WORLD_HEARTBEAT_MS) w->redis_state = SHARED_DOWN;
	}else{
		w->lease_fail_since = 0;
	}

	memset(&st, 0, sizeof(st));
	st.state = w->redis_state;
	st.brokers = w->redis_brokers;
	scheduler__shared_state(w->s, &st, w->now);
	w->ops = NULL;
	w->nops = w->cap_ops = 0;
	for(size_t i = 0; i < n; i++){
		struct shared_op *op = ops[i];
		op->ok = w->redis_state != SHARED_DOWN;
		if(op->kind == SHARED_ADMIT){
			w->ops_admit++;
			if(w->redis_admit_busy){
				op->verdict = SHARED_BUSY;
				op->busy_ms = w->redis_busy_ms;
			}else{
				op->verdict = SHARED_ADMITTED;
			}
		}else if(op->kind == SHARED_LEASE){
			w->ops_lease++;
			if(w->redis_lease_fail){
				op->ok = false;
			}else{
				/* slots one interval apart from now, a tenth of a second's worth at most */
				double qps = op->qps > 0 ? op->qps : 1;
				int most = (int)floor(qps * SHARED_LEASE_HORIZON_MS / 1000.0);
				op->interval_us = (long long)ceil(1e6 / (qps * 0.97));
				op->first_us = 0;
				op->slots = op->want < (most < 1 ? 1 : most) ? op->want : (most < 1 ? 1 : most);
				op->received_ms = w->now;
				w->lease_slots += (unsigned long long)op->slots;
			}
		}
		scheduler__on_shared(w->s, op, w->now);
		free(op);
	}
	free(ops);
}

/* ---- results ---- */

static void take_results(struct world *w)
{
	struct job_result *r, *next;

	for(r = scheduler__take_finished(w->s); r; r = next){
		struct job *job = job__from_result(r);
		struct tracked *t = NULL;
		next = r->next;
		for(size_t i = 0; i < w->nreq; i++){
			if(w->req[i].job == job) t = &w->req[i];
		}
		if(!t){
			world_violation(w, "a result for a job nobody submitted (%s)", r->device_id);
			job__free(job);
			continue;
		}
		t->job = NULL;
		t->answered = true;
		t->answered_ms = w->now;
		w->answered++;
		if(!r->flow){
			t->result = BOOTSTRAP_INTERNAL;
			job__free(job);
			continue;
		}
		if(r->flow->state != FLOW_DONE) world_violation(w, "%s handed back unfinished", t->device_id);
		t->result = r->flow->result;
		t->reason = r->flow->reason;
		t->retry_after = r->flow->retry_after;
		if(t->result == BOOTSTRAP_OK){
			const struct device_triple *tr = &r->flow->triple;
			struct fp_device *d = fp_device(&w->fp, t->product_key, t->device_id);
			w->answered_ok++;
			snprintf(t->secret, sizeof(t->secret), "%s", tr->device_secret);
			if(strcmp(tr->device_name, t->device_id) || strcmp(tr->product_key, t->product_key)){
				world_violation(w, "%s/%s got the triple of %s/%s", t->product_key, t->device_id, tr->product_key, tr->device_name);
			}else if(!d){
				world_violation(w, "%s got a triple for a device the platform does not have", t->device_id);
			}else if(strcmp(d->secret, tr->device_secret) || strcmp(d->iot_id, tr->iot_id)){
				world_violation(w, "%s got a triple that is not the platform's", t->device_id);
			}
		}
		job__free(job);
	}
}

static size_t wire_count_for(const struct world *w, const char *device)
{
	size_t n = 0;
	for(size_t i = 0; i < w->nwire; i++) n += w->wire[i].device && !strcmp(w->wire[i].device, device);
	return n;
}

/* Every call the platform received naming the device, and the sends per action around now. */
static void world_trace(const struct world *w, const char *pk, const char *device)
{
	struct jobs_stats st;
	scheduler__stats(w->s, &st);
	fprintf(stderr, "  trace %s/%s at %lld: waiting %zu inflight %zu rate reg %.2f query %.2f; credentials %s%s; redis %s%s%s; "
			"stuck check %d create %d\n", pk, device, (long long)w->now,
			st.waiting, st.inflight, st.rate[ACTION_REGISTER], st.rate[ACTION_QUERY], credentials__state_name(st.credentials_state),
			w->creds_failing ? " (service failing)" : "", !w->redis ? "none" : w->redis_state == SHARED_DOWN ? "down" : "up",
			w->redis_lease_fail ? " (leases refused)" : "", w->redis_admit_busy ? " (busy)" : "", (int)w->fp.stuck_check, (int)w->fp.stuck_create);
	for(size_t i = 0; i < w->fp.ncalls; i++){
		const struct fp_call *c = &w->fp.calls[i];
		if(!c->names || !strstr(c->names, device)) continue;
		fprintf(stderr, "    %lld %s %s [%zu names] -> %s\n", (long long)c->at_ms, platform_actions[c->action].name, c->product_key,
				c->nnames, c->code[0] ? c->code : "ok");
	}
	for(int a = 0; a < PLATFORM_ACTIONS; a++){
		size_t n = 0;
		for(size_t i = 0; i < w->nsends[a]; i++) n += w->sends[a][i] > w->now - 5000;
		fprintf(stderr, "    %s: %zu sends in the last 5 s\n", platform_actions[a].name, n);
	}
}

static void check_deadlines(struct world *w)
{
	if(!w->check_deadlines) return;
	for(size_t i = 0; i < w->nreq; i++){
		struct tracked *t = &w->req[i];
		int64_t bound;
		if(t->answered || !t->job || t->late_reported) continue;
		/* the deadline runs from the job's first platform call (bootstrap_job.h: waiting in the
		 * queue is bounded by max_queue, not by time); before that, the queue ahead of it at the
		 * slowest rate Throttling leaves (1/s) */
		bound = t->job->deadline_ms ? t->job->deadline_ms : t->submitted_ms + w->cfg.request_deadline_ms
				+ (int64_t)(w->cfg.max_queue + w->cfg.max_inflight) * 1000;
		if(w->now > bound + w->deadline_slack_ms + t->stalled_ms){
			const struct platform_flow *f = t->job->result.flow;
			world_violation(w, "%s/%s not answered %lld ms after its deadline (submitted %lld, deadline %lld, flow %s step %d, "
					"attempt %d, single_only %d, due %lld, on the wire %zu)", t->product_key, t->device_id, (long long)(w->now - bound),
					(long long)t->submitted_ms, (long long)t->job->deadline_ms, !f ? "none" : f->state == FLOW_QUERY ? "query" : f->state == FLOW_REGISTER ? "register" : "done",
					f ? f->steps : -1, t->job->attempt, (int)t->job->single_only, (long long)t->job->due_ms, wire_count_for(w, t->device_id));
			if(getenv("WORLD_TRACE")) world_trace(w, t->product_key, t->device_id);
			t->late_reported = true; /* once */
		}
	}
}

/* A creation the scheduler has now been told of (its answer delivered). */
static void learn_creation(struct world *w, const struct wire *x)
{
	json_t *root;
	if(x->error || !x->body || x->action < 0) return;
	root = json_loads(x->body, 0, NULL);
	if(!json_is_true(json_object_get(root, "Success"))){
		json_decref(root);
		return;
	}
	if(x->action == ACTION_REGISTER || x->action == ACTION_QUERY){
		json_t *d = json_object_get(root, "Data");
		const char *pk = json_string_value(json_object_get(d, "ProductKey")), *n = json_string_value(json_object_get(d, "DeviceName"));
		struct tracked *t = pk && n ? pending_of(w, pk, n) : NULL;
		if(t) t->creation_known = true;
	}else if(x->action == ACTION_BATCH_STATUS && x->apply_id){
		/* creation over: every name it made is known to exist */
		const char *stage = json_string_value(json_object_get(json_object_get(root, "Data"), "Status"));
		const struct fp_apply *a = fp_apply(&w->fp, x->apply_id);
		if(a && stage && (!strcmp(stage, "CREATE_SUCCESS") || !strcmp(stage, "CREATE_FAILED"))){
			for(size_t i = 0; i < a->ncreated; i++){
				const struct fp_device *d = &w->fp.devices[a->created[i]];
				struct tracked *t = pending_of(w, d->product_key, d->name);
				if(t) t->creation_known = true;
			}
		}
	}else if(x->action == ACTION_BATCH_PAGE){
		size_t i;
		json_t *e;
		json_array_foreach(json_object_get(json_object_get(root, "ApplyDeviceList"), "ApplyDeviceInfo"), i, e){
			const char *n = json_string_value(json_object_get(e, "DeviceName"));
			for(size_t k = 0; n && k < w->nreq; k++){
				if(!w->req[k].answered && !strcmp(w->req[k].device_id, n)) w->req[k].creation_known = true;
			}
		}
	}
	json_decref(root);
}

static void wire_request_free(struct wire *x)
{
	free(x->url);
	free(x->rbody);
	for(size_t i = 0; x->headers && x->headers[i]; i++) free(x->headers[i]);
	free(x->headers);
	x->url = x->rbody = NULL;
	x->headers = NULL;
}

static void deliver(struct world *w, size_t i)
{
	struct wire x = w->wire[i];
	struct http_result r;

	memmove(&w->wire[i], &w->wire[i + 1], (w->nwire - i - 1) * sizeof(*w->wire));
	w->nwire--;
	if(x.url){
		struct fp_answer ans;
		if(!x.error){
			fp_set_time(&w->fp, w->now, world_wall(w) + w->platform_ahead_s);
			fp_handle(&w->fp, x.url, x.rbody, (const char *const *)x.headers, &ans);
			if(w->fp.bad_requests) world_violation(w, "the platform refused a malformed request: %s", w->fp.last_bad);
			check_creation(w, fp_last(&w->fp));
			x.apply_id = fp_last(&w->fp) ? strtol(fp_last(&w->fp)->apply_id, NULL, 10) : 0;
			x.status = ans.status;
			x.body = ans.body;
		}
		wire_request_free(&x);
	}
	memset(&r, 0, sizeof(r));
	r.status = x.status;
	r.body = x.body;
	r.body_len = x.body ? strlen(x.body) : 0;
	r.error = x.error;
	r.detail = x.error ? "fake transport" : NULL;
	if(x.call->kind == CALL_KIND_JOB && x.device){
		struct job *job = container_of(x.call, struct job, call);
		if(strcmp(job->result.device_id, x.device)) world_violation(w, "the answer for %s went to %s", x.device, job->result.device_id);
	}
	learn_creation(w, &x);
	scheduler__answer(w->s, x.call, &r, w->now);
	free(x.body);
	free(x.device);
}

/* ---- the loop ---- */

void world_init(struct world *w, uint64_t seed)
{
	memset(w, 0, sizeof(*w));
	w->rng = seed * 0x9E3779B97F4A7C15ULL + 1;
	w->now = 1000000;
	w->wall0_ms = 1800000000000LL - w->now;
	w->latency_ms = 20;
	w->deadline_slack_ms = 250;
	w->check_deadlines = true;
	w->creds_ttl_s = 3600;
	config__init(&w->cfg);
	w->cfg.product_key = "a1Prod";
	w->cfg.region = "cn-shanghai";
	w->cfg.endpoint = "http://127.0.0.1:1/";
	w->cfg.signature_version = SIGNATURE_V1;
	w->cfg.check_product_key = NULL;
	w->cfg.creds_source.kind = CREDENTIALS_STATIC;
	w->cfg.creds_source.origin = "test";
	w->cfg.creds_source.key.access_key_id = WORLD_ACCESS_KEY_ID;
	w->cfg.creds_source.key.access_key_secret = WORLD_ACCESS_KEY_SECRET;
	w->cfg.creds.access_key_id = WORLD_ACCESS_KEY_ID;
	w->cfg.creds.access_key_secret = WORLD_ACCESS_KEY_SECRET;
	fp_init(&w->fp, w->now, world_wall(w) + w->platform_ahead_s);
	fp_add_product(&w->fp, "a1Prod");
	fp_add_product(&w->fp, "a1Other");
	fp_add_key(&w->fp, WORLD_ACCESS_KEY_ID, WORLD_ACCESS_KEY_SECRET, NULL, 0);
	w->redis_state = SHARED_UP;
	w->redis_brokers = 1;
}

void world_use_sts(struct world *w, long ttl_s)
{
	w->creds_ttl_s = ttl_s;
	w->cfg.creds_source.kind = CREDENTIALS_URI;
	w->cfg.creds_source.uri = WORLD_CREDS_URL;
	w->cfg.creds.access_key_id = NULL;
	w->cfg.creds.access_key_secret = NULL;
}

void world_use_redis(struct world *w)
{
	w->redis = true;
}

void world_start(struct world *w)
{
	/* the platform enforces the account's quota on arrival, as the emulator does */
	for(int a = 0; a < PLATFORM_ACTIONS; a++){
		if(w->fp.quota[a] == 0) w->fp.quota[a] = w->cfg.qps[a];
	}
	w->io = (struct scheduler_io){ .ud = w, .post = io_post, .shared_submit = w->redis ? io_shared_submit : NULL,
		.random = io_random, .wall_s = io_wall };
	w->s = scheduler__new(&w->cfg, &w->io, w->now);
	if(!w->s){
		fprintf(stderr, "scheduler__new failed\n");
		abort();
	}
}

void world_free(struct world *w)
{
	if(w->s) scheduler__free(w->s);
	for(size_t i = 0; i < w->nwire; i++){
		free(w->wire[i].body);
		free(w->wire[i].device);
		wire_request_free(&w->wire[i]);
	}
	for(size_t i = 0; i < w->nreq; i++){
		if(w->req[i].job) job__free(w->req[i].job);
	}
	for(size_t i = 0; i < w->nops; i++) free(w->ops[i]);
	free(w->ops);
	for(int a = 0; a < PLATFORM_ACTIONS; a++) free(w->sends[a]);
	free(w->wire);
	free(w->req);
	fp_free(&w->fp);
	memset(w, 0, sizeof(*w));
}

size_t world_submit(struct world *w, const char *product_key, const char *device_id)
{
	const char *pk = product_key ? product_key : "a1Prod";
	struct tracked *t = pending_of(w, pk, device_id);
	struct job *job;

	if(t) return (size_t)(t - w->req); /* joined, as the hand-off does */
	job = job__new(pk, device_id, NULL, w->now);
	if(!job) abort();
	w->req = fake_grow(w->req, &w->cap_req, w->nreq + 1, sizeof(*w->req));
	t = &w->req[w->nreq];
	memset(t, 0, sizeof(*t));
	snprintf(t->product_key, sizeof(t->product_key), "%s", pk);
	snprintf(t->device_id, sizeof(t->device_id), "%s", device_id);
	t->job = job;
	t->submitted_ms = w->now;
	scheduler__submit(w->s, job, w->now);
	return w->nreq++;
}

void world_fault(struct world *w, int action, enum fault_kind kind, int count)
{
	if(w->nfaults < WORLD_MAX_FAULTS) w->faults[w->nfaults++] = (struct world_fault){ action, kind, count };
}

/* One round at now: Redis, due answers (oldest first), run, results. Returns the next time
 * something is due. */
static int64_t world_round(struct world *w)
{
	int64_t next, wait;

	fp_set_time(&w->fp, w->now, world_wall(w) + w->platform_ahead_s);
	if(w->redis) redis_round(w);
	for(;;){
		size_t best = SIZE_MAX;
		for(size_t i = 0; i < w->nwire; i++){
			if(w->wire[i].due_ms <= w->now && (best == SIZE_MAX || w->wire[i].due_ms < w->wire[best].due_ms)) best = i;
		}
		if(best == SIZE_MAX) break;
		deliver(w, best);
	}
	wait = scheduler__run(w->s, w->now);
	if(wait < 1) world_violation(w, "scheduler__run returned %lld", (long long)wait);
	take_results(w);
	check_deadlines(w);
	next = w->now + (wait < 1 ? 1 : wait);
	for(size_t i = 0; i < w->nwire; i++){
		if(w->wire[i].due_ms < next) next = w->wire[i].due_ms;
	}
	if(w->redis && w->nops) next = w->now + 1;
	return next <= w->now ? w->now + 1 : next;
}

void world_run_until(struct world *w, int64_t until)
{
	for(;;){
		int64_t next = world_round(w);
		if(next > until) break;
		w->now = next;
	}
	if(w->now < until){
		w->now = until;
		world_round(w);
	}
}

bool world_settle(struct world *w, int64_t max_ms)
{
	int64_t end = w->now + max_ms;
	while(w->now < end){
		int64_t next = world_round(w);
		if(scheduler__holding(w->s) == 0 && w->nwire == 0 && w->nops == 0) return true;
		w->now = next < end ? next : end;
	}
	world_round(w);
	return scheduler__holding(w->s) == 0 && w->nwire == 0;
}

bool world_settle_follow(struct world *w, int64_t max_ms)
{
	int64_t end = w->now + max_ms;

	for(;;){
		int64_t next = world_round(w), due = INT64_MAX;
		bool sent = false;
		for(size_t i = 0; i < w->nreq; i++){
			struct tracked *t = &w->req[i];
			char pk[24], dev[40];
			int64_t at;
			if(!t->answered || t->followed || t->result != BOOTSTRAP_BUSY || t->retry_after <= 0) continue;
			at = t->answered_ms + (int64_t)t->retry_after * 1000;
			if(at > w->now){
				if(at < due) due = at;
				continue;
			}
			t->followed = true;
			memcpy(pk, t->product_key, sizeof(pk));
			memcpy(dev, t->device_id, sizeof(dev));
			world_submit(w, pk, dev); /* w->req may move */
			sent = true;
		}
		if(!sent && due == INT64_MAX && scheduler__holding(w->s) == 0 && w->nwire == 0 && w->nops == 0) return true;
		if(w->now >= end) return false;
		if(sent) next = w->now + 1;
		if(due < next) next = due;
		w->now = next < end ? next : end;
	}
}

void world_jump(struct world *w, int64_t ms)
{
	for(size_t i = 0; i < w->nreq; i++){
		if(!w->req[i].answered) w->req[i].stalled_ms += ms;
	}
	w->now += ms;
	world_round(w);
}

size_t world_on_wire(const struct world *w, int action)
{
	size_t n = 0;
	for(size_t i = 0; i < w->nwire; i++) n += action < 0 || w->wire[i].action == action;
	return n;
}

const struct tracked *world_req(const struct world *w, const char *device_id)
{
	for(size_t i = w->nreq; i-- > 0;){
		if(!strcmp(w->req[i].device_id, device_id)) return &w->req[i];
	}
	return NULL;
}

/* The platform account, the scheduler's side: the credentials provider (bootstrap_credentials.h,
 * itself a state machine without I/O) driven through the scheduler's io, the signing
 * credentials kept equal to the provider's, what the platform's answers say of them (found is
 * not accepted), the start-up check whenever they change, and requests answered when there are
 * none to sign with. No I/O of its own; runs on whichever
 * thread drives the scheduler. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bootstrap_scheduler_internal.h"

/* the start-up check again after a failure: at once, then backing off to once a minute */
#define CHECK_RETRY_MIN_MS 2000
#define CHECK_RETRY_MAX_MS 60000

/* The signing credentials follow the provider's: the snapshot's are what platform requests use. */
static void account__sync(struct scheduler *s)
{
	struct bootstrap_credentials fresh = {0};

	if(s->creds.current.access_key_id && credentials__copy(&fresh, &s->creds.current)) return;
	credentials__cleanup(&s->cfg->creds);
	s->cfg->creds = fresh;
}

static void account__credentials_done(struct scheduler *s, struct call *call, const struct http_result *r, int64_t now)
{
	(void)call;
	if(credentials__on_answer(&s->creds, r->status, r->body, r->body_len, r->error, scheduler__wall(s), now)){
		account__sync(s);
	}
}

static void account__send(struct scheduler *s, const struct credentials_http *creq, time_t now_s, int64_t now)
{
	const struct http_request req = { .method = creq->method, .url = creq->url, .body = creq->body,
		.headers = (const char *const *)creq->headers, .timeout_ms = creq->timeout_ms ? creq->timeout_ms : CREDENTIALS_HTTP_TIMEOUT_MS };

	if(s->io.post(s->io.ud, &req, &s->creds_call) == 0){
		s->inflight++;
	}else if(credentials__on_answer(&s->creds, 0, NULL, 0, "the HTTP request could not be started", now_s, now)){
		account__sync(s);
	}
}

/* A credentials request when the provider wants one; wait shortened to when it wants the next. */
void account__fetch(struct scheduler *s, time_t now_s, int64_t now, int64_t *wait)
{
	int64_t creds_wait;
	struct credentials_http creq;
	unsigned generation = s->creds.generation;

	if(!credentials__want_request(&s->creds, now_s, now, &creq)){
		/* a source that failed before asking can hand over to an AccessKey further down the chain */
		if(s->creds.generation != generation) account__sync(s);
	}else{
		account__send(s, &creq, now_s, now);
		credentials__http_free(&creq);
	}
	creds_wait = credentials__wait_ms(&s->creds, now_s, now);
	if(creds_wait >= 0) wait__min(wait, creds_wait);
}

/* What an answer says of the credentials that signed its call: refused (a signature error, an
 * AccessKey id unknown or disabled, an STS token wrong or expired), or accepted (any other
 * answer: the platform authenticated the call to give it, a RAM permission refusal included);
 * throttling and unavailability say nothing. */
void account__platform_said(struct scheduler *s, unsigned generation, const struct platform_answer *a)
{
	if(a->outcome == PLATFORM_THROTTLED || a->outcome == PLATFORM_UNAVAILABLE) return;
	if(a->outcome == PLATFORM_AUTH && (platform__code_is_signature(a->code)
			|| !strncmp(a->code, "InvalidSecurityToken", strlen("InvalidSecurityToken")))){
		credentials__platform_answered(&s->creds, generation, false, a->code);
		return;
	}
	credentials__platform_answered(&s->creds, generation, true, NULL);
}

static void account__check_done(struct scheduler *s, struct call *call, const struct http_result *r, int64_t now)
{
	struct startup_check *c = container_of(call, struct startup_check, call);
	struct platform_answer answer;
	int64_t backoff;

	c->in_flight = false;
	if(r->error){
		c->result = PLATFORM_CHECK_UNREACHABLE;
		snprintf(c->detail, sizeof(c->detail), "the platform could not be reached: %s", r->error);
	}else{
		platform__parse_answer(ACTION_QUERY, r->status, r->body, r->body_len, &answer);
		account__token_expired(s, call, &answer);
		account__platform_said(s, call->generation, &answer);
		c->result = platform__check_answer(&answer, c->detail, sizeof(c->detail));
		platform__answer_cleanup(&answer);
	}
	if(c->result == PLATFORM_CHECK_OK){
		c->attempt = 0;
		c->checked_generation = s->creds.generation;
		return;
	}
	/* refused or unreachable: asked again, so that a fix (a RAM grant, the platform back) shows */
	backoff = (int64_t)CHECK_RETRY_MIN_MS << (c->attempt < 5 ? c->attempt : 5);
	c->attempt++;
	c->due_ms = now + (backoff < CHECK_RETRY_MAX_MS ? backoff : CHECK_RETRY_MAX_MS);
}

static void account__check_send(struct scheduler *s, time_t now_s, int64_t now)
{
	struct startup_check *c = &s->check;
	struct platform_http_request req;

	if(c->in_flight || now < c->due_ms || !s->cfg->check_product_key) return;
	if(c->checked_generation == s->creds.generation && c->result == PLATFORM_CHECK_OK) return;
	if(s->inflight >= s->cfg->max_inflight || !admission__take(s, ACTION_QUERY, now)) return;
	platform__flow_init(&c->flow, s->cfg->check_product_key, PLATFORM_CHECK_DEVICE_NAME, EXISTING_ALWAYS, true);
	if(platform__flow_request(&c->flow, s->cfg, now_s, &req)) return;
	/* not in calls: those count what devices cost */
	if(scheduler__post(s, &req, s->cfg->http_timeout_ms, 0, &c->call) == 0) c->in_flight = true;
	else c->due_ms = now + CHECK_RETRY_MIN_MS;
	platform__http_request_free(&req);
}

/* The start-up check, whenever the credentials changed (and again while it fails): it takes
 * a QueryDeviceDetail token like any call. wait is shortened to when it is due again. */
void account__check(struct scheduler *s, time_t now_s, int64_t now, int64_t *wait)
{
	account__check_send(s, now_s, now);
	if(!s->check.in_flight && s->check.due_ms > now) wait__min(wait, s->check.due_ms - now);
}

#define NO_CREDENTIALS "the bootstrap service has no valid platform credentials"

static void job__fail_no_credentials(struct scheduler *s, struct job *job, const char *why, int64_t now)
{
	if(!job__start(s, job, false, now)) return;
	platform__flow_fail_as(job->result.flow, REASON_NO_CREDENTIALS, NO_CREDENTIALS, why);
	job__finish(s, job, now);
}

/* No credentials to sign with: requests wait, and those that waited past their deadline are
 * answered rather than left hanging. */
void account__expire_waiting(struct scheduler *s, int64_t now)
{
	char why[200];

	snprintf(why, sizeof(why), "no platform credentials: %s", s->creds.detail[0] ? s->creds.detail : "still fetching them");
	/* new requests by their arrival; flows under way by their deadline */
	while(s->fresh.head && now - s->fresh.head->submitted_ms > s->cfg->request_deadline_ms){
		job__fail_no_credentials(s, fifo__pop(&s->fresh), why, now);
	}
	/* the whole queue, not its head: a retry goes back to the front with an older deadline */
	for(int a = 0; a < 2; a++){
		fifo__expire(s, &s->waiting[a], REASON_NO_CREDENTIALS, NO_CREDENTIALS, why, now);
		fifo__expire(s, &s->single[a], REASON_NO_CREDENTIALS, NO_CREDENTIALS, why, now);
	}
}

/* The platform called the token a's call carried expired (InvalidSecurityToken.Expired), maybe
 * with a clock ahead of ours: if it is still the current one it is renewed now, and the call
 * is retried with the next (a stays PLATFORM_UNAVAILABLE). A static token
 * (ALIBABA_CLOUD_SECURITY_TOKEN) has no provider to renew it: a's outcome becomes the
 * refusal it is. */
void account__token_expired(struct scheduler *s, const struct call *call, struct platform_answer *a)
{
	if(!a->token_expired) return;
	if(!credentials__renewable(&s->creds)){
		a->outcome = PLATFORM_AUTH;
	}else if(call->generation == s->creds.generation){
		credentials__refused_expired(&s->creds, scheduler__wall(s));
	}
}

void account__init(struct scheduler *s)
{
	s->creds_call = (struct call){ .kind = CALL_KIND_CREDENTIALS, .done = account__credentials_done };
	s->check.call = (struct call){ .kind = CALL_KIND_CHECK, .done = account__check_done };
}

/* A reload: the provider takes the new source up, and the check runs again. */
void account__reconfigure(struct scheduler *s)
{
	credentials__provider_reset(&s->creds, &s->cfg->creds_source);
	account__sync(s);
	s->check.checked_generation = 0;
	s->check.due_ms = 0;
	s->check.attempt = 0;
}

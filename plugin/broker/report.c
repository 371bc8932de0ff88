/* mosquitto_bootstrap, broker thread: what the operator is told, from the tick.
 *
 * The worker's and Redis's state (snapshots taken under their locks) become log lines when
 * something an operator should know changes: credentials, the start-up check, signature
 * errors, batching, the wakeup connection, throttling, Redis. One line per change, never one
 * per second: each report is one row of the table below, with what it compares and how it
 * says it, and remembers the snapshot it last spoke about. $SYS/broker/bootstrap/ gets the
 * counters every plugin_opt_metrics_interval seconds, and the retained platform/ topics on
 * change.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>

#include "bootstrap_broker.h"
#include "bootstrap_quota.h"

/* What a report looks at: one snapshot of each side, taken once a second. */
struct report_view {
	struct jobs_stats jobs;
	struct shared_stats shared; /* zero in single-broker mode */
	bool reported;              /* in a row's memory: it has spoken at least once */
};

struct report {
	/* what to compare: does now differ from what the row last said (last) in a way worth a line? */
	bool (*changed)(const struct report_view *now, const struct report_view *last);
	/* how to say it: log lines, retained $SYS topics */
	void (*say)(struct bootstrap_plugin *p, const struct report_view *now, const struct report_view *last, time_t now_s);
	int every_s; /* at most one line per this many seconds (0: every change) */
};

/* Each row's memory: the snapshot it last spoke about, and when. */
struct report_memory {
	struct report_view last;
	time_t at;
};

static void metric__publish(const char *topic, const char *value, void *ud)
{
	(void)ud;
	/* retained, like the broker's own $SYS topics */
	mosquitto_broker_publish_copy(NULL, topic, (int)strlen(value), value, 0, true, NULL);
}

/* Redis's state: one line per change (connected, unreachable with why, back). */
static bool report__shared_changed(const struct report_view *now, const struct report_view *last)
{
	return now->shared.ups != last->shared.ups || now->shared.downs != last->shared.downs;
}

static void report__shared_say(struct bootstrap_plugin *p, const struct report_view *now, const struct report_view *last, time_t now_s)
{
	const struct shared_stats *st = &now->shared;
	bool down_logged = false;

	/* both changed since the last look: the order the current state implies */
	for(int pass = 0; pass < 2; pass++){
		bool down_first = st->state == SHARED_UP;
		if(pass == (down_first ? 0 : 1) && st->downs != last->shared.downs){
			double share = shared__fallback_share(p->cfg.redis_fallback_share, st->brokers) * SHARED_PACING;
			mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": shared state: Redis unreachable (%s); this broker goes on "
					"alone: its own replay cache and refusal limits, no flow locks, and %.0f%% of each quota "
					"(RegisterDevice %.1f/s, QueryDeviceDetail %.1f/s)%s; retrying", st->detail[0] ? st->detail : "no answer",
					share * 100.0, p->cfg.qps[ACTION_REGISTER] * share * QUOTA_PACING, p->cfg.qps[ACTION_QUERY] * share * QUOTA_PACING,
					p->cfg.redis_fallback_share > 0 || st->brokers > 0 ? ""
					: " (it never saw how many brokers there are: set plugin_opt_redis_fallback_share to each one's share)");
			p->shared_down_since = now_s;
			down_logged = true;
		}
		if(pass == (down_first ? 1 : 0) && st->ups != last->shared.ups){
			if(last->shared.ups == 0 && !down_logged && last->shared.downs == 0){
				mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": shared state: connected to %s at %s (prefix %s, broker %s, "
						"%d broker%s alive): replay cache, refusal limits, flow locks and the quota are shared",
						st->server[0] ? st->server : "Redis", p->cfg.redis_url, p->cfg.redis_prefix, st->broker_id, st->brokers,
						st->brokers == 1 ? "" : "s");
			}else{
				mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": shared state: Redis back (%s) after %ld s; state and "
						"quota shared again (%d broker%s alive)", st->server[0] ? st->server : "Redis",
						(long)(now_s - p->shared_down_since), st->brokers, st->brokers == 1 ? "" : "s");
			}
		}
	}
}

/* The credentials chain's outcome: which source won, and why the ones before it did not. */
static bool report__chain_changed(const struct report_view *now, const struct report_view *last)
{
	return now->jobs.credentials_chain[0] && strcmp(now->jobs.credentials_chain, last->jobs.credentials_chain);
}

static void report__chain_say(struct bootstrap_plugin *p, const struct report_view *now, const struct report_view *last, time_t now_s)
{
	const char *chain = now->jobs.credentials_chain;

	(void)p;
	(void)last;
	(void)now_s;
	mosquitto_log_printf(strncmp(chain, "using ", 6) ? MOSQ_LOG_ERR : MOSQ_LOG_NOTICE,
			PLUGIN_NAME ": platform credentials chain: %s", chain);
}

/* The credentials' state: a log line when it changes (an error when none are valid), and the
 * retained $SYS/broker/bootstrap/platform/credentials. */
static bool report__credentials_changed(const struct report_view *now, const struct report_view *last)
{
	return now->jobs.credentials_state != last->jobs.credentials_state
		|| strcmp(now->jobs.credentials_detail, last->jobs.credentials_detail);
}

static void report__credentials_say(struct bootstrap_plugin *p, const struct report_view *now, const struct report_view *last, time_t now_s)
{
	const struct jobs_stats *st = &now->jobs;
	char text[256], until[32] = "";
	int level;

	(void)p;
	(void)last;
	(void)now_s;
	if(st->credentials_expires){
		struct tm tm;
		gmtime_r(&st->credentials_expires, &tm);
		strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	switch(st->credentials_state){
		case CREDENTIALS_VALID:
			snprintf(text, sizeof(text), "valid%s%s", until[0] ? " until " : "", until);
			break;
		case CREDENTIALS_RENEWING:
			snprintf(text, sizeof(text), "renewing (the current ones are valid until %s)", until);
			break;
		case CREDENTIALS_FAILING:
			snprintf(text, sizeof(text), "failing: %s (the current ones are valid until %s; retrying)", st->credentials_detail, until);
			break;
		case CREDENTIALS_EXPIRED:
		case CREDENTIALS_FETCHING:
			snprintf(text, sizeof(text), "%s%s%s", credentials__state_name(st->credentials_state),
					st->credentials_detail[0] ? ": " : "", st->credentials_detail);
			break;
	}
	switch(st->credentials_state){
		case CREDENTIALS_EXPIRED: level = MOSQ_LOG_ERR; break;
		case CREDENTIALS_FAILING: level = MOSQ_LOG_WARNING; break;
		case CREDENTIALS_FETCHING: level = st->credentials_detail[0] ? MOSQ_LOG_ERR : MOSQ_LOG_INFO; break;
		default: level = MOSQ_LOG_INFO; break;
	}
	/* renewals that just work are routine: not a line each */
	if(st->credentials_state != CREDENTIALS_RENEWING){
		mosquitto_log_printf(level, PLUGIN_NAME ": platform credentials (%s): %s", st->credentials_source, text);
	}
	metric__publish(METRICS_TOPIC_PREFIX "platform/credentials", text, NULL);
}

/* The start-up check's result: one line per change (an error naming what to fix when the
 * platform refuses), and the retained $SYS/broker/bootstrap/platform/status. */
static bool report__check_changed(const struct report_view *now, const struct report_view *last)
{
	return now->jobs.check != last->jobs.check || strcmp(now->jobs.check_detail, last->jobs.check_detail);
}

static void report__check_say(struct bootstrap_plugin *p, const struct report_view *now, const struct report_view *last, time_t now_s)
{
	const struct jobs_stats *st = &now->jobs;
	char text[256];

	(void)last;
	(void)now_s;
	snprintf(text, sizeof(text), "%s%s%s", platform__check_name(st->check), st->check_detail[0] ? ": " : "", st->check_detail);
	switch(st->check){
		case PLATFORM_CHECK_OK:
			mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": platform check: the platform accepts these credentials, "
					"product %s%s%s at %s", p->cfg.check_product_key, p->cfg.iot_instance_id ? " and instance " : "",
					p->cfg.iot_instance_id ? p->cfg.iot_instance_id : "", p->cfg.endpoint);
			break;
		case PLATFORM_CHECK_REFUSED:
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": platform check: refused: %s (bootstraps will fail until this is fixed; "
					"checked again every minute and after every credentials change)", st->check_detail);
			break;
		case PLATFORM_CHECK_UNREACHABLE:
			mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": platform check: %s; retrying", st->check_detail);
			break;
		case PLATFORM_CHECK_PENDING:
			break;
	}
	metric__publish(METRICS_TOPIC_PREFIX "platform/status", text, NULL);
}

/* Signature errors (SignatureDoesNotMatch, IncompleteSignature, InvalidAccessKeyId.*): a wrong
 * secret or a request sent other than signed, never a RAM permission. One line when the set of
 * actions getting them changes, and $SYS/broker/bootstrap/platform/signature, published at the
 * first look too ("ok") so that a monitor finds it from the start. */
static bool report__signature_changed(const struct report_view *now, const struct report_view *last)
{
	return !last->reported || memcmp(now->jobs.signature_failing, last->jobs.signature_failing, sizeof(now->jobs.signature_failing));
}

static void report__signature_say(struct bootstrap_plugin *p, const struct report_view *now, const struct report_view *last, time_t now_s)
{
	const struct jobs_stats *st = &now->jobs;
	char text[640], names[256] = "";
	size_t used = 0;
	bool failing = false;

	(void)p;
	(void)now_s;
	for(int a = 0; a < PLATFORM_ACTIONS; a++){
		if(!st->signature_failing[a]) continue;
		used += (size_t)snprintf(names + used, used < sizeof(names) ? sizeof(names) - used : 0, "%s%s", failing ? ", " : "", platform_actions[a].name);
		if(used >= sizeof(names)) used = sizeof(names) - 1;
		failing = true;
	}
	if(failing){
		snprintf(text, sizeof(text), "failing: %s (last: %s): the AccessKey secret does not belong to its id, or the request sent "
				"was not the one signed (a defect: please report it); not a RAM permission", names, st->signature_detail);
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": platform signature %s", text);
	}else{
		snprintf(text, sizeof(text), "ok");
		if(last->reported) mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": platform signature: accepted again");
	}
	metric__publish(METRICS_TOPIC_PREFIX "platform/signature", text, NULL);
}

/* Batching refused: one line when the platform refuses a batch action (or refuses it for
 * another reason), and one when batching is back. */
static bool any_batching_refused(const struct jobs_stats *st)
{
	bool refused = false;

	for(int a = 0; a < PLATFORM_ACTIONS; a++) refused = refused || st->batching_refused[a];
	return refused;
}

static bool report__batching_changed(const struct report_view *now, const struct report_view *last)
{
	bool refused = any_batching_refused(&now->jobs);

	return refused != any_batching_refused(&last->jobs)
		|| (refused && strcmp(now->jobs.batching_detail, last->jobs.batching_detail));
}

static void report__batching_say(struct bootstrap_plugin *p, const struct report_view *now, const struct report_view *last, time_t now_s)
{
	const struct jobs_stats *st = &now->jobs;

	(void)p;
	(void)last;
	(void)now_s;
	if(any_batching_refused(st)){
		mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": batching: %s; %s go on as single calls until the "
				"credentials change or a reload (grant the RAM identity the batch actions listed in the README, or set "
				"plugin_opt_batching off)", st->batching_detail,
				st->batching_refused[ACTION_BATCH_QUERY] && st->batching_refused[ACTION_BATCH_CHECK] ? "lookups and registrations"
				: st->batching_refused[ACTION_BATCH_QUERY] ? "lookups" : "registrations");
	}else{
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": batching: batch actions in use again");
	}
}

/* Batch registrations that had to hand their devices back to single calls since the last line. */
static bool report__abandoned_changed(const struct report_view *now, const struct report_view *last)
{
	return now->jobs.applies_abandoned != last->jobs.applies_abandoned;
}

static void report__abandoned_say(struct bootstrap_plugin *p, const struct report_view *now, const struct report_view *last, time_t now_s)
{
	(void)p;
	(void)now_s;
	mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": batching: %llu batch registration(s) handed their devices back "
			"to single RegisterDevice calls (a stage did not finish in time, the platform no longer knew the ApplyId, or it refused a step)",
			now->jobs.applies_abandoned - last->jobs.applies_abandoned);
}

/* The broker refused the wakeup connection (for good: the waker does not try again). */
static bool report__waker_changed(const struct report_view *now, const struct report_view *last)
{
	return now->jobs.waker_refused && !last->jobs.waker_refused;
}

static void report__waker_say(struct bootstrap_plugin *p, const struct report_view *now, const struct report_view *last, time_t now_s)
{
	(void)now;
	(void)last;
	(void)now_s;
	mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": plugin_opt_wakeup_port %d: the broker refused the wakeup "
			"connection (that listener must accept an anonymous client); replies go out at the broker's tick instead",
			p->cfg.wakeup_port);
}

/* Throttling answers: something else uses the account's quota. At most a line every 10 s, with
 * the actions paced below their quota now. */
static bool report__throttled_changed(const struct report_view *now, const struct report_view *last)
{
	return now->jobs.throttled != last->jobs.throttled;
}

static void report__throttled_say(struct bootstrap_plugin *p, const struct report_view *now, const struct report_view *last, time_t now_s)
{
	const struct jobs_stats *st = &now->jobs;
	/* e.g. "RegisterDevice 15.0/s" */
	char slowed[256] = "";
	size_t used = 0;

	(void)p;
	(void)now_s;
	for(int a = 0; a < PLATFORM_ACTIONS && used < sizeof(slowed); a++){
		if(st->rate[a] >= st->configured_rate[a]) continue;
		used += (size_t)snprintf(slowed + used, sizeof(slowed) - used, "%s%s %.1f/s", used ? ", " : "",
				platform_actions[a].name, st->rate[a]);
	}
	mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": the platform throttled %llu calls (%llu in all); "
			"pacing %s. Does another client share the account's quota?",
			st->throttled - last->jobs.throttled, st->throttled, slowed[0] ? slowed : "every action at its quota again");
}

/* In the order their lines appear when several change at once. A new report is one row here
 * (and its two functions above). */
static const struct report reports_table[] = {
	{ report__shared_changed, report__shared_say, 0 },
	{ report__chain_changed, report__chain_say, 0 },
	{ report__credentials_changed, report__credentials_say, 0 },
	{ report__check_changed, report__check_say, 0 },
	{ report__signature_changed, report__signature_say, 0 },
	{ report__batching_changed, report__batching_say, 0 },
	{ report__abandoned_changed, report__abandoned_say, 0 },
	{ report__waker_changed, report__waker_say, 0 },
	{ report__throttled_changed, report__throttled_say, 10 },
};
#define REPORTS (sizeof(reports_table) / sizeof(reports_table[0]))

struct reports {
	/* zero at start: as if every row had spoken of a zero snapshot, which is the worker's before
	 * anything happened, so a state that has not moved gets no line */
	struct report_memory memory[REPORTS];
	time_t metrics_next_s;
};

struct reports *report__new(void)
{
	return calloc(1, sizeof(struct reports));
}

void report__free(struct reports *reports)
{
	free(reports);
}

/* Once a second, from the tick: each report whose state changed says so. */
void report__changes(struct bootstrap_plugin *p, time_t now_s)
{
	struct report_view now;

	memset(&now, 0, sizeof(now));
	if(p->shared) shared__stats(p->shared, &now.shared);
	jobs__stats(p->jobs, &now.jobs);
	for(size_t i = 0; i < REPORTS; i++){
		const struct report *r = &reports_table[i];
		struct report_memory *m = &p->reports->memory[i];

		if(!r->changed(&now, &m->last)) continue;
		if(r->every_s && now_s - m->at < r->every_s) continue;
		r->say(p, &now, &m->last, now_s);
		m->last = now;
		m->last.reported = true;
		m->at = now_s;
	}
}

/* Every plugin_opt_metrics_interval seconds: the counters under $SYS/broker/bootstrap/,
 * retained (metrics__render names them). */
void report__metrics(struct bootstrap_plugin *p, time_t now_s)
{
	struct jobs_stats st;

	if(p->cfg.metrics_interval <= 0 || now_s < p->reports->metrics_next_s) return;
	p->reports->metrics_next_s = now_s + p->cfg.metrics_interval;
	jobs__stats(p->jobs, &st);
	metrics__render(&p->metrics, &st, jobs__outstanding(p->jobs), metric__publish, NULL);
	if(p->shared){
		struct shared_stats sst;
		shared__stats(p->shared, &sst);
		metrics__render_shared(&sst, &st, p->shared_late_replays, metric__publish, NULL);
	}
	dynreg__render(p->dynreg, metric__publish, NULL);
}

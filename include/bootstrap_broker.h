#ifndef BOOTSTRAP_BROKER_H
#define BOOTSTRAP_BROKER_H
/* The broker side of the plugin (plugin/broker/): what its files share. Only these files call
 * the broker's API (mosquitto_*), and only from broker callbacks, all of which run on the
 * broker's main-loop thread:
 *   plugin.c    entry points, callback registration, reload (SIGHUP)
 *   intake.c    MOSQ_EVT_MESSAGE, MOSQ_EVT_ACL_CHECK: checks, the one refusal exit, submit
 *   delivery.c  MOSQ_EVT_TICK, MOSQ_EVT_DISCONNECT: held replies, sealing, publish, audit
 *   report.c    log lines on a change of the worker's state, $SYS/broker/bootstrap/, and
 *               MOSQ_EVT_ACL_CHECK (intake.c decides; a refusal of that $SYS is logged once)
 *   dynreg.c    MOSQ_EVT_BASIC_AUTH: Link SDK dynamic registration CONNECTs, their answers
 * The functions below are not exported from the plugin (it is built with -fvisibility=hidden),
 * so they cannot collide with another plugin's symbols. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* 2.0.11's mosquitto_plugin.h does not include mosquitto_broker.h itself */
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "bootstrap_allowlist.h"
#include "bootstrap_audit.h"
#include "bootstrap_auth.h"
#include "bootstrap_config.h"
#include "bootstrap_jobs.h"
#include "bootstrap_metrics.h"
#include "bootstrap_reply.h"
#include "bootstrap_request.h"
#include "bootstrap_shared.h"
#include "bootstrap_text.h"

#define PLUGIN_NAME "mosquitto_bootstrap"
/* Unbound replies (request_auth none) at QoS 1, as before: a persistent session collects them.
 * Bound replies at QoS 0: delivered to the live connection or not at all, never kept in a
 * session or in mosquitto.db for whoever resumes it. */
#define REPLY_QOS_UNBOUND 1
#define REPLY_QOS_BOUND 0
/* Error replies hold no secret: QoS 0, so that a client that does not read them, or has left,
 * cannot make the broker keep them. */
#define REPLY_QOS_ERROR 0

struct reports;
struct dynreg;

/* One per plugin instance (the broker's *userdata: the same .so loaded for two listeners
 * shares its statics, never this). Owning thread of every field: the broker thread; only
 * broker callbacks touch them, so no lock. What the worker needs it gets through jobs (a
 * configuration snapshot, the queues), what Redis needs through shared. Grouped by the file
 * that writes them. */
struct bootstrap_plugin {
	mosquitto_plugin_id_t *id;
	struct bootstrap_config cfg; /* the broker thread's own: reload changes it, the worker has a snapshot */
	struct jobs *jobs;
	struct shared *shared;       /* multi-broker mode (bootstrap_shared.h); NULL: one broker alone */
	bool curl_ready;             /* curl_global_init done: cleanup undoes it */
	bool hash_held;              /* this instance holds the keyed hash (hash__acquire) */
	struct audit *audit;         /* plugin_opt_audit_file; NULL: none */
	struct dynreg *dynreg;       /* dynreg.c, plugin_opt_dynreg_mqtt on; NULL: off */
	/* intake.c */
	struct replay_cache *replay;
	struct failure_limiter *refusals_by_address;
	struct failure_limiter *refusals_by_client;
	struct failure_limiter *subscriptions_below; /* subscriptions below a client's own reply topic, per client id */
	struct allowlist *allowlist; /* plugin_opt_device_allowlist; NULL: every deviceId may ask */
	uint64_t shared_seq;         /* numbers the replay checks sent to Redis */
	unsigned long long audit_unanswered; /* refusals left unanswered, not yet in an audit line */
	time_t audit_unanswered_s;           /* when the last such line was written */
	bool username_claim_logged;  /* identity: a request with a username and no certificate, reported */
	/* delivery.c */
	struct job_result *held;     /* replies waiting for a joined request's replay check (bootstrap_list.h) */
	time_t last_tick_s;          /* replies go out from the tick: a broker that never ticks cannot answer */
	bool no_tick_warned;
	time_t report_checked_s;     /* the reports and the unanswered refusals' summary: once a second */
	/* report.c */
	struct metrics metrics;      /* also counted by intake.c and delivery.c */
	unsigned long long shared_late_replays; /* replays Redis found after the request joined a flow */
	time_t shared_down_since;    /* when Redis was last reported unreachable */
	struct reports *reports;     /* what the log and $SYS last said, per report */
};

/* Client ids are chosen by clients: what reaches a log line is escaped (bootstrap_text.h), and
 * cut beyond what any reply can go to. */
#define SHOWN_LEN TEXT_ESCAPED_LEN(REPLY_CLIENT_ID_MAX)
static inline const char *shown(const char *client_id, char *buf, size_t buflen)
{
	return client_id ? text__escape(buf, buflen, client_id) : "(none)";
}

/* The audit line's "format" of a request's route: NULL for a Link SDK registration. */
static inline const char *route__format(const struct reply_route *route)
{
	return !route || route->dynreg ? NULL : route->cbor ? "cbor" : "json";
}

/* intake.c */
int intake__init(struct bootstrap_plugin *p);
void intake__cleanup(struct bootstrap_plugin *p);
int bootstrap__on_message(int event, void *event_data, void *userdata);
int bootstrap__on_acl_check(int event, void *event_data, void *userdata);
bool bootstrap__product(struct bootstrap_plugin *p, const char *product_key, const char **secret);
/* signs for a product this broker does not serve are checked against this and refused
 * whatever comes out: the same work as a served product's wrong sign */
extern const char bootstrap__unserved_product_secret[];
void bootstrap__refuse(struct bootstrap_plugin *p, const char *requester, const char *address,
		const struct reply_route *route, const char *product_key, bool known, const char *device_id,
		enum bootstrap_reason reason, const char *why, time_t now);
void bootstrap__audit_unanswered(struct bootstrap_plugin *p, time_t now, bool flush);
void bootstrap__share_refusal(struct bootstrap_plugin *p, const char *key, bool by_address);
void bootstrap__share_replay(struct bootstrap_plugin *p, const char *product_key, const char *device_id, const char *random);
void bootstrap__audit_superseded(struct bootstrap_plugin *p, const struct reply_route *old, const char *product_key,
		const char *device_id);

/* delivery.c */
int bootstrap__on_tick(int event, void *event_data, void *userdata);
int bootstrap__on_disconnect(int event, void *event_data, void *userdata);
void bootstrap__send(struct bootstrap_plugin *p, const char *client_id,
		const struct reply_route *route, const char *payload, size_t len, int qos);
void bootstrap__check_ticking(struct bootstrap_plugin *p, time_t now);
void bootstrap__audit_shutdown(const struct job_result *r, void *ud);
void bootstrap__audit_reply(struct bootstrap_plugin *p, const struct job_result *r, enum bootstrap_reason reason,
		int64_t took_ms);

/* dynreg.c */
struct dynreg *dynreg__new(const struct bootstrap_config *cfg);
void dynreg__free(struct dynreg *d);
const char *dynreg__port_source(const struct dynreg *d);
int dynreg__on_basic_auth(int event, void *event_data, void *userdata);
void dynreg__deliver(struct bootstrap_plugin *p, struct job_result *r);
void dynreg__on_tick(struct bootstrap_plugin *p);
bool dynreg__pending(const struct bootstrap_plugin *p);
void dynreg__superseded(struct bootstrap_plugin *p, const struct reply_route *old);
bool dynreg__holds(const struct bootstrap_plugin *p, struct mosquitto *client);
bool dynreg__may_subscribe(const struct bootstrap_plugin *p, struct mosquitto *client, const char *topic);
bool dynreg__topic(const struct bootstrap_plugin *p, const char *topic);
void dynreg__on_disconnect(struct bootstrap_plugin *p, struct mosquitto *client);
void dynreg__render(const struct dynreg *d, void (*emit)(const char *topic, const char *value, void *ud), void *ud);

/* report.c */
struct reports *report__new(void);
void report__free(struct reports *reports);
void report__changes(struct bootstrap_plugin *p, time_t now);
void report__metrics(struct bootstrap_plugin *p, time_t now);
/* MOSQ_EVT_ACL_CHECK as registered: bootstrap__on_acl_check's decision, and a refusal of the
 * plugin's $SYS topics logged once per reason. */
int report__on_acl_check(int event, void *event_data, void *userdata);

#endif

/* mosquitto_bootstrap: the only file that talks to the broker.
 *
 * MOSQ_EVT_MESSAGE validates a request and hands it to the job queue; the worker thread talks
 * to the platform; MOSQ_EVT_TICK takes the finished jobs back and publishes the replies. No
 * broker function is called from any other thread, and no callback waits on I/O.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

/* 2.0.11's mosquitto_plugin.h does not include mosquitto_broker.h itself */
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "bootstrap_allowlist.h"
#include "bootstrap_audit.h"
#include "bootstrap_auth.h"
#include "bootstrap_clock.h"
#include "bootstrap_config.h"
#include "bootstrap_credentials.h"
#include "bootstrap_hash.h"
#include "bootstrap_identity.h"
#include "bootstrap_jobs.h"
#include "bootstrap_metrics.h"
#include "bootstrap_quota.h"
#include "bootstrap_reply.h"
#include "bootstrap_request.h"
#include "bootstrap_seal.h"
#include "bootstrap_secret.h"
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
/* While work is pending, ask 2.1 for a tick this soon (it may otherwise sleep for hours). */
#define PENDING_TICK_MS 10
/* the broker ticks at least every 100 ms on 2.0, and 2.1 is asked to while work is pending */
#define NO_TICK_WARN_S 5
/* A random is refused for the same deviceId for a day; at most this many are remembered. */
#define REPLAY_WINDOW_S (24 * 3600)
#define REPLAY_MAX_ENTRIES 200000
/* 10 refused requests under one client id, or 60 from one address (a NAT, a load balancer),
 * within a minute: further refusals from it go unanswered for a minute. Valid requests are
 * never limited. */
#define REFUSALS_PER_CLIENT_MAX 10
#define REFUSALS_PER_ADDRESS_MAX 60
#define REFUSALS_WINDOW_S 60
#define REFUSALS_BLOCK_S 60
#define REFUSALS_MAX_KEYS 65536
/* Subscriptions one level below a client's own reply topic (MQTT 5 Response Topics it picked)
 * or shared ones of it: each costs the broker memory, so a client id gets a few an hour, and
 * all client ids together at most SUBSCRIPTIONS_MAX_KEYS * (SUBSCRIPTIONS_PER_CLIENT_MAX - 1). */
#define SUBSCRIPTIONS_PER_CLIENT_MAX 5 /* the 5th within the window is refused */
#define SUBSCRIPTIONS_WINDOW_S 3600
#define SUBSCRIPTIONS_MAX_KEYS 8192
/* A reply to a request that joined a flow under way waits this long at most for Redis to say
 * whether its random was used before (multi-broker mode); then it goes out anyway. */
#define SHARED_CHECK_WAIT_MS 1000

/* Built with -fvisibility=hidden: only the entry points the broker looks up are exported, so
 * nothing of ours collides with another plugin's symbols (the broker loads with RTLD_GLOBAL). */
#define PLUGIN_EXPORT __attribute__((visibility("default")))

#ifdef MOSQ_EVT_MESSAGE_IN
#  define BOOTSTRAP_EVT_MESSAGE MOSQ_EVT_MESSAGE_IN
#else
#  define BOOTSTRAP_EVT_MESSAGE MOSQ_EVT_MESSAGE
#endif

/* Everything here belongs to the broker thread: only broker callbacks touch it. What the
 * worker needs it gets through jobs (a configuration snapshot, the queues). */
struct bootstrap_plugin {
	mosquitto_plugin_id_t *id;
	struct bootstrap_config cfg;
	struct jobs *jobs;
	struct replay_cache *replay;
	struct failure_limiter *refusals_by_address;
	struct failure_limiter *refusals_by_client;
	struct failure_limiter *subscriptions_below; /* subscriptions below a client's own reply topic, per client id */
	struct audit *audit;
	struct allowlist *allowlist; /* plugin_opt_device_allowlist; NULL: every deviceId may ask */
	struct metrics metrics;
	time_t metrics_next_s;
	unsigned long long throttled_logged; /* Throttling answers already reported in the log */
	unsigned long long audit_unanswered; /* refusals left unanswered, not yet in an audit line */
	time_t audit_unanswered_s;           /* when the last such line was written */
	bool signature_failing_logged[PLATFORM_ACTIONS]; /* actions failing on signature errors, as last reported */
	bool signature_reported;             /* platform/signature published once */
	bool batching_refused_logged;        /* a batch action refused, as last reported */
	char batching_detail_logged[160];
	unsigned long long applies_abandoned_logged;
	bool waker_refusal_logged;
	bool username_claim_logged; /* identity: a request with a username and no certificate, reported */
	bool hash_held; /* this instance holds the keyed hash (hash__acquire) */
	time_t report_checked_s;
	time_t throttle_log_s;
	/* what the log and $SYS last said of the credentials and the start-up check: one line per
	 * change, not per second */
	enum credentials_state credentials_reported;
	char credentials_detail_reported[160];
	char credentials_chain_reported[512];
	enum platform_check check_reported;
	char check_detail_reported[200];
	bool curl_ready;
	time_t last_tick_s;   /* replies go out from the tick: a broker that never ticks cannot answer */
	bool no_tick_warned;
	/* multi-broker mode (bootstrap_shared.h); NULL: one broker alone */
	struct shared *shared;
	uint64_t shared_seq;
	struct job_result *held_head, *held_tail; /* replies waiting for a joined request's replay check */
	unsigned long long shared_ups_logged, shared_downs_logged;
	time_t shared_down_since;
	unsigned long long shared_late_replays;
};

/* Client ids are chosen by clients: what reaches a log line is escaped (bootstrap_text.h), and
 * cut beyond what any reply can go to. */
#define SHOWN_LEN TEXT_ESCAPED_LEN(REPLY_CLIENT_ID_MAX)
static const char *shown(const char *client_id, char *buf, size_t buflen)
{
	return client_id ? text__escape(buf, buflen, client_id) : "(none)";
}

/* Publishes payload to client_id alone: on the route's Response Topic (with its Correlation
 * Data) when the request had one, else on the client's reply topic. */
static void bootstrap__send(struct bootstrap_plugin *p, const char *client_id,
		const struct reply_route *route, const char *payload, size_t len, int qos)
{
	char *topic = NULL;
	mosquitto_property *props = NULL;
	char buf[SHOWN_LEN];

	if(route && route->response_topic){
		topic = strdup(route->response_topic);
	}else{
		topic = request__reply_topic(p->cfg.reply_topic, client_id);
	}
	if(!topic || mosquitto_pub_topic_check(topic) != MOSQ_ERR_SUCCESS){
		mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": no valid reply topic for client '%s'; reply dropped",
				shown(client_id, buf, sizeof(buf)));
		free(topic);
		return;
	}
	if(route && route->correlation_data
			&& mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, route->correlation_data, route->correlation_len)){
		mosquitto_property_free_all(&props);
		free(topic);
		return;
	}
	/* client_id given: delivered to that client only, whatever it subscribed to; on success the
	 * broker owns props */
	if(mosquitto_broker_publish_copy(client_id, topic, (int)len, payload, qos, false, props) != MOSQ_ERR_SUCCESS){
		mosquitto_property_free_all(&props);
		mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": could not queue the reply for client '%s'",
				shown(client_id, buf, sizeof(buf)));
	}
	free(topic);
}

/* product_key: the product the reply is counted under (NULL: one this broker does not serve) */
static void bootstrap__send_error(struct bootstrap_plugin *p, const char *client_id, const struct reply_route *route,
		const char *product_key, enum bootstrap_code code, const char *message, int retry_after)
{
	size_t len = 0;
	char *payload = reply__error(code, message, retry_after, &len);

	if(!payload){
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": out of memory building a reply");
		return;
	}
	bootstrap__send(p, client_id, route, payload, len, REPLY_QOS_ERROR);
	reply__free(payload, len);
	metrics__reply(&p->metrics, product_key, code, -1);
}

/* A request answered at once, without a platform flow: one audit line. */
static void bootstrap__audit_now(struct bootstrap_plugin *p, const char *requester, const char *address,
		const char *product_key, const char *device_id, const char *code)
{
	struct audit_entry e = { .time = time(NULL), .client = requester, .address = address, .product_key = product_key,
		.device_id = device_id && device_id[0] ? device_id : NULL, .code = code };

	if(!p->audit) return;
	audit__record(p->audit, &e);
}

/* The refusals left unanswered under the limit since the last such line: one summary line, at
 * most every 5 s (and at shutdown): a flood costs the disk at most 17 280 lines a day. */
#define AUDIT_UNANSWERED_EVERY_S 5
static void bootstrap__audit_unanswered(struct bootstrap_plugin *p, time_t now, bool flush)
{
	struct audit_entry e = { .time = now, .code = reply__code_name(BOOTSTRAP_RATE_LIMITED) };

	if(!p->audit_unanswered || (!flush && now - p->audit_unanswered_s < AUDIT_UNANSWERED_EVERY_S)) return;
	e.unanswered = p->audit_unanswered;
	if(p->audit) audit__record(p->audit, &e);
	p->audit_unanswered = 0;
	p->audit_unanswered_s = now;
}

/* A request whose flow was taken over by a later one for the same device: that one gets the
 * reply, this one its audit line. */
static void bootstrap__audit_superseded(struct bootstrap_plugin *p, const struct reply_route *old, const char *product_key,
		const char *device_id)
{
	struct audit_entry e = { .time = time(NULL), .client = old->requester, .address = old->address,
		.product_key = product_key, .device_id = device_id, .code = AUDIT_SUPERSEDED, .duration_ms = (long)(clock__ms() - old->received_ms) };

	if(p->audit) audit__record(p->audit, &e);
}

/* One refusal counted in Redis against key (an address, or a client id); the answer comes
 * back at a tick (bootstrap__shared_results). Never waits. */
static void bootstrap__share_refusal(struct bootstrap_plugin *p, const char *key, bool by_address)
{
	struct shared_op *op;

	if(!key || strlen(key) > LIMITER_KEY_MAX || !(op = calloc(1, sizeof(*op)))) return;
	op->kind = SHARED_REFUSAL;
	op->by_address = by_address;
	memcpy(op->key, key, strlen(key) + 1);
	op->max = by_address ? REFUSALS_PER_ADDRESS_MAX : REFUSALS_PER_CLIENT_MAX;
	op->window_ms = REFUSALS_WINDOW_S * 1000L;
	op->block_ms = REFUSALS_BLOCK_S * 1000L;
	shared__submit(p->shared, op);
}

/* The one exit of every refused request. It is audited and counted against its address and
 * client id; it is answered unless the requester cannot be addressed (a client id that could
 * not be a deviceId: no reply topic is built from 60 KB of attacker's text) or is over the
 * refusal limit, which gets one rate_limited answer and then silence until the block ends.
 * So a flood of garbage costs the broker no stored replies. product_key is the product the
 * request asked for (NULL: none usable); known: this broker serves it. The log line, for the
 * operator alone, says when it does not; the requester is told only why. */
static void bootstrap__refuse(struct bootstrap_plugin *p, const char *requester, const char *address,
		const struct reply_route *route, const char *product_key, bool known, const char *device_id,
		enum bootstrap_code code, const char *why, time_t now)
{
	bool addressable = requester && request__client_id_addressable(requester);
	time_t by_address = 0, by_client = 0, blocked;
	enum limiter_verdict va, vc = LIMIT_ANSWER;
	char buf[SHOWN_LEN], product[PRODUCT_KEY_MAX + 48] = "";
	const char *counted = known ? product_key : NULL;

	va = limiter__refuse(p->refusals_by_address, address, now, &by_address);
	if(addressable) vc = limiter__refuse(p->refusals_by_client, requester, now, &by_client);
	/* multi-broker mode: every broker's refusals count; Redis's verdict arrives at a later tick
	 * and blocks the key here too (one that is silent here already needs no counting) */
	if(p->shared && va != LIMIT_SILENT) bootstrap__share_refusal(p, address, true);
	if(p->shared && addressable && vc != LIMIT_SILENT) bootstrap__share_refusal(p, requester, false);
	blocked = by_address > by_client ? by_address : by_client;
	if(va == LIMIT_SILENT || vc == LIMIT_SILENT){
		/* a flood's: counted in one audit line a minute (bootstrap__audit_unanswered), so that
		 * it cannot fill the disk at the rate it can send */
		p->metrics.dropped_rate_limited++;
		p->audit_unanswered++;
		return;
	}
	if(product_key){
		snprintf(product, sizeof(product), "; product %s%s", product_key, known ? "" : ", which this broker does not serve");
	}
	if(va == LIMIT_BLOCKED_NOW || vc == LIMIT_BLOCKED_NOW){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": request from client '%s' (%s) refused: rate_limited "
				"(%d refused requests within %d s %s; its further refusals go unanswered for %ld s, valid requests are still served)",
				shown(requester, buf, sizeof(buf)), address ? address : "?",
				va == LIMIT_BLOCKED_NOW ? REFUSALS_PER_ADDRESS_MAX : REFUSALS_PER_CLIENT_MAX, REFUSALS_WINDOW_S,
				va == LIMIT_BLOCKED_NOW ? "from this address" : "under this client id", (long)blocked);
		code = BOOTSTRAP_RATE_LIMITED;
		why = "too many refused requests; further refusals are not answered";
	}else if(device_id && device_id[0]){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": request for device %s from client '%s' (%s) refused: %s (%s%s)",
				device_id, shown(requester, buf, sizeof(buf)), address ? address : "?", reply__code_name(code), why, product);
	}else{
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": request from client '%s' (%s) refused: %s (%s)",
				shown(requester, buf, sizeof(buf)), address ? address : "?", reply__code_name(code), why);
	}
	if(addressable){
		bootstrap__send_error(p, requester, route, counted, code, why, code == BOOTSTRAP_RATE_LIMITED ? (int)blocked : 0);
	}else{
		p->metrics.dropped_unaddressable++;
	}
	bootstrap__audit_now(p, requester, address, product_key, device_id, reply__code_name(code));
}

/* A request that joined a flow under way: the worker checked the first request's random in
 * Redis, this one's is recorded here, and the reply waits for the answer (bootstrap__tick_held). */
static void bootstrap__share_replay(struct bootstrap_plugin *p, const char *product_key, const char *device_id, const char *random)
{
	struct reply_route *route = jobs__route(p->jobs, product_key, device_id);
	struct shared_op *op;
	uint64_t seq;

	if(!route || !(op = calloc(1, sizeof(*op)))) return;
	op->kind = SHARED_REPLAY;
	op->seq = seq = ++p->shared_seq;
	snprintf(op->product_key, sizeof(op->product_key), "%s", product_key);
	snprintf(op->device_id, sizeof(op->device_id), "%s", device_id);
	snprintf(op->random, sizeof(op->random), "%s", random);
	if(shared__submit(p->shared, op)){
		return; /* Redis is down: this broker's replay cache alone */
	}
	route->shared_check = seq;
}


/* Does this broker serve product_key? *secret gets its ProductSecret (NULL without sign). */
static bool bootstrap__product(struct bootstrap_plugin *p, const char *product_key, const char **secret)
{
	const struct product *prod;

	*secret = NULL;
	if(p->cfg.products){
		if(!(prod = products__find(p->cfg.products, product_key))) return false;
		*secret = prod->secret;
		return true;
	}
	if(strcmp(product_key, p->cfg.product_key)) return false;
	*secret = p->cfg.product_secret;
	return true;
}

/* Signs made for a product this broker does not serve are checked against this, and refused
 * whatever comes out: the work (one HMAC) is the same as for a served product's wrong sign. */
static const char unserved_product_secret[] = "mosquitto-bootstrap: not a product of this broker";

/* Does this request prove it may bootstrap its deviceId of product_key (known: served here,
 * with its secret when request_auth is sign)? Sets *why when it does not. */
static bool bootstrap__authorized(struct bootstrap_plugin *p, struct mosquitto *client,
		const struct bootstrap_request *req, const char *product_key, bool known, const char *secret,
		time_t now, const char **why)
{
	const char *client_id;
	char identity[DEVICE_NAME_MAX + 1];
	enum identity_result proven;
	X509 *cert;

	switch(p->cfg.request_auth){
		case REQUEST_AUTH_NONE:
			if(!known) *why = "this broker does not serve that product";
			return known;
		case REQUEST_AUTH_IDENTITY:
			if(!known){
				*why = "this broker does not serve that product";
				return false;
			}
			/* only the certificate the broker verified proves a name: a username may be
			 * anybody's claim (allow_anonymous true takes any, with no password) */
			cert = mosquitto_client_certificate(client);
			proven = identity__from_certificate(cert, p->cfg.identity_field, identity);
			X509_free(cert);
			if(proven != IDENTITY_OK || strcmp(identity, req->device_id)){
				*why = identity__refusal(proven, p->cfg.identity_field);
				if(proven == IDENTITY_NO_CERTIFICATE && mosquitto_client_username(client) && !p->username_claim_logged){
					/* an attack, or devices set up for an authenticated username: say it once */
					mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": request_auth identity: a request came with a username "
							"and no client certificate, and was refused: a username is never taken as proof of a deviceId, "
							"whoever checked it; devices must ask over a listener with require_certificate true (or use sign)");
					p->username_claim_logged = true;
				}
				return false;
			}
			break;
		case REQUEST_AUTH_SIGN:
			if(req->sign_method == SIGN_NONE){
				*why = "the request must be signed (random, signMethod, sign)";
				return false;
			}
			if(!known){
				/* refused as a wrong sign is, at the same point, after the same work: who holds no
				 * product's secret learns nothing of which products this broker serves */
				(void)auth__sign_valid(req->sign_method, unserved_product_secret, product_key,
						req->device_id, req->random, req->sign);
				*why = "the signature does not match";
				return false;
			}
			/* the sign covers productKey: made with another product's secret, it never matches */
			if(!auth__sign_valid(req->sign_method, secret, product_key, req->device_id, req->random, req->sign)){
				*why = "the signature does not match";
				return false;
			}
			break;
	}
	/* the reply is bound to the requesting connection: it must be the device's own */
	client_id = mosquitto_client_id(client);
	if(!client_id || strcmp(client_id, req->device_id)){
		*why = "the request must come from the device itself: connect with the deviceId as client id";
		return false;
	}
	/* only a valid signature is remembered: nobody can fill the cache without the secret */
	if(p->cfg.request_auth == REQUEST_AUTH_SIGN && replay__check_and_add(p->replay, product_key, req->device_id, req->random, now)){
		*why = "this random was already used for this deviceId; use a new one for every request";
		return false;
	}
	return true;
}

/* The MQTT 5 Response Topic and Correlation Data of a request, validated. False (with *why)
 * when the request carries ones that cannot be used. */
static bool bootstrap__route(struct bootstrap_plugin *p, const mosquitto_property *props,
		struct reply_route *route, const char **why)
{
	char *topic = NULL;
	void *data = NULL;
	uint16_t datalen = 0;

	memset(route, 0, sizeof(*route));
	if(!props) return true;
	mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &topic, false);
	mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &data, &datalen, false);
	if(topic && (!request__response_topic_valid(topic, strlen(topic), p->cfg.response_topic_prefix)
			|| mosquitto_pub_topic_check(topic) != MOSQ_ERR_SUCCESS)){
		*why = "the response topic must be a topic without wildcards, at most 256 bytes, under the bootstrap reply prefix";
	}else if(datalen > CORRELATION_DATA_MAX){
		*why = "correlation data longer than 256 bytes";
	}else{
		route->response_topic = topic;
		route->correlation_data = data;
		route->correlation_len = datalen;
		return true;
	}
	free(topic);
	free(data);
	return false;
}

/* Replies go out from the tick. Work pending and no tick for a while means they never will:
 * 2.1 idles for hours without work, never with it (the plugin asks for ticks). Checked from
 * the events that do come. */
static void bootstrap__check_ticking(struct bootstrap_plugin *p, time_t now)
{
	if(p->no_tick_warned || jobs__outstanding(p->jobs) == 0 || now - p->last_tick_s <= NO_TICK_WARN_S) return;
	mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": the broker has not ticked for %ld s, so replies cannot go out: "
			"per_listener_settings true on Mosquitto 2.0.11-2.0.14 stops MOSQ_EVT_TICK; set it false", (long)(now - p->last_tick_s));
	p->no_tick_warned = true;
}

static int bootstrap__on_message(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_message *ed = event_data;
	struct bootstrap_plugin *p = userdata;
	struct bootstrap_request req;
	struct reply_route route;
	enum bootstrap_code code = BOOTSTRAP_INVALID_REQUEST;
	const char *why = NULL, *requester, *address, *product_key = NULL, *secret = NULL;
	enum request_status status;
	char buf[SHOWN_LEN];
	time_t now = time(NULL);
	int retry_after;
	bool known = false;

	(void)event;
	if(!ed->topic || strcmp(ed->topic, p->cfg.request_topic)) return MOSQ_ERR_SUCCESS;
	ed->retain = false; /* a request is never kept for later subscribers */
	bootstrap__check_ticking(p, now);
	metrics__request(&p->metrics);
	requester = mosquitto_client_id(ed->client);
	address = mosquitto_client_address(ed->client);
	memset(&req, 0, sizeof(req));

	/* every check is cheap (1 KiB of JSON, one HMAC): a valid request is always looked at,
	 * whatever its neighbours sent; only refusals are limited, in bootstrap__refuse */
	if(!bootstrap__route(p, ed->properties, &route, &why)){
		/* answered on the requester's own reply topic: its Response Topic is what is wrong */
		goto refuse;
	}
	status = request__parse(ed->payload, ed->payloadlen, &req, &why);
	if(status != REQUEST_OK){
		code = status == REQUEST_INVALID_DEVICE_ID ? BOOTSTRAP_INVALID_DEVICE_ID : BOOTSTRAP_INVALID_REQUEST;
		goto refuse;
	}
	/* the product it names, as Alibaba's own registration request does, else the default */
	product_key = req.product_key[0] ? req.product_key : p->cfg.product_key;
	if(!product_key){
		why = "productKey is required: this broker serves several products";
		goto refuse;
	}
	known = bootstrap__product(p, product_key, &secret);
	if(!bootstrap__authorized(p, ed->client, &req, product_key, known, secret, now, &why)){
		code = BOOTSTRAP_UNAUTHORIZED;
		goto refuse;
	}
	/* only after the proof: who cannot sign for a deviceId learns nothing of the list */
	if(p->allowlist && !allowlist__allows(p->allowlist, req.device_id)){
		code = BOOTSTRAP_NOT_ALLOWED;
		why = "this deviceId is not on the bootstrap broker's device allowlist";
		goto refuse;
	}
	if(p->cfg.request_auth != REQUEST_AUTH_NONE){
		/* bound delivery: this connection, and no other, gets the answer */
		route.connection = ed->client;
	}
	if(p->cfg.reply_encryption == REPLY_ENCRYPTION_ON){
		/* derived from the secret (and product) that verified this very request: a reload
		 * meanwhile does not leave the device with a reply it cannot open */
		if(seal__derive_key(secret, req.random, product_key, req.device_id, route.seal_key)){
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": device %s: could not derive the reply key (product %s)",
					req.device_id, product_key);
			bootstrap__send_error(p, requester, &route, product_key, BOOTSTRAP_INTERNAL, "internal error", 0);
			bootstrap__audit_now(p, requester, address, product_key, req.device_id, reply__code_name(BOOTSTRAP_INTERNAL));
			goto done;
		}
		route.sealed = true;
	}
	/* only the device itself chooses where its triple arrives (with none, anyone may ask) */
	if(!requester || strcmp(requester, req.device_id)){
		free(route.response_topic);
		free(route.correlation_data);
		route.response_topic = NULL;
		route.correlation_data = NULL;
		route.correlation_len = 0;
	}
	/* the audit trail names them; with Redis a replay found there is a refusal like any other,
	 * counted against them */
	if(p->audit || p->shared){
		route.requester = requester ? strdup(requester) : NULL; /* as it is: audit__record escapes it */
		route.address = address ? strdup(address) : NULL;
	}
	route.received_ms = clock__ms();

	switch(jobs__submit(p->jobs, product_key, req.device_id, req.random[0] ? req.random : NULL, &route)){
		case JOBS_QUEUED:
			mosquitto_log_printf(MOSQ_LOG_DEBUG, PLUGIN_NAME ": device %s: queued (product %s, request from client '%s')",
					req.device_id, product_key, shown(requester, buf, sizeof(buf)));
			break;
		case JOBS_JOINED:
			/* the earlier request gets no reply of its own: its audit line says so */
			mosquitto_log_printf(MOSQ_LOG_DEBUG, PLUGIN_NAME ": device %s: already in progress, joined (product %s)",
					req.device_id, product_key);
			bootstrap__audit_superseded(p, &route, product_key, req.device_id);
			if(p->shared && req.random[0]) bootstrap__share_replay(p, product_key, req.device_id, req.random);
			break;
		case JOBS_FULL:
			/* what is ahead of the device drains at the paced RegisterDevice rate */
			retry_after = 1 + (int)((double)jobs__outstanding(p->jobs) / (p->cfg.qps[ACTION_REGISTER] * QUOTA_PACING));
			mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": device %s: busy, queue full (product %s)", req.device_id, product_key);
			bootstrap__send_error(p, req.device_id, &route, product_key, BOOTSTRAP_BUSY,
					"too many bootstrap requests waiting; try again later", retry_after);
			bootstrap__audit_now(p, requester, address, product_key, req.device_id, reply__code_name(BOOTSTRAP_BUSY));
			break;
		case JOBS_ERROR:
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": device %s: out of memory (product %s)", req.device_id, product_key);
			bootstrap__send_error(p, req.device_id, &route, product_key, BOOTSTRAP_INTERNAL, "internal error", 0);
			bootstrap__audit_now(p, requester, address, product_key, req.device_id, reply__code_name(BOOTSTRAP_INTERNAL));
			break;
	}
	goto done;

refuse:
	bootstrap__refuse(p, requester, address, &route, product_key, known, req.device_id, code, why, now);
done:
	OPENSSL_cleanse(&req, sizeof(req));
	jobs__route_free(&route); /* empty when the job took it over */
	return MOSQ_ERR_SUCCESS;
}

/* The one audit line of a request that reached the platform. */
static void bootstrap__audit_reply(struct bootstrap_plugin *p, const struct job_result *r, const char *code, int64_t took_ms)
{
	const struct platform_flow *flow = r->flow;
	struct audit_entry e = { .time = time(NULL), .client = r->route.requester, .address = r->route.address,
		.product_key = r->product_key, .device_id = r->device_id, .code = code, .duration_ms = (long)took_ms };

	if(!p->audit) return;
	if(flow){
		/* which call served the device: a batch call's RequestId is shared by its devices */
		e.request_id = flow->request_id[0] ? flow->request_id : NULL;
		if(flow->steps > 0) e.action = platform_actions[flow->answered_by].name;
		if(platform__flow_existence_known(flow)) e.device = flow->existing ? "existing" : "new";
	}
	audit__record(p->audit, &e);
}

static void bootstrap__audit_shutdown(const struct job_result *r, void *ud)
{
	struct bootstrap_plugin *p = ud;

	bootstrap__audit_reply(p, r, AUDIT_SHUTDOWN, clock__ms() - r->route.received_ms);
}

static void bootstrap__deliver(struct bootstrap_plugin *p, struct job_result *r)
{
	static struct platform_flow no_memory = { .state = FLOW_DONE, .result = BOOTSTRAP_INTERNAL,
		.message = "the bootstrap service ran out of memory" };
	const struct platform_flow *flow = r->flow ? r->flow : &no_memory;
	size_t len = 0;
	int64_t took_ms;
	char *payload, iot_id[TEXT_ESCAPED_LEN(sizeof(flow->triple.iot_id))];

	took_ms = clock__ms() - r->route.received_ms;
	if(!r->route.connection_ended && (r->route.replayed || (r->flow && r->flow->result == BOOTSTRAP_UNAUTHORIZED))){
		/* Redis knew the random (multi-broker mode; the worker answers nothing else with
		 * unauthorized): refused like a replay found here, counted against the requester. A
		 * joined request's flow result (a triple) is not for it. */
		if(r->route.replayed) p->shared_late_replays++;
		bootstrap__refuse(p, r->route.requester ? r->route.requester : r->device_id, r->route.address, &r->route,
				r->product_key, true, r->device_id, BOOTSTRAP_UNAUTHORIZED, "this random was already used for this deviceId; use a new one for every request",
				time(NULL));
		return;
	}
	if(r->route.connection_ended){
		/* bound delivery: nobody but the connection that asked may have this answer */
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": device %s: %s dropped: the requesting connection ended "
				"(closed, or its client id was taken over) before the answer came (product %s)", r->device_id,
				flow->result == BOOTSTRAP_OK ? "triple" : "reply", r->product_key);
		p->metrics.dropped_connection_ended++;
		bootstrap__audit_reply(p, r, AUDIT_CONNECTION_CLOSED, took_ms);
		return;
	}
	if(flow->result == BOOTSTRAP_OK){
		payload = r->route.sealed ? reply__success_sealed(r->route.seal_key, &flow->triple, &len)
				: reply__success(&flow->triple, &len);
		mosquitto_log_printf(MOSQ_LOG_INFO, PLUGIN_NAME ": device %s: triple sent%s (%s device, product %s, IotId %s, by %s)",
				r->device_id, r->route.sealed ? " sealed" : "", flow->existing ? "existing" : "new", r->product_key,
				text__escape(iot_id, sizeof(iot_id), flow->triple.iot_id), platform_actions[flow->answered_by].name);
	}else{
		payload = reply__error(flow->result, flow->message, flow->retry_after, &len);
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": device %s: %s: %s%s%s%s%s; product %s",
				r->device_id, reply__code_name(flow->result), flow->message,
				flow->detail[0] ? "; " : "", flow->detail,
				flow->request_id[0] ? "; RequestId " : "", flow->request_id, r->product_key);
	}
	if(!payload){
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": device %s: out of memory building the reply", r->device_id);
		return;
	}
	bootstrap__send(p, r->device_id, &r->route, payload, len, flow->result != BOOTSTRAP_OK ? REPLY_QOS_ERROR
			: r->route.connection ? REPLY_QOS_BOUND : REPLY_QOS_UNBOUND);
	reply__free(payload, len);
	metrics__reply(&p->metrics, r->product_key, flow->result, (double)took_ms);
	bootstrap__audit_reply(p, r, reply__code_name(flow->result), took_ms);
}

/* What the worker saw that an operator should know: throttling (something else uses the
 * account's quota) and a refused wakeup connection. Checked once a second; throttling is
 * reported at most every 10 s. */
static void metric__publish(const char *topic, const char *value, void *ud);

/* The credentials' state: a log line when it changes (an error when none are valid), and the
 * retained $SYS/broker/bootstrap/platform/credentials. */
static void bootstrap__report_credentials(struct bootstrap_plugin *p, const struct jobs_stats *st)
{
	char text[256], until[32] = "";
	int level;

	/* once per outcome of the chain: which source won, and why the ones before it did not */
	if(st->credentials_chain[0] && strcmp(st->credentials_chain, p->credentials_chain_reported)){
		memcpy(p->credentials_chain_reported, st->credentials_chain, sizeof(p->credentials_chain_reported));
		mosquitto_log_printf(strncmp(st->credentials_chain, "using ", 6) ? MOSQ_LOG_ERR : MOSQ_LOG_NOTICE,
				PLUGIN_NAME ": platform credentials chain: %s", st->credentials_chain);
	}
	if(st->credentials_state == p->credentials_reported && !strcmp(st->credentials_detail, p->credentials_detail_reported)) return;
	p->credentials_reported = st->credentials_state;
	memcpy(p->credentials_detail_reported, st->credentials_detail, sizeof(p->credentials_detail_reported));
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
static void bootstrap__report_check(struct bootstrap_plugin *p, const struct jobs_stats *st)
{
	char text[256];

	if(st->check == p->check_reported && !strcmp(st->check_detail, p->check_detail_reported)) return;
	p->check_reported = st->check;
	memcpy(p->check_detail_reported, st->check_detail, sizeof(p->check_detail_reported));
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
 * actions getting them changes, and $SYS/broker/bootstrap/platform/signature. */
static void bootstrap__report_signature(struct bootstrap_plugin *p, const struct jobs_stats *st)
{
	char text[640], names[256] = "";
	size_t used = 0;
	bool failing = false;

	if(p->signature_reported && !memcmp(st->signature_failing, p->signature_failing_logged, sizeof(p->signature_failing_logged))) return;
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
		if(p->signature_reported) mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": platform signature: accepted again");
	}
	memcpy(p->signature_failing_logged, st->signature_failing, sizeof(p->signature_failing_logged));
	p->signature_reported = true;
	metric__publish(METRICS_TOPIC_PREFIX "platform/signature", text, NULL);
}

/* Batching's state: one line when the platform refuses a batch action (and when batching is
 * back), one when batch registrations had to hand their devices back to single calls. */
static void bootstrap__report_batching(struct bootstrap_plugin *p, const struct jobs_stats *st)
{
	bool refused = false;

	for(int a = 0; a < PLATFORM_ACTIONS; a++) refused = refused || st->batching_refused[a];
	if(refused != p->batching_refused_logged || (refused && strcmp(st->batching_detail, p->batching_detail_logged))){
		if(refused){
			mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": batching: %s; %s go on as single calls until the "
					"credentials change or a reload (grant the RAM identity the batch actions listed in the README, or set "
					"plugin_opt_batching off)", st->batching_detail,
					st->batching_refused[ACTION_BATCH_QUERY] && st->batching_refused[ACTION_BATCH_CHECK] ? "lookups and registrations"
					: st->batching_refused[ACTION_BATCH_QUERY] ? "lookups" : "registrations");
		}else{
			mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": batching: batch actions in use again");
		}
		p->batching_refused_logged = refused;
		snprintf(p->batching_detail_logged, sizeof(p->batching_detail_logged), "%s", st->batching_detail);
	}
	if(st->applies_abandoned != p->applies_abandoned_logged){
		mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": batching: %llu batch registration(s) handed their devices back "
				"to single RegisterDevice calls (a stage did not finish in time, the platform no longer knew the ApplyId, or it refused a step)", st->applies_abandoned - p->applies_abandoned_logged);
		p->applies_abandoned_logged = st->applies_abandoned;
	}
}

/* Redis's state: one line per change (connected, unreachable with why, back). */
static void bootstrap__report_shared(struct bootstrap_plugin *p, time_t now)
{
	struct shared_stats st;
	bool down_logged = false;

	if(!p->shared) return;
	shared__stats(p->shared, &st);
	/* both changed since the last look: the order the current state implies */
	for(int pass = 0; pass < 2; pass++){
		bool down_first = st.state == SHARED_UP;
		if(pass == (down_first ? 0 : 1) && st.downs != p->shared_downs_logged){
			double share = shared__fallback_share(p->cfg.redis_fallback_share, st.brokers) * SHARED_PACING;
			mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": shared state: Redis unreachable (%s); this broker goes on "
					"alone: its own replay cache and refusal limits, no flow locks, and %.0f%% of each quota "
					"(RegisterDevice %.1f/s, QueryDeviceDetail %.1f/s)%s; retrying", st.detail[0] ? st.detail : "no answer",
					share * 100.0, p->cfg.qps[ACTION_REGISTER] * share * QUOTA_PACING, p->cfg.qps[ACTION_QUERY] * share * QUOTA_PACING,
					p->cfg.redis_fallback_share > 0 || st.brokers > 0 ? ""
					: " (it never saw how many brokers there are: set plugin_opt_redis_fallback_share to each one's share)");
			p->shared_downs_logged = st.downs;
			p->shared_down_since = now;
			down_logged = true;
		}
		if(pass == (down_first ? 1 : 0) && st.ups != p->shared_ups_logged){
			if(p->shared_ups_logged == 0 && !down_logged && p->shared_downs_logged == 0){
				mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": shared state: connected to %s at %s (prefix %s, broker %s, "
						"%d broker%s alive): replay cache, refusal limits, flow locks and the quota are shared",
						st.server[0] ? st.server : "Redis", p->cfg.redis_url, p->cfg.redis_prefix, st.broker_id, st.brokers,
						st.brokers == 1 ? "" : "s");
			}else{
				mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": shared state: Redis back (%s) after %ld s; state and "
						"quota shared again (%d broker%s alive)", st.server[0] ? st.server : "Redis",
						(long)(now - p->shared_down_since), st.brokers, st.brokers == 1 ? "" : "s");
			}
			p->shared_ups_logged = st.ups;
		}
	}
}

static void bootstrap__report_worker(struct bootstrap_plugin *p, time_t now)
{
	struct jobs_stats st;

	if(now == p->report_checked_s) return;
	p->report_checked_s = now;
	bootstrap__report_shared(p, now);
	jobs__stats(p->jobs, &st);
	bootstrap__audit_unanswered(p, now, false);
	bootstrap__report_credentials(p, &st);
	bootstrap__report_check(p, &st);
	bootstrap__report_signature(p, &st);
	bootstrap__report_batching(p, &st);
	if(st.waker_refused && !p->waker_refusal_logged){
		mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": plugin_opt_wakeup_port %d: the broker refused the wakeup "
				"connection (that listener must accept an anonymous client); replies go out at the broker's tick instead",
				p->cfg.wakeup_port);
		p->waker_refusal_logged = true;
	}
	if(st.throttled == p->throttled_logged || now - p->throttle_log_s < 10) return;
	{
		/* the actions paced below their quota now, e.g. "RegisterDevice 15.0/s" */
		char slowed[256] = "";
		size_t used = 0;
		for(int a = 0; a < PLATFORM_ACTIONS && used < sizeof(slowed); a++){
			if(st.rate[a] >= st.configured_rate[a]) continue;
			used += (size_t)snprintf(slowed + used, sizeof(slowed) - used, "%s%s %.1f/s", used ? ", " : "",
					platform_actions[a].name, st.rate[a]);
		}
		mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": the platform throttled %llu calls (%llu in all); "
				"pacing %s. Does another client share the account's quota?",
				st.throttled - p->throttled_logged, st.throttled, slowed[0] ? slowed : "every action at its quota again");
	}
	p->throttled_logged = st.throttled;
	p->throttle_log_s = now;
}

static void metric__publish(const char *topic, const char *value, void *ud)
{
	(void)ud;
	/* retained, like the broker's own $SYS topics */
	mosquitto_broker_publish_copy(NULL, topic, (int)strlen(value), value, 0, true, NULL);
}

static void bootstrap__publish_metrics(struct bootstrap_plugin *p, time_t now)
{
	struct jobs_stats st;

	if(p->cfg.metrics_interval <= 0 || now < p->metrics_next_s) return;
	p->metrics_next_s = now + p->cfg.metrics_interval;
	jobs__stats(p->jobs, &st);
	metrics__render(&p->metrics, &st, jobs__outstanding(p->jobs), metric__publish, NULL);
	if(p->shared){
		struct shared_stats sst;
		shared__stats(p->shared, &sst);
		metrics__render_shared(&sst, &st, p->shared_late_replays, metric__publish, NULL);
	}
}

/* Redis's answers for the broker thread: refusal verdicts block keys here too; a joined
 * request's replay check settles its route (pending in the index, or held). */
static void bootstrap__shared_results(struct bootstrap_plugin *p, time_t now)
{
	struct shared_op *op, *next;

	if(!p->shared) return;
	for(op = shared__take(p->shared, SHARED_FOR_BROKER); op; op = next){
		next = op->next;
		if(op->kind == SHARED_REFUSAL && op->ok && op->blocked_ms > 0){
			limiter__block(op->by_address ? p->refusals_by_address : p->refusals_by_client, op->key, now,
					(time_t)((op->blocked_ms + 999) / 1000));
		}else if(op->kind == SHARED_REPLAY){
			struct reply_route *route = jobs__route(p->jobs, op->product_key, op->device_id);
			for(struct job_result *r = p->held_head; r && !(route && route->shared_check == op->seq); r = r->next){
				if(r->route.shared_check == op->seq) route = &r->route;
			}
			if(route && route->shared_check == op->seq){
				route->shared_check = 0;
				route->replayed = op->ok && op->replayed;
			}
		}
		free(op);
	}
}

/* Held replies whose replay check is settled, or has taken too long (Redis slow: this
 * broker's replay cache has passed the request), go out. */
static void bootstrap__tick_held(struct bootstrap_plugin *p)
{
	struct job_result **link = &p->held_head, *r;
	int64_t now = clock__ms();

	p->held_tail = NULL;
	while((r = *link)){
		if(r->route.shared_check && now - r->route.received_ms < SHARED_CHECK_WAIT_MS){
			p->held_tail = r;
			link = &r->next;
			continue;
		}
		*link = r->next;
		bootstrap__deliver(p, r);
		jobs__result_free(r);
	}
}

static int bootstrap__on_tick(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_tick *ed = event_data;
	struct bootstrap_plugin *p = userdata;
	struct job_result *r, *next;

	(void)event;
	p->last_tick_s = time(NULL);
	bootstrap__report_worker(p, p->last_tick_s);
	bootstrap__publish_metrics(p, time(NULL));
	bootstrap__shared_results(p, p->last_tick_s);
	for(r = jobs__take_results(p->jobs); r; r = next){
		next = r->next;
		if(r->route.shared_check){
			/* its random's check is still with Redis */
			r->next = NULL;
			if(p->held_tail) p->held_tail->next = r;
			else p->held_head = r;
			p->held_tail = r;
			continue;
		}
		bootstrap__deliver(p, r);
		jobs__result_free(r);
	}
	if(p->held_head) bootstrap__tick_held(p);
	if(jobs__outstanding(p->jobs) > 0 || p->held_head){
#ifdef MOSQ_EVT_MESSAGE_IN
		ed->next_ms = PENDING_TICK_MS;
#else
		/* 2.1 reads this slot as next_ms; 2.0 ignores it and ticks every 100 ms anyway */
		ed->next_ns = PENDING_TICK_MS;
#endif
	}
	return MOSQ_ERR_SUCCESS;
}

static int bootstrap__on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	struct bootstrap_plugin *p = userdata;

	const char *username = mosquitto_client_username(ed->client);
	bool operator = p->cfg.operator_username && username && !strcmp(username, p->cfg.operator_username);
	const struct acl_topics topics = { p->cfg.request_topic, p->cfg.reply_topic, p->cfg.response_topic_prefix };

	(void)event;
	time_t blocked_for;

	switch(auth__acl_decide(p->cfg.acl, ed->access, mosquitto_client_id(ed->client), operator, ed->topic, &topics)){
		case ACL_ALLOW: return MOSQ_ERR_SUCCESS;
		case ACL_ALLOW_COUNTED:
			/* counted like refusals, failing closed: a full table shares one budget */
			return limiter__refuse(p->subscriptions_below, mosquitto_client_id(ed->client), time(NULL), &blocked_for) == LIMIT_ANSWER
				? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
		case ACL_DENY: return MOSQ_ERR_ACL_DENIED;
		case ACL_DEFER_DECISION: return MOSQ_ERR_PLUGIN_DEFER;
	}
	return MOSQ_ERR_ACL_DENIED;
}

/* A connection ended (closed, or its client id taken over by a newer one: 2.0.11 fires this
 * for the old connection before the new one is registered). A reply bound to it is dropped. */
static int bootstrap__on_disconnect(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ed = event_data;
	struct bootstrap_plugin *p = userdata;
	const char *client_id = mosquitto_client_id(ed->client);

	(void)event;
	if(client_id) jobs__connection_ended(p->jobs, client_id, ed->client);
	bootstrap__check_ticking(p, time(NULL));
	return MOSQ_ERR_SUCCESS;
}

static const char *bootstrap__getenv(const char *name);

/* (Re)reads plugin_opt_device_allowlist: the new list replaces the current one only when the
 * whole file is good. 0, or -1 with the current list (if any) left in place and the reason
 * logged. */
static int bootstrap__load_allowlist(struct bootstrap_plugin *p, const char *when)
{
	char err[CONFIG_ERR_LEN];
	struct allowlist *al = allowlist__load(p->cfg.device_allowlist, err, sizeof(err));

	if(!al){
		if(p->allowlist){
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": %splugin_opt_device_allowlist: %s; keeping the current list "
					"(%zu deviceIds, %zu patterns)", when, err, allowlist__name_count(p->allowlist),
					allowlist__pattern_count(p->allowlist));
		}else{
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": %splugin_opt_device_allowlist: %s", when, err);
		}
		return -1;
	}
	allowlist__free(p->allowlist);
	p->allowlist = al;
	mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": %sdevice allowlist %s: %zu deviceIds, %zu patterns%s", when,
			p->cfg.device_allowlist, allowlist__name_count(al), allowlist__pattern_count(al),
			allowlist__name_count(al) + allowlist__pattern_count(al) ? "" : " (no device may bootstrap)");
	return 0;
}

/* What the products file gave: how many, and which is the default. */
static void bootstrap__log_products(struct bootstrap_plugin *p, const char *when)
{
	mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": %sproducts file %s: %zu products%s%s%s", when, p->cfg.products_file,
			products__count(p->cfg.products), p->cfg.product_key ? ", default " : "; requests must name their productKey",
			p->cfg.product_key ? p->cfg.product_key : "", p->cfg.product_key ? " for requests that name none" : "");
}

/* Every product served is counted apart in the metrics (bounded: past the bound, in the
 * totals alone, and the log says so). */
static void bootstrap__count_products(struct bootstrap_plugin *p)
{
	size_t n = products__count(p->cfg.products), refused = 0;

	if(!p->cfg.products){
		refused += metrics__product(&p->metrics, p->cfg.product_key) != 0;
	}
	for(size_t i = 0; i < n; i++) refused += metrics__product(&p->metrics, products__at(p->cfg.products, i)->key) != 0;
	if(refused){
		mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": metrics: %zu products are counted in the totals only "
				"(more than %d products seen since start-up)", refused, METRICS_PRODUCTS_MAX);
	}
}

/* (Re)reads plugin_opt_products_file and every secret it names: the new set replaces the
 * current one only when all of it is good. 0, or -1 with the current set (if any) kept and
 * the reason logged (naming the file and line, never a secret). */
static int bootstrap__load_products(struct bootstrap_plugin *p, const char *when)
{
	char err[CONFIG_ERR_LEN];

	if(config__load_products(&p->cfg, err, sizeof(err))){
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": %s%s; keeping the current products (%zu)", when, err,
				products__count(p->cfg.products));
		return -1;
	}
	bootstrap__count_products(p);
	bootstrap__log_products(p, when);
	return 0;
}

/* SIGHUP: take up rotated platform credentials and ProductSecrets (the products file, with
 * products added or removed). What cannot be read leaves the current ones in place. Requests
 * already sent are not touched: their replies are sealed with the keys derived when they came. */
static int bootstrap__on_reload(int event, void *event_data, void *userdata)
{
	struct bootstrap_plugin *p = userdata;
	char err[CONFIG_ERR_LEN];
	char *old_secret = p->cfg.product_secret;

	(void)event;
	(void)event_data;
	/* before the credentials: the worker's new snapshot names the product its check asks about */
	if(p->cfg.products_file) bootstrap__load_products(p, "reload: ");
	if(config__load_credentials(&p->cfg, bootstrap__getenv, err, sizeof(err))){
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": reload: %s; keeping the current credentials", err);
	}else if(jobs__reconfigure(p->jobs, &p->cfg)){
		/* the worker gets a snapshot of its own: it never reads what this thread changes */
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": reload: out of memory; the worker keeps the current credentials");
	}else{
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": reload: platform credentials reloaded from %s (%s)",
				p->cfg.creds_source.origin, credentials__kind_name(p->cfg.creds_source.kind));
	}
	if(p->cfg.request_auth == REQUEST_AUTH_SIGN && !p->cfg.products_file){
		p->cfg.product_secret = NULL;
		if(config__load_product_secret(&p->cfg, err, sizeof(err))){
			p->cfg.product_secret = old_secret;
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": reload: %s; keeping the current ProductSecret", err);
		}else{
			secret__free(&old_secret);
			mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": reload: ProductSecret reloaded");
		}
	}
	if(p->cfg.device_allowlist) bootstrap__load_allowlist(p, "reload: ");
	if(p->audit){
		if(audit__reopen(p->audit, err, sizeof(err))){
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": reload: %s; still writing to the old file", err);
		}
	}
	/* DEFER: SUCCESS would stop later plugins from seeing the reload */
	return MOSQ_ERR_PLUGIN_DEFER;
}

static const char *bootstrap__getenv(const char *name)
{
	return getenv(name);
}

static void bootstrap__unregister(struct bootstrap_plugin *p)
{
	mosquitto_callback_unregister(p->id, BOOTSTRAP_EVT_MESSAGE, bootstrap__on_message, NULL);
	mosquitto_callback_unregister(p->id, MOSQ_EVT_TICK, bootstrap__on_tick, NULL);
	mosquitto_callback_unregister(p->id, MOSQ_EVT_ACL_CHECK, bootstrap__on_acl_check, NULL);
	mosquitto_callback_unregister(p->id, MOSQ_EVT_RELOAD, bootstrap__on_reload, NULL);
	mosquitto_callback_unregister(p->id, MOSQ_EVT_DISCONNECT, bootstrap__on_disconnect, NULL);
}

static void bootstrap__free(struct bootstrap_plugin *p)
{
	if(!p) return;
	while(p->held_head){
		struct job_result *r = p->held_head;
		p->held_head = r->next;
		jobs__result_free(r);
	}
	jobs__free(p->jobs);
	/* after the worker, which uses it */
	shared__free(p->shared);
	replay__free(p->replay);
	limiter__free(p->refusals_by_address);
	limiter__free(p->refusals_by_client);
	limiter__free(p->subscriptions_below);
	bootstrap__audit_unanswered(p, time(NULL), true);
	audit__close(p->audit);
	allowlist__free(p->allowlist);
	metrics__cleanup(&p->metrics);
	config__cleanup(&p->cfg);
	if(p->curl_ready) curl_global_cleanup();
	if(p->hash_held) hash__release();
	free(p);
}

PLUGIN_EXPORT int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

PLUGIN_EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
		struct mosquitto_opt *opts, int opt_count)
{
	struct bootstrap_plugin *p;
	char err[CONFIG_ERR_LEN], products[PRODUCT_KEY_MAX + 16];

	p = calloc(1, sizeof(*p));
	if(!p) return MOSQ_ERR_NOMEM;
	p->id = identifier;
	p->last_tick_s = time(NULL);
	config__init(&p->cfg);
	for(int i = 0; i < opt_count; i++){
		if(config__set(&p->cfg, opts[i].key, opts[i].value, err, sizeof(err))){
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": %s", err);
			bootstrap__free(p);
			return MOSQ_ERR_INVAL;
		}
	}
	/* before config__finish, which parses the endpoint with curl's URL API */
	if(curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK){
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": libcurl failed to initialise");
		bootstrap__free(p);
		return MOSQ_ERR_UNKNOWN;
	}
	p->curl_ready = true;
	if(config__finish(&p->cfg, bootstrap__getenv, err, sizeof(err))){
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": %s", err);
		bootstrap__free(p);
		return MOSQ_ERR_INVAL;
	}
	if(p->cfg.audit_file && !(p->audit = audit__open(p->cfg.audit_file, err, sizeof(err)))){
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": %s", err);
		bootstrap__free(p);
		return MOSQ_ERR_INVAL;
	}
	/* a list that cannot be read is a start-up error: the broker must not serve every device */
	if(p->cfg.device_allowlist && bootstrap__load_allowlist(p, "")){
		bootstrap__free(p);
		return MOSQ_ERR_INVAL;
	}
	/* the tables index what clients choose: without the keyed hash they could be flooded */
	if(!(p->hash_held = hash__acquire())){
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": OpenSSL offers no SipHash or no random key for the hash tables");
		bootstrap__free(p);
		return MOSQ_ERR_UNKNOWN;
	}
	p->replay = replay__new(REPLAY_MAX_ENTRIES, REPLAY_WINDOW_S);
	p->refusals_by_address = limiter__new(REFUSALS_PER_ADDRESS_MAX, REFUSALS_WINDOW_S, REFUSALS_BLOCK_S, REFUSALS_MAX_KEYS);
	p->refusals_by_client = limiter__new(REFUSALS_PER_CLIENT_MAX, REFUSALS_WINDOW_S, REFUSALS_BLOCK_S, REFUSALS_MAX_KEYS);
	p->subscriptions_below = limiter__new(SUBSCRIPTIONS_PER_CLIENT_MAX, SUBSCRIPTIONS_WINDOW_S, SUBSCRIPTIONS_WINDOW_S,
			SUBSCRIPTIONS_MAX_KEYS);
	if(!p->replay || !p->refusals_by_address || !p->refusals_by_client || !p->subscriptions_below){
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": out of memory");
		bootstrap__free(p);
		return MOSQ_ERR_NOMEM;
	}
	if(p->cfg.redis_url){
		const struct shared_options so = { .url = p->cfg.redis_url, .username = p->cfg.redis_username,
			.password = p->cfg.redis_password, .prefix = p->cfg.redis_prefix,
			.timeout_ms = p->cfg.redis_timeout_ms };
		p->shared = shared__new(&so, err, sizeof(err));
		/* the Redis thread has its own copy: this one is not needed again */
		secret__free(&p->cfg.redis_password);
		if(!p->shared){
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": %s", err);
			bootstrap__free(p);
			return MOSQ_ERR_UNKNOWN;
		}
	}
	p->jobs = jobs__new(&p->cfg, p->shared);
	if(!p->jobs){
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": could not start the worker thread");
		bootstrap__free(p);
		return MOSQ_ERR_UNKNOWN;
	}
	if(p->shared){
		mosquitto_log_printf(MOSQ_LOG_INFO, PLUGIN_NAME ": multi-broker mode: state shared through Redis at %s, "
				"keys under '%s:'; connecting", p->cfg.redis_url, p->cfg.redis_prefix);
	}
	if(mosquitto_callback_register(identifier, BOOTSTRAP_EVT_MESSAGE, bootstrap__on_message, NULL, p)
			|| mosquitto_callback_register(identifier, MOSQ_EVT_TICK, bootstrap__on_tick, NULL, p)
			|| mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, bootstrap__on_acl_check, NULL, p)
			|| mosquitto_callback_register(identifier, MOSQ_EVT_RELOAD, bootstrap__on_reload, NULL, p)
			|| mosquitto_callback_register(identifier, MOSQ_EVT_DISCONNECT, bootstrap__on_disconnect, NULL, p)){
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": could not register callbacks");
		bootstrap__unregister(p);
		bootstrap__free(p);
		return MOSQ_ERR_UNKNOWN;
	}
	*userdata = p;
	bootstrap__count_products(p);
	if(p->cfg.products){
		bootstrap__log_products(p, "");
	}else{
		snprintf(products, sizeof(products), "product %s", p->cfg.product_key);
	}
	mosquitto_log_printf(MOSQ_LOG_INFO, PLUGIN_NAME ": ready: %s, platform %s, requests on '%s', replies on '%s', "
			"credentials from %s: %s%s%s", p->cfg.products ? "several products" : products, p->cfg.endpoint, p->cfg.request_topic, p->cfg.reply_topic,
			p->cfg.creds_source.origin, credentials__kind_name(p->cfg.creds_source.kind),
			p->cfg.creds.security_token ? " with an STS token" : "",
			p->cfg.creds_source.next && p->cfg.creds_source.kind != CREDENTIALS_STATIC ? " first, then the rest of the default chain if it fails" : "");
	mosquitto_log_printf(MOSQ_LOG_INFO, PLUGIN_NAME ": request_auth %s, reply_encryption %s, existing_devices %s, acl %s, "
			"signature_version %s",
			p->cfg.request_auth == REQUEST_AUTH_SIGN ? "sign" : p->cfg.request_auth == REQUEST_AUTH_IDENTITY ? "identity" : "none",
			p->cfg.reply_encryption == REPLY_ENCRYPTION_ON ? "on" : "off",
			p->cfg.existing_devices == EXISTING_UNACTIVE ? "unactive" : p->cfg.existing_devices == EXISTING_ALWAYS ? "always" : "never",
			p->cfg.acl == ACL_STRICT ? "strict" : "defer", p->cfg.signature_version == SIGNATURE_V1 ? "v1" : "v3");
	if(p->cfg.request_auth == REQUEST_AUTH_SIGN && p->cfg.reply_encryption == REPLY_ENCRYPTION_OFF){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": reply_encryption off: DeviceSecrets travel in the clear; "
				"use it only where every device connects over TLS");
	}
	if(p->cfg.operator_username){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": operator '%s' may read $SYS/broker/bootstrap/: make sure the broker "
				"authenticates that username (a password_file or an auth plugin), or anyone may claim it", p->cfg.operator_username);
	}
	if(p->cfg.request_auth == REQUEST_AUTH_IDENTITY){
		/* the plugin cannot see listeners (2.0): say what it trusts, and what that asks of them */
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": request_auth identity: a request is served only over a connection "
				"whose client certificate the broker verified (a listener with require_certificate true), for the deviceId in "
				"its %s; every other request, whatever its username, is refused unauthorized. Every CA in the cafile/capath "
				"of such a listener can name devices: trust only your device CA there", identity__field_name(p->cfg.identity_field));
	}
	if(p->cfg.request_auth == REQUEST_AUTH_NONE){
		mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": request_auth none: any client that can publish on '%s' "
				"can register devices and trigger platform calls", p->cfg.request_topic);
	}
	return MOSQ_ERR_SUCCESS;
}

PLUGIN_EXPORT int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count)
{
	struct bootstrap_plugin *p = userdata;
	struct jobs_stats st;

	(void)opts;
	(void)opt_count;
	if(!p) return MOSQ_ERR_SUCCESS;
	bootstrap__unregister(p);
	/* every request still open leaves its audit line, even one the platform has answered */
	jobs__abandon(p->jobs, bootstrap__audit_shutdown, p);
	for(struct job_result *r = p->held_head; r; r = r->next) bootstrap__audit_shutdown(r, p);
	jobs__stats(p->jobs, &st);
	{
		size_t held = 0;
		for(struct job_result *r = p->held_head; r; r = r->next) held++;
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": shutting down with %zu requests unanswered; "
				"%llu platform calls, %llu retries, %llu throttled answers",
				jobs__outstanding(p->jobs) + held, st.calls, st.retries, st.throttled);
	}
	bootstrap__free(p);
	return MOSQ_ERR_SUCCESS;
}

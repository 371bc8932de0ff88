/* mosquitto_bootstrap, broker thread: what comes in (MOSQ_EVT_MESSAGE, MOSQ_EVT_ACL_CHECK).
 *
 * A request on the request topic (JSON), or on it plus /cbor (CBOR, answered in CBOR: the
 * route carries the format to every reply), is routed (its MQTT 5 Response Topic), parsed,
 * matched to a product, authorised (sign, identity or none; then the replay cache and the
 * allowlist) and handed to the worker (jobs__submit). Every refusal leaves by
 * bootstrap__refuse, which answers, audits and limits it. Every check is cheap and nothing
 * here waits on I/O: Redis is told of refusals and replays, and its answers come back at a
 * tick (delivery.c).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "bootstrap_broker.h"
#include "bootstrap_clock.h"
#include "bootstrap_identity.h"
#include "bootstrap_products.h"
#include "bootstrap_quota.h"
#include "bootstrap_seal.h"

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

/* An error answered at once, without a platform flow. product_key: the product the reply is
 * counted under (NULL: one this broker does not serve). */
static void bootstrap__send_error(struct bootstrap_plugin *p, const char *client_id, const struct reply_route *route,
		const char *product_key, enum bootstrap_code code, const char *message, int retry_after)
{
	size_t len = 0;
	char *payload = route && route->cbor ? reply__error_cbor(code, message, retry_after, &len)
			: reply__error(code, message, retry_after, &len);

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
		const struct reply_route *route, const char *product_key, const char *device_id, enum bootstrap_reason reason)
{
	struct audit_entry e = { .time = time(NULL), .client = requester, .address = address, .product_key = product_key,
		.device_id = device_id && device_id[0] ? device_id : NULL, .format = route__format(route), .reason = reason };

	if(!p->audit) return;
	audit__record(p->audit, &e);
}

/* The refusals left unanswered under the limit since the last such line: one summary line, at
 * most every 5 s (and at shutdown): a flood costs the disk at most 17 280 lines a day. */
#define AUDIT_UNANSWERED_EVERY_S 5
void bootstrap__audit_unanswered(struct bootstrap_plugin *p, time_t now, bool flush)
{
	struct audit_entry e = { .time = now, .reason = REASON_REFUSALS_UNANSWERED };

	if(!p->audit_unanswered || (!flush && now - p->audit_unanswered_s < AUDIT_UNANSWERED_EVERY_S)) return;
	e.unanswered = p->audit_unanswered;
	if(p->audit) audit__record(p->audit, &e);
	p->audit_unanswered = 0;
	p->audit_unanswered_s = now;
}

/* A request whose flow was taken over by a later one for the same device: that one gets the
 * reply, this one its audit line. */
void bootstrap__audit_superseded(struct bootstrap_plugin *p, const struct reply_route *old, const char *product_key,
		const char *device_id)
{
	struct audit_entry e = { .time = time(NULL), .client = old->requester, .address = old->address,
		.product_key = product_key, .device_id = device_id, .format = route__format(old), .reason = REASON_SUPERSEDED, .duration_ms = (long)(clock__ms() - old->received_ms) };

	if(p->audit) audit__record(p->audit, &e);
	/* a Link SDK connection waiting for it is told and closed, whatever took its place */
	if(old->dynreg) dynreg__superseded(p, old);
}

/* One refusal counted in Redis against key (an address, or a client id); the answer comes
 * back at a tick (bootstrap__shared_results, delivery.c). Never waits. */
void bootstrap__share_refusal(struct bootstrap_plugin *p, const char *key, bool by_address)
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
 * operator alone, says when it does not; the requester is told only why. reason gives the code
 * (bootstrap_reason.h), and the audit line keeps it even when the answer is rate_limited. */
void bootstrap__refuse(struct bootstrap_plugin *p, const char *requester, const char *address,
		const struct reply_route *route, const char *product_key, bool known, const char *device_id,
		enum bootstrap_reason reason, const char *why, time_t now)
{
	enum bootstrap_code code = (enum bootstrap_code)reason__code(reason);
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
		/* a flood's: counted in one audit line every 5 s at most (bootstrap__audit_unanswered),
		 * so that it cannot fill the disk at the rate it can send */
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
	/* answered rate_limited in its stead: the line says so (the log line above named the cause) */
	bootstrap__audit_now(p, requester, address, route, product_key, device_id,
			code == BOOTSTRAP_RATE_LIMITED ? REASON_REFUSAL_LIMIT : reason);
}

/* A request that joined a flow under way: the worker checked the first request's random in
 * Redis, this one's is recorded here, and the reply is held until the answer comes (delivery.c,
 * bootstrap__on_tick). Redis down: this broker's replay cache, which passed it, decides alone. */
void bootstrap__share_replay(struct bootstrap_plugin *p, const char *product_key, const char *device_id, const char *random)
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
	if(shared__submit(p->shared, op)) return;
	route->shared_check = seq;
}

/* Does this broker serve product_key? *secret gets its ProductSecret (NULL without sign). The
 * bootstrap topic's and Link SDK CONNECTs' (dynreg.c) one answer. */
bool bootstrap__product(struct bootstrap_plugin *p, const char *product_key, const char **secret)
{
	const struct product *prod;

	*secret = NULL;
	if(p->cfg.products){
		if(!(prod = products__find(p->cfg.products, product_key))) return false;
		*secret = prod->secret;
		return true;
	}
	if(!p->cfg.product_key || strcmp(product_key, p->cfg.product_key)) return false;
	*secret = p->cfg.product_secret;
	return true;
}

/* Signs made for a product this broker does not serve are checked against this, and refused
 * whatever comes out: the work (one HMAC) is the same as for a served product's wrong sign. */
const char bootstrap__unserved_product_secret[] = "mosquitto-bootstrap: not a product of this broker";

/* Does this request prove it may bootstrap its deviceId of product_key (known: served here,
 * with its secret when request_auth is sign)? Sets *why and *reason when it does not. */
static bool bootstrap__authorized(struct bootstrap_plugin *p, struct mosquitto *client,
		const struct bootstrap_request *req, const char *product_key, bool known, const char *secret,
		time_t now, const char **why, enum bootstrap_reason *reason)
{
	const char *client_id;
	char identity[DEVICE_NAME_MAX + 1];
	enum identity_result proven;
	X509 *cert;

	switch(p->cfg.request_auth){
		case REQUEST_AUTH_NONE:
			if(!known){
				*why = "this broker does not serve that product";
				*reason = REASON_PRODUCT_NOT_SERVED;
			}
			return known;
		case REQUEST_AUTH_IDENTITY:
			if(!known){
				*why = "this broker does not serve that product";
				*reason = REASON_PRODUCT_NOT_SERVED;
				return false;
			}
			/* only the certificate the broker verified proves a name: a username may be
			 * anybody's claim (allow_anonymous true takes any, with no password) */
			cert = mosquitto_client_certificate(client);
			proven = identity__from_certificate(cert, p->cfg.identity_field, identity);
			X509_free(cert);
			if(proven != IDENTITY_OK || strcmp(identity, req->device_id)){
				*why = identity__refusal(proven, p->cfg.identity_field);
				*reason = proven == IDENTITY_OK ? REASON_CERTIFICATE_NAME_MISMATCH
						: proven == IDENTITY_NO_CERTIFICATE ? REASON_NO_CLIENT_CERTIFICATE : REASON_CERTIFICATE_NAME_UNUSABLE;
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
				*reason = REASON_UNSIGNED;
				return false;
			}
			if(!known){
				/* refused as a wrong sign is, at the same point, after the same work: who holds no
				 * product's secret learns nothing of which products this broker serves */
				(void)auth__sign_valid(req->sign_method, bootstrap__unserved_product_secret, product_key,
						req->device_id, req->random, req->sign);
				*why = "the signature does not match";
				*reason = REASON_PRODUCT_NOT_SERVED; /* the operator's to know; the device reads a wrong sign */
				return false;
			}
			/* the sign covers productKey: made with another product's secret, it never matches */
			if(!auth__sign_valid(req->sign_method, secret, product_key, req->device_id, req->random, req->sign)){
				*why = "the signature does not match";
				*reason = REASON_SIGN_MISMATCH;
				return false;
			}
			break;
	}
	/* the reply is bound to the requesting connection: it must be the device's own */
	client_id = mosquitto_client_id(client);
	if(!client_id || strcmp(client_id, req->device_id)){
		*why = "the request must come from the device itself: connect with the deviceId as client id";
		*reason = REASON_CLIENT_ID_MISMATCH;
		return false;
	}
	/* only a valid signature is remembered: nobody can fill the cache without the secret */
	if(p->cfg.request_auth == REQUEST_AUTH_SIGN && replay__check_and_add(p->replay, product_key, req->device_id, req->random, now)){
		*why = "this random was already used for this deviceId; use a new one for every request";
		*reason = REASON_RANDOM_REPLAYED;
		return false;
	}
	return true;
}

/* The MQTT 5 Response Topic and Correlation Data of a request, validated. False (with *why
 * and *reason) when the request carries ones that cannot be used. */
static bool bootstrap__route(struct bootstrap_plugin *p, const mosquitto_property *props,
		struct reply_route *route, const char **why, enum bootstrap_reason *reason)
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
		*reason = REASON_RESPONSE_TOPIC_REFUSED;
	}else if(datalen > CORRELATION_DATA_MAX){
		*why = "correlation data longer than 256 bytes";
		*reason = REASON_CORRELATION_DATA_TOO_LONG;
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

/* Is topic the request topic (JSON), or it plus /cbor (*cbor set)? */
static bool bootstrap__request_topic(const struct bootstrap_plugin *p, const char *topic, bool *cbor)
{
	size_t n = strlen(p->cfg.request_topic);

	if(!topic || strncmp(topic, p->cfg.request_topic, n)) return false;
	*cbor = topic[n] != '\0';
	return topic[n] == '\0' || !strcmp(topic + n, REQUEST_CBOR_SUFFIX);
}

/* Every client PUBLISH: one on the request topic (or its /cbor) is answered (now, if refused
 * or the queue is full) or submitted; any other passes untouched. Always SUCCESS: an error
 * would disconnect the client, and a refusal is answered, not dropped. */
int bootstrap__on_message(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_message *ed = event_data;
	struct bootstrap_plugin *p = userdata;
	struct bootstrap_request req;
	struct reply_route route;
	enum bootstrap_reason reason = REASON_NONE;
	const char *why = NULL, *requester, *address, *product_key = NULL, *secret = NULL;
	enum request_status status;
	char buf[SHOWN_LEN];
	time_t now = time(NULL);
	int retry_after;
	bool known = false, cbor = false;

	(void)event;
	if(!bootstrap__request_topic(p, ed->topic, &cbor)) return MOSQ_ERR_SUCCESS;
	ed->retain = false; /* a request is never kept for later subscribers */
	bootstrap__check_ticking(p, now);
	metrics__request(&p->metrics);
	if(cbor) p->metrics.requests_cbor++;
	requester = mosquitto_client_id(ed->client);
	address = mosquitto_client_address(ed->client);
	memset(&req, 0, sizeof(req));

	/* every check is cheap (1 KiB of JSON, one HMAC): a valid request is always looked at,
	 * whatever its neighbours sent; only refusals are limited, in bootstrap__refuse */
	if(!bootstrap__route(p, ed->properties, &route, &why, &reason)){
		/* answered on the requester's own reply topic: its Response Topic is what is wrong */
		route.cbor = cbor;
		goto refuse;
	}
	/* every answer from here on, refusal or triple, in the request's format */
	route.cbor = cbor;
	if(cbor){
		/* always a map: no bare-text form, and the same members and checks as JSON's */
		status = request__parse_cbor(ed->payload, (size_t)ed->payloadlen, &req, &why, &reason);
	}else{
		/* with sign the request is JSON (it carries the sign); otherwise bare text may be a deviceId */
		status = request__parse_as(ed->payload, ed->payloadlen, p->cfg.request_auth == REQUEST_AUTH_SIGN, &req, &why, &reason);
	}
	if(status != REQUEST_OK) goto refuse;
	/* the product it names, as Alibaba's own registration request does, else the default */
	product_key = req.product_key[0] ? req.product_key : p->cfg.product_key;
	if(!product_key){
		why = "productKey is required: this broker serves several products";
		reason = REASON_PRODUCT_KEY_REQUIRED;
		goto refuse;
	}
	known = bootstrap__product(p, product_key, &secret);
	if(!bootstrap__authorized(p, ed->client, &req, product_key, known, secret, now, &why, &reason)) goto refuse;
	/* only after the proof: who cannot sign for a deviceId learns nothing of the list */
	if(p->allowlist && !allowlist__allows(p->allowlist, req.device_id)){
		reason = REASON_NOT_ON_ALLOWLIST;
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
			bootstrap__audit_now(p, requester, address, &route, product_key, req.device_id, REASON_SEAL_KEY_FAILED);
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
			bootstrap__audit_now(p, requester, address, &route, product_key, req.device_id, REASON_QUEUE_FULL);
			break;
		case JOBS_ERROR:
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": device %s: out of memory (product %s)", req.device_id, product_key);
			bootstrap__send_error(p, req.device_id, &route, product_key, BOOTSTRAP_INTERNAL, "internal error", 0);
			bootstrap__audit_now(p, requester, address, &route, product_key, req.device_id, REASON_OUT_OF_MEMORY);
			break;
	}
	goto done;

refuse:
	bootstrap__refuse(p, requester, address, &route, product_key, known, req.device_id, reason, why, now);
done:
	OPENSSL_cleanse(&req, sizeof(req));
	jobs__route_free(&route); /* empty when the job took it over */
	return MOSQ_ERR_SUCCESS;
}

/* Who may publish requests, read replies and $SYS/broker/bootstrap/ (auth__acl_decide, by
 * plugin_opt_acl). Subscriptions below a client's own reply topic are allowed a few an hour:
 * each costs the broker memory. */
int bootstrap__on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	struct bootstrap_plugin *p = userdata;
	const char *username = mosquitto_client_username(ed->client);
	bool operator = p->cfg.operator_username && username && !strcmp(username, p->cfg.operator_username);
	const struct acl_topics topics = { p->cfg.request_topic, p->cfg.reply_topic, p->cfg.response_topic_prefix };
	time_t blocked_for;

	(void)event;
	if(dynreg__holds(p, ed->client)){
		/* a Link SDK connection may only wait for its answer, whatever acl and other plugins say */
		return ed->access == MOSQ_ACL_SUBSCRIBE && dynreg__may_subscribe(p, ed->client, ed->topic) ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
	}
	if(dynreg__topic(p, ed->topic)) return MOSQ_ERR_ACL_DENIED; /* the plugin's answers alone (dynreg.c) */

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

/* The tables intake keeps: replays, refusals and subscriptions, bounded. 0, or -1 when out of
 * memory (intake__cleanup frees what was made). */
int intake__init(struct bootstrap_plugin *p)
{
	p->replay = replay__new(REPLAY_MAX_ENTRIES, REPLAY_WINDOW_S);
	p->refusals_by_address = limiter__new(REFUSALS_PER_ADDRESS_MAX, REFUSALS_WINDOW_S, REFUSALS_BLOCK_S, REFUSALS_MAX_KEYS);
	p->refusals_by_client = limiter__new(REFUSALS_PER_CLIENT_MAX, REFUSALS_WINDOW_S, REFUSALS_BLOCK_S, REFUSALS_MAX_KEYS);
	p->subscriptions_below = limiter__new(SUBSCRIPTIONS_PER_CLIENT_MAX, SUBSCRIPTIONS_WINDOW_S, SUBSCRIPTIONS_WINDOW_S,
			SUBSCRIPTIONS_MAX_KEYS);
	if(!p->replay || !p->refusals_by_address || !p->refusals_by_client || !p->subscriptions_below) return -1;
	return 0;
}

void intake__cleanup(struct bootstrap_plugin *p)
{
	replay__free(p->replay);
	limiter__free(p->refusals_by_address);
	limiter__free(p->refusals_by_client);
	limiter__free(p->subscriptions_below);
	p->replay = NULL;
	p->refusals_by_address = p->refusals_by_client = p->subscriptions_below = NULL;
}

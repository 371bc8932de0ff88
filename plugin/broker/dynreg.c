/* mosquitto_bootstrap, broker thread: Link SDK MQTT dynamic registration (docs/link-sdk.md).
 *
 * MOSQ_EVT_BASIC_AUTH: a CONNECT whose client id is a dynreg one is checked (TLS listener,
 * common/dynreg.c's strict parse, product, sign, takeover, replay cache, allowlist) and either
 * refused at CONNACK (counted, logged and audited like a refused bootstrap request) or accepted
 * and submitted as the same job a bootstrap request makes; any other CONNECT is passed on.
 * The answer comes back through delivery.c, which hands a dynreg job's result here: it is
 * published in the clear on /ext/register to that connection alone, and the connection is
 * closed shortly after. A connection still waiting when its window ends gets a busy error and
 * is closed; its job goes on, so that the device's retry is answered by a lookup.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <mosquitto.h>

#include "bootstrap_broker.h"
#include "bootstrap_clock.h"
#include "bootstrap_dynreg.h"
#include "bootstrap_list.h"
#include "bootstrap_probe.h"
#include "bootstrap_products.h"
#include "bootstrap_quota.h"
#include "bootstrap_table.h"

/* After the answer's PUBLISH the connection is closed this much later (the SDK closes it
 * itself once it has read the answer); after an error's, sooner. Both are past the next
 * loop iteration, which writes the PUBLISH out (queue_plugin_msgs, src/loop.c). */
#define DYNREG_LINGER_OK_MS 500
#define DYNREG_LINGER_ERROR_MS 200
/* Connections waiting beyond the jobs' own bound (an error still to send, an answer to close
 * after): past it, a dynreg CONNECT is answered busy at CONNACK. */
#define DYNREG_EXTRA_PENDING 1024
/* Mosquitto 2.0's struct mosquitto starts with "int ident" on epoll builds ("This *must* be
 * the first element in the struct", lib/mosquitto_internal.h), id_client for a client
 * (src/mosquitto_broker_internal.h), and then the socket. */
#define MOSQ20_ID_CLIENT 2

/* Each state is a FIFO in the order its entries fall due (the window and the lingers are
 * constants, the clock monotonic): a tick looks at the heads alone. */
enum pending_state {
	PENDING_WAITING,       /* the job is on its way, until deadline_ms */
	PENDING_ERROR,         /* an error to publish at the next tick (busy at once, superseded, late) */
	PENDING_CLOSING_OK,    /* the answer published: close the connection at close_at_ms */
	PENDING_CLOSING_ERROR, /* an error published: likewise, sooner */
	PENDING_STATES
};

/* A dynreg connection accepted and not yet closed, by client id. */
struct pending {
	UT_hash_handle hh;
	struct pending *prev, *next; /* its state's queue */
	char *client_id;
	const void *connection; /* compared, never dereferenced */
	char device_name[DEVICE_NAME_MAX + 1];
	char product_key[PRODUCT_KEY_MAX + 1];
	enum pending_state state;
	int64_t deadline_ms;    /* the window's end */
	int64_t close_at_ms;
	enum bootstrap_code error;
	const char *error_message;
	int retry_after;
};

struct dynreg {
	struct pending *by_id;
	struct pending *queue[PENDING_STATES];
	size_t count, max;
	int (*client_port)(const struct mosquitto *client); /* 2.1's mosquitto_client_port, or NULL */
	struct probe *probe;     /* do the named ports answer TLS (probe/tls_probe.c) */
	bool probe_failed_logged;
	/* $SYS/broker/bootstrap/dynreg/ */
	unsigned long long connects, accepted, refused, answered, errors, window_expired, dropped;
};

struct dynreg *dynreg__new(const struct bootstrap_config *cfg)
{
	struct dynreg *d = calloc(1, sizeof(*d));

	if(!d) return NULL;
	d->max = (size_t)cfg->max_queue + (size_t)cfg->max_inflight + DYNREG_EXTRA_PENDING;
	if(!(d->probe = probe__new(cfg->dynreg_ports, cfg->dynreg_port_count))){
		free(d);
		return NULL;
	}
	/* 2.1 says which listener's port a client came in on; 2.0 does not (dynreg__port) */
	*(void **)&d->client_port = dlsym(RTLD_DEFAULT, "mosquitto_client_port");
	return d;
}

void dynreg__free(struct dynreg *d)
{
	struct pending *e, *tmp;

	if(!d) return;
	probe__free(d->probe);
	HASH_ITER(hh, d->by_id, e, tmp){
		HASH_DEL(d->by_id, e);
		free(e->client_id);
		free(e);
	}
	free(d);
}

const char *dynreg__port_source(const struct dynreg *d)
{
	return d->client_port ? "mosquitto_client_port()" : "the local port of the client's socket (Mosquitto 2.0)";
}

/* ---- which listener ---- */

/* fd is a connected TCP socket whose peer is address (as Mosquitto wrote it: inet_ntop of
 * getpeername, net__socket_get_address in src/net.c); its local port, and its local address in
 * *local, else 0. */
static int dynreg__socket_local(int fd, const char *address, struct sockaddr_storage *local)
{
	struct sockaddr_storage peer;
	socklen_t plen = sizeof(peer), llen = sizeof(*local), tlen;
	char text[INET6_ADDRSTRLEN];
	int type = 0;

	tlen = sizeof(type);
	if(fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) || type != SOCK_STREAM) return 0;
	if(getpeername(fd, (struct sockaddr *)&peer, &plen) || getsockname(fd, (struct sockaddr *)local, &llen)) return 0;
	if(peer.ss_family == AF_INET && local->ss_family == AF_INET){
		if(!inet_ntop(AF_INET, &((struct sockaddr_in *)&peer)->sin_addr, text, sizeof(text)) || strcmp(text, address)) return 0;
		return ntohs(((struct sockaddr_in *)local)->sin_port);
	}
	if(peer.ss_family == AF_INET6 && local->ss_family == AF_INET6){
		if(!inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&peer)->sin6_addr, text, sizeof(text)) || strcmp(text, address)) return 0;
		return ntohs(((struct sockaddr_in6 *)local)->sin6_port);
	}
	return 0;
}

/* Where the client came in: its socket's local address and port (*have_local) where the
 * socket can be found and proves to be this client's; else the port alone (2.1's
 * mosquitto_client_port); 0 when it cannot be told. */
static int dynreg__where(struct dynreg *d, struct mosquitto *client, struct sockaddr_storage *local, bool *have_local)
{
	const int *head = (const int *)(const void *)client;
	const char *address = mosquitto_client_address(client);
	int port = 0, told = d->client_port ? d->client_port(client) : 0;

	*have_local = false;
	if(address){
		/* 2.0: the socket, where the broker keeps it (after the epoll ident, or first) */
		if(head[0] == MOSQ20_ID_CLIENT) port = dynreg__socket_local(head[1], address, local);
		if(port <= 0) port = dynreg__socket_local(head[0], address, local);
		/* with 2.1's own answer, the socket found must agree with it */
		if(port > 0 && (!told || told == port)){
			*have_local = true;
			return port;
		}
	}
	return told > 0 ? told : 0;
}

/* Why the client's listener may not carry a DeviceSecret, or NULL when it may. Two listeners
 * may share a port number on different addresses: the client's own local address decides when
 * it is known; with the port alone, the port must be TLS on every address. */
static const char *dynreg__listener_refusal(struct bootstrap_plugin *p, struct mosquitto *client)
{
	struct sockaddr_storage local;
	bool have_local, named = false;
	int port = dynreg__where(p->dynreg, client, &local, &have_local);
	enum probe_verdict v;

	if(port <= 0){
		if(!p->dynreg->probe_failed_logged){
			mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": dynreg: cannot tell which listener a client came in on "
					"(websockets, a unix socket, or a broker build this plugin does not know): its dynreg CONNECT is refused");
			p->dynreg->probe_failed_logged = true;
		}
		return "the plugin cannot tell which listener this connection came in on";
	}
	for(int i = 0; i < p->cfg.dynreg_port_count; i++) named = named || p->cfg.dynreg_ports[i] == port;
	if(!named) return "not over a TLS listener named in plugin_opt_dynreg_tls_ports: the DeviceSecret would travel in the clear";
	v = have_local ? probe__verdict_at(p->dynreg->probe, (const struct sockaddr *)&local) : probe__verdict(p->dynreg->probe, port);
	switch(v){
		case PROBE_TLS:
		case PROBE_UNCHECKED:
			return NULL;
		case PROBE_PENDING:
			return "the plugin has not yet checked that this listener answers TLS (a moment after start-up)";
		case PROBE_PLAIN:
			return "this port, named in plugin_opt_dynreg_tls_ports, answers in the clear here: the DeviceSecret would travel in the clear";
		case PROBE_NONE:
			break;
	}
	return "the plugin did not check that the address this connection came in on answers TLS (not one of this host's "
			"addresses at start-up)";
}

/* ---- refusals ---- */

/* The key a client id's refusals are counted under: itself when the limiter takes it (as a
 * bootstrap requester's), else a digest of it (the SDK's client ids are longer), the same on
 * every broker. */
static const char *dynreg__limiter_key(const char *client_id, char out[LIMITER_KEY_MAX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int n;

	if(!client_id || strlen(client_id) <= LIMITER_KEY_MAX) return client_id;
	if(!EVP_Digest(client_id, strlen(client_id), md, &mdlen, EVP_sha256(), NULL) || mdlen < 12) return NULL;
	n = snprintf(out, LIMITER_KEY_MAX + 1, "dynreg-");
	for(int i = 0; i < 12; i++) n += snprintf(out + n, (size_t)(LIMITER_KEY_MAX + 1 - n), "%02x", md[i]);
	return out;
}

/* A dynreg CONNECT refused at CONNACK: counted against its address and client id like a
 * refused bootstrap request, logged and audited unless over the limit (then summed up). */
static int dynreg__refuse(struct bootstrap_plugin *p, const char *client_id, const char *address,
		const char *product_key, const char *device_name, enum bootstrap_reason reason, const char *why, time_t now)
{
	enum bootstrap_code code = (enum bootstrap_code)reason__code(reason);
	time_t by_address = 0, by_client = 0;
	enum limiter_verdict va, vc;
	char buf[SHOWN_LEN], keybuf[LIMITER_KEY_MAX + 1];
	const char *key = dynreg__limiter_key(client_id, keybuf);
	struct audit_entry e = { .time = now, .client = client_id, .address = address, .product_key = product_key,
		.device_id = device_name && device_name[0] ? device_name : NULL, .reason = reason };

	p->dynreg->refused++;
	va = limiter__refuse(p->refusals_by_address, address, now, &by_address);
	vc = limiter__refuse(p->refusals_by_client, key, now, &by_client);
	if(p->shared && va != LIMIT_SILENT) bootstrap__share_refusal(p, address, true);
	if(p->shared && key && vc != LIMIT_SILENT) bootstrap__share_refusal(p, key, false);
	if(va == LIMIT_SILENT || vc == LIMIT_SILENT){
		p->metrics.dropped_rate_limited++;
		p->audit_unanswered++;
		return MOSQ_ERR_AUTH;
	}
	if(va == LIMIT_BLOCKED_NOW || vc == LIMIT_BLOCKED_NOW){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": dynreg CONNECT from client '%s' (%s) refused: %s (%s); "
				"too many refused requests %s: its further refusals are not logged for %ld s",
				shown(client_id, buf, sizeof(buf)), address ? address : "?", reply__code_name(code), why,
				va == LIMIT_BLOCKED_NOW ? "from this address" : "under this client id", (long)(by_address > by_client ? by_address : by_client));
		code = BOOTSTRAP_RATE_LIMITED;
		e.reason = REASON_REFUSAL_LIMIT;
	}else{
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": dynreg CONNECT%s%s from client '%s' (%s) refused at CONNACK: %s (%s)",
				device_name && device_name[0] ? " for device " : "", device_name ? device_name : "",
				shown(client_id, buf, sizeof(buf)), address ? address : "?", reply__code_name(code), why);
	}
	metrics__reply(&p->metrics, NULL, code, -1);
	if(p->audit) audit__record(p->audit, &e);
	return MOSQ_ERR_AUTH;
}

/* ---- the pending connections ---- */

static struct pending *dynreg__find(struct dynreg *d, const char *client_id)
{
	struct pending *e = NULL;

	if(client_id) HASH_FIND_STR(d->by_id, client_id, e);
	return e;
}

static void dynreg__move(struct dynreg *d, struct pending *e, enum pending_state to)
{
	DL_DELETE(d->queue[e->state], e);
	e->state = to;
	DL_APPEND(d->queue[to], e);
}

/* Out of the table and its queue; the caller frees it. */
static void dynreg__unlink(struct dynreg *d, struct pending *e)
{
	DL_DELETE(d->queue[e->state], e);
	HASH_DEL(d->by_id, e);
	d->count--;
}

static void dynreg__remove(struct dynreg *d, struct pending *e)
{
	dynreg__unlink(d, e);
	free(e->client_id);
	free(e);
}

static struct pending *dynreg__add(struct dynreg *d, const char *client_id, const void *connection,
		const struct dynreg_connect *c, int64_t now_ms, long window_ms)
{
	struct pending *e;
	bool added;

	if(d->count >= d->max || !(e = calloc(1, sizeof(*e)))) return NULL;
	if(!(e->client_id = strdup(client_id))){
		free(e);
		return NULL;
	}
	e->connection = connection;
	memcpy(e->device_name, c->device_name, sizeof(e->device_name));
	memcpy(e->product_key, c->product_key, sizeof(e->product_key));
	e->deadline_ms = now_ms + window_ms;
	TABLE_ADD_STR(d->by_id, client_id, e, added);
	if(!added){
		free(e->client_id);
		free(e);
		return NULL;
	}
	DL_APPEND(d->queue[PENDING_WAITING], e);
	d->count++;
	return e;
}

/* An error to publish at the next tick (the CONNACK goes out first), then the close. */
static void dynreg__fail_later(struct dynreg *d, struct pending *e, enum bootstrap_code code, const char *message, int retry_after)
{
	dynreg__move(d, e, PENDING_ERROR);
	e->error = code;
	e->error_message = message;
	e->retry_after = retry_after;
}

/* Publishes payload on /ext/register to the pending connection alone. */
static void dynreg__publish(struct dynreg *d, struct pending *e, const char *payload, size_t len, int64_t now_ms, bool ok)
{
	char buf[SHOWN_LEN];

	/* to this client id alone, whatever it subscribed to (it subscribes to nothing), QoS 0:
	 * never kept for a later session */
	if(mosquitto_broker_publish_copy(e->client_id, DYNREG_TOPIC, (int)len, payload, 0, false, NULL) != MOSQ_ERR_SUCCESS){
		mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": dynreg: could not queue the answer for client '%s'",
				shown(e->client_id, buf, sizeof(buf)));
	}
	dynreg__move(d, e, ok ? PENDING_CLOSING_OK : PENDING_CLOSING_ERROR);
	e->close_at_ms = now_ms + (ok ? DYNREG_LINGER_OK_MS : DYNREG_LINGER_ERROR_MS);
}

static void dynreg__publish_error(struct bootstrap_plugin *p, struct pending *e, enum bootstrap_code code,
		const char *message, int retry_after, int64_t now_ms)
{
	size_t len = 0;
	char *payload = reply__error(code, message, retry_after, &len);

	p->dynreg->errors++;
	if(payload){
		dynreg__publish(p->dynreg, e, payload, len, now_ms, false);
		reply__free(payload, len);
		return;
	}
	dynreg__move(p->dynreg, e, PENDING_CLOSING_ERROR);
	e->close_at_ms = now_ms;
}

/* ---- MOSQ_EVT_BASIC_AUTH ---- */

/* The accepted CONNECT's job; on a full queue or out of memory the device gets an error
 * after its CONNACK. */
static void dynreg__submit(struct bootstrap_plugin *p, struct pending *e, const char *client_id, const char *address,
		const struct dynreg_connect *c)
{
	struct reply_route route;
	struct audit_entry a = { .time = time(NULL), .client = client_id, .address = address, .product_key = c->product_key,
		.device_id = c->device_name };
	int retry_after;

	memset(&route, 0, sizeof(route));
	route.dynreg = true;
	route.connection = e->connection;
	route.requester = strdup(client_id); /* where the answer goes, and the audit trail's name */
	route.address = address ? strdup(address) : NULL;
	route.received_ms = clock__ms();
	if(!route.requester){
		dynreg__fail_later(p->dynreg, e, BOOTSTRAP_INTERNAL, "internal error", 0);
		a.reason = REASON_OUT_OF_MEMORY;
		if(p->audit) audit__record(p->audit, &a);
		jobs__route_free(&route);
		return;
	}
	switch(jobs__submit(p->jobs, c->product_key, c->device_name, c->random, &route)){
		case JOBS_QUEUED:
			mosquitto_log_printf(MOSQ_LOG_DEBUG, PLUGIN_NAME ": device %s: queued (product %s, Link SDK dynamic registration)",
					c->device_name, c->product_key);
			break;
		case JOBS_JOINED:
			/* the earlier request gets no answer of its own (bootstrap__audit_superseded) */
			bootstrap__audit_superseded(p, &route, c->product_key, c->device_name);
			if(p->shared) bootstrap__share_replay(p, c->product_key, c->device_name, c->random);
			break;
		case JOBS_FULL:
			retry_after = 1 + (int)((double)jobs__outstanding(p->jobs) / (p->cfg.qps[ACTION_REGISTER] * QUOTA_PACING));
			mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": device %s: busy, queue full (product %s, Link SDK dynamic registration)",
					c->device_name, c->product_key);
			dynreg__fail_later(p->dynreg, e, BOOTSTRAP_BUSY, "too many bootstrap requests waiting; try again later", retry_after);
			a.reason = REASON_QUEUE_FULL;
			metrics__reply(&p->metrics, c->product_key, BOOTSTRAP_BUSY, -1);
			if(p->audit) audit__record(p->audit, &a);
			break;
		case JOBS_ERROR:
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": device %s: out of memory (product %s)", c->device_name, c->product_key);
			dynreg__fail_later(p->dynreg, e, BOOTSTRAP_INTERNAL, "internal error", 0);
			a.reason = REASON_OUT_OF_MEMORY;
			metrics__reply(&p->metrics, c->product_key, BOOTSTRAP_INTERNAL, -1);
			if(p->audit) audit__record(p->audit, &a);
			break;
	}
	jobs__route_free(&route); /* empty when the job took it over */
}

int dynreg__on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	struct bootstrap_plugin *p = userdata;
	const char *client_id = mosquitto_client_id(ed->client), *address = mosquitto_client_address(ed->client);
	const char *why = NULL, *secret = NULL;
	enum bootstrap_reason reason = REASON_SIGN_MISMATCH;
	enum dynreg_kind kind = dynreg__kind(client_id);
	struct dynreg_connect c;
	struct pending *e;
	time_t now = time(NULL);
	bool known;
	int rc;

	(void)event;
	if(kind == DYNREG_NOT) return MOSQ_ERR_PLUGIN_DEFER; /* someone else's: untouched */
	p->dynreg->connects++;
	metrics__request(&p->metrics);
	memset(&c, 0, sizeof(c));
	if(kind == DYNREG_REGNWL){
		return dynreg__refuse(p, client_id, address, NULL, NULL, REASON_DYNREG_REGNWL,
				"authType=regnwl (no pre-registration) is not served: no OpenAPI gives the deviceToken it answers with; "
				"use authType=register, which registers new devices too", now);
	}
	/* before anything else: the answer would travel in the clear */
	if((why = dynreg__listener_refusal(p, ed->client))){
		return dynreg__refuse(p, client_id, address, NULL, NULL, REASON_DYNREG_NOT_TLS, why, now);
	}
	if(dynreg__parse(client_id, ed->username, ed->password, &c, &why)){
		return dynreg__refuse(p, client_id, address, NULL, NULL, REASON_DYNREG_MALFORMED, why, now);
	}
	if(mosquitto_client_protocol_version(ed->client) != 4){
		/* the SDK speaks 3.1.1 alone; a v5 session expiry or a 3.1 client is someone else */
		why = "the CONNECT must be MQTT 3.1.1, as the Link SDK's";
		reason = REASON_DYNREG_MALFORMED;
		goto refuse;
	}
	if(!mosquitto_client_clean_session(ed->client)){
		why = "the CONNECT must ask for a clean session";
		reason = REASON_DYNREG_SESSION_KEPT;
		goto refuse;
	}
	known = bootstrap__product(p, c.product_key, &secret);
	/* an unserved product costs the same HMAC as a wrong sign, and is refused the same way */
	if(!dynreg__sign_valid(&c, known ? secret : bootstrap__unserved_product_secret) || !known){
		why = "the signature does not match";
		if(!known) reason = REASON_PRODUCT_NOT_SERVED; /* for the audit alone: the device is told the same */
		goto refuse;
	}
	e = dynreg__find(p->dynreg, client_id);
	if(e && e->state != PENDING_CLOSING_OK && e->state != PENDING_CLOSING_ERROR){
		why = "a connection with this client id is still waiting for its answer";
		reason = REASON_DYNREG_CLIENT_ID_WAITING;
		goto refuse;
	}
	if(replay__check_and_add(p->replay, c.product_key, c.device_name, c.random, now)){
		why = "this random was already used for this device; use a new one for every request";
		reason = REASON_RANDOM_REPLAYED;
		goto refuse;
	}
	if(p->allowlist && !allowlist__allows(p->allowlist, c.device_name)){
		reason = REASON_NOT_ON_ALLOWLIST;
		why = "this DeviceName is not on the bootstrap broker's device allowlist";
		goto refuse;
	}
	if(e) dynreg__remove(p->dynreg, e); /* answered, closing: this is a new connection */
	if(!(e = dynreg__add(p->dynreg, client_id, ed->client, &c, clock__ms(), p->cfg.dynreg_window_ms))){
		reason = REASON_QUEUE_FULL;
		why = "too many Link SDK registrations waiting";
		goto refuse;
	}
	/* the sign proved the product, not the username it names: the connection is anonymous
	 * from here, so no password_file, acl_file or dynamic-security rights of a user called
	 * <DeviceName>&<ProductKey> come with it (the plugin's ACL allows it nothing but waiting) */
	if(mosquitto_set_username(ed->client, NULL) != MOSQ_ERR_SUCCESS){
		dynreg__remove(p->dynreg, e);
		reason = REASON_OUT_OF_MEMORY;
		why = "out of memory";
		goto refuse;
	}
	p->dynreg->accepted++;
	bootstrap__check_ticking(p, now);
	dynreg__submit(p, e, client_id, address, &c);
	OPENSSL_cleanse(&c, sizeof(c));
	return MOSQ_ERR_SUCCESS;

refuse:
	rc = dynreg__refuse(p, client_id, address, c.product_key, c.device_name, reason, why, now);
	OPENSSL_cleanse(&c, sizeof(c));
	return rc;
}

/* ---- delivery (MOSQ_EVT_TICK, MOSQ_EVT_DISCONNECT) ---- */

void dynreg__deliver(struct bootstrap_plugin *p, struct job_result *r)
{
	static struct platform_flow no_memory = { .state = FLOW_DONE, .result = BOOTSTRAP_INTERNAL, .reason = REASON_OUT_OF_MEMORY,
		.message = "the bootstrap service ran out of memory" };
	const struct platform_flow *flow = r->flow ? r->flow : &no_memory;
	struct pending *e = dynreg__find(p->dynreg, r->route.requester);
	int64_t now = clock__ms(), took_ms = now - r->route.received_ms;
	enum bootstrap_code code = flow->result;
	enum bootstrap_reason reason = flow->reason;
	const char *message = flow->message;
	size_t len = 0;
	char *payload;

	if(r->route.connection_ended || !e || e->connection != r->route.connection || e->state != PENDING_WAITING){
		/* bound delivery: nobody but the connection that asked may have this answer */
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": device %s: %s dropped: the Link SDK connection that asked "
				"ended or was closed before the answer came (product %s)", r->device_id,
				flow->result == BOOTSTRAP_OK ? "triple" : "reply", r->product_key);
		p->metrics.dropped_connection_ended++;
		p->dynreg->dropped++;
		bootstrap__audit_reply(p, r, REASON_CONNECTION_CLOSED, took_ms);
		return;
	}
	if(r->route.replayed){
		/* Redis knew the random (multi-broker mode): a replay found on another broker */
		p->shared_late_replays++;
		code = BOOTSTRAP_UNAUTHORIZED;
		reason = REASON_RANDOM_REPLAYED;
		message = "this random was already used for this device; use a new one for every request";
	}
	if(code == BOOTSTRAP_OK){
		char iot_id[TEXT_ESCAPED_LEN(sizeof(flow->triple.iot_id))];
		if(!(payload = dynreg__reply_success(&flow->triple, &len))){
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": device %s: out of memory building the reply", r->device_id);
			code = BOOTSTRAP_INTERNAL;
			dynreg__publish_error(p, e, code, "internal error", 0, now);
			metrics__reply(&p->metrics, r->product_key, code, (double)took_ms);
			bootstrap__audit_reply(p, r, REASON_OUT_OF_MEMORY, took_ms);
			return;
		}
		dynreg__publish(p->dynreg, e, payload, len, now, true);
		reply__free(payload, len);
		p->dynreg->answered++;
		mosquitto_log_printf(MOSQ_LOG_INFO, PLUGIN_NAME ": device %s: triple sent on " DYNREG_TOPIC " (Link SDK dynamic "
				"registration over TLS; %s device, product %s, IotId %s, by %s)", r->device_id,
				flow->existing ? "existing" : "new", r->product_key,
				text__escape(iot_id, sizeof(iot_id), flow->triple.iot_id), platform_actions[flow->answered_by].name);
	}else{
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": device %s: %s: %s%s%s; product %s (Link SDK dynamic registration: "
				"told on " DYNREG_TOPIC ", connection closed)", r->device_id, reply__code_name(code), message,
				flow->request_id[0] ? "; RequestId " : "", flow->request_id, r->product_key);
		dynreg__publish_error(p, e, code, message, code == BOOTSTRAP_UNAUTHORIZED ? 0 : flow->retry_after, now);
	}
	metrics__reply(&p->metrics, r->product_key, code, (double)took_ms);
	bootstrap__audit_reply(p, r, reason, took_ms);
}

/* Window ends, errors to send, connections to close: each queue's heads, while due. Closing
 * fires MOSQ_EVT_DISCONNECT at once (dynreg__on_disconnect): the entry is gone by then. */
void dynreg__on_tick(struct bootstrap_plugin *p)
{
	struct dynreg *d = p->dynreg;
	struct pending *e;
	int64_t now = clock__ms();
	char buf[SHOWN_LEN];

	if(!d) return;
	probe__on_tick(d->probe);
	if(!d->count) return;
	while((e = d->queue[PENDING_WAITING]) && now >= e->deadline_ms){
		/* the flow goes on; its answer, when it comes, is for the device's retry */
		d->window_expired++;
		jobs__connection_ended(p->jobs, e->device_name, e->connection);
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": device %s: not answered within %ld ms (product %s, Link SDK "
				"dynamic registration): told busy and closed; the registration goes on for its retry",
				e->device_name, p->cfg.dynreg_window_ms, e->product_key);
		dynreg__fail_later(d, e, BOOTSTRAP_BUSY, "not answered in time; the registration goes on: connect again", 2);
	}
	while((e = d->queue[PENDING_ERROR])) dynreg__publish_error(p, e, e->error, e->error_message, e->retry_after, now);
	for(enum pending_state s = PENDING_CLOSING_OK; s <= PENDING_CLOSING_ERROR; s++){
		while((e = d->queue[s]) && now >= e->close_at_ms){
			char *client_id = e->client_id;
			dynreg__unlink(d, e);
			free(e);
			/* still connected: a close by the device would have removed the entry */
			if(mosquitto_kick_client_by_clientid(client_id, false) == MOSQ_ERR_SUCCESS){
				mosquitto_log_printf(MOSQ_LOG_DEBUG, PLUGIN_NAME ": dynreg: closed client '%s'", shown(client_id, buf, sizeof(buf)));
			}
			free(client_id);
		}
	}
}

/* /ext/register and /ext/regnwl carry the plugin's answers alone: no client may publish,
 * subscribe or read them (a direct publish is never ACL-checked on its way out, src/loop.c
 * queue_plugin_msgs; a resumed session's queued messages would be, handle_connect.c). */
bool dynreg__topic(const struct bootstrap_plugin *p, const char *topic)
{
	return p->dynreg && topic && (!strcmp(topic, DYNREG_TOPIC) || !strcmp(topic, "/ext/regnwl"));
}

/* A waiting dynreg connection may subscribe to /ext/register, as generic MQTT clients do
 * before they read (the SDK does not): the subscription delivers nothing, since nobody may
 * publish there and the answer is a direct publish to that connection alone. */
bool dynreg__may_subscribe(const struct bootstrap_plugin *p, struct mosquitto *client, const char *topic)
{
	return topic && !strcmp(topic, DYNREG_TOPIC) && dynreg__holds(p, client);
}

/* A newer request for its device (a Link SDK CONNECT or a bootstrap topic request) took the
 * place of old's: its connection, if still waiting, is told busy and closed now rather than at
 * the end of its window. */
void dynreg__superseded(struct bootstrap_plugin *p, const struct reply_route *old)
{
	struct pending *e;

	if(!p->dynreg || !old->requester || !(e = dynreg__find(p->dynreg, old->requester))) return;
	if(e->state == PENDING_WAITING && e->connection == old->connection){
		dynreg__fail_later(p->dynreg, e, BOOTSTRAP_BUSY, "a newer request for this device took this one's place", 0);
	}
}

/* On every ACL check: the cheap tests first (nothing waiting; a client id that does not end
 * with the '|' every dynreg one ends with), the keyed hash only for a likely one. */
bool dynreg__holds(const struct bootstrap_plugin *p, struct mosquitto *client)
{
	const char *id = mosquitto_client_id(client);
	size_t len = id ? strlen(id) : 0;
	struct pending *e;

	if(!p->dynreg || !p->dynreg->count || len == 0 || id[len - 1] != '|') return false;
	e = dynreg__find(p->dynreg, id);
	return e && e->connection == client;
}

bool dynreg__pending(const struct bootstrap_plugin *p)
{
	return p->dynreg && (p->dynreg->count > 0 || probe__pending(p->dynreg->probe));
}

void dynreg__on_disconnect(struct bootstrap_plugin *p, struct mosquitto *client)
{
	struct pending *e;

	if(!p->dynreg || !(e = dynreg__find(p->dynreg, mosquitto_client_id(client))) || e->connection != client) return;
	/* its answer, if still coming, is dropped (the index is by DeviceName, not client id) */
	jobs__connection_ended(p->jobs, e->device_name, client);
	dynreg__remove(p->dynreg, e);
}

/* As every metric topic: published once it has moved (bootstrap_metrics.h). The counters
 * only grow, so moved is non-zero; waiting has moved once a connection was accepted. */
static void dynreg__emit(void (*emit)(const char *, const char *, void *), void *ud, const char *name, unsigned long long v,
		bool moved)
{
	char topic[96], value[32];

	if(!moved) return;

	snprintf(topic, sizeof(topic), METRICS_TOPIC_PREFIX "dynreg/%s", name);
	snprintf(value, sizeof(value), "%llu", v);
	emit(topic, value, ud);
}

void dynreg__render(const struct dynreg *d, void (*emit)(const char *topic, const char *value, void *ud), void *ud)
{
	if(!d) return;
	dynreg__emit(emit, ud, "connects", d->connects, d->connects != 0);
	dynreg__emit(emit, ud, "accepted", d->accepted, d->accepted != 0);
	dynreg__emit(emit, ud, "refused", d->refused, d->refused != 0);
	dynreg__emit(emit, ud, "answered", d->answered, d->answered != 0);
	dynreg__emit(emit, ud, "errors", d->errors, d->errors != 0);
	dynreg__emit(emit, ud, "window_expired", d->window_expired, d->window_expired != 0);
	dynreg__emit(emit, ud, "dropped", d->dropped, d->dropped != 0);
	dynreg__emit(emit, ud, "waiting", d->count, d->accepted != 0);
}

/* mosquitto_bootstrap, broker thread: what goes out (MOSQ_EVT_TICK, MOSQ_EVT_DISCONNECT).
 *
 * The worker hands finished jobs back through its done list; the tick takes them, holds a
 * reply whose request's random Redis is still checking (multi-broker mode), seals and
 * publishes the rest to the device alone, and writes each request's audit line. Publishing is
 * only safe here, on the broker thread (mosquitto_broker_publish is not thread-safe).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include "bootstrap_list.h"

#include "bootstrap_broker.h"
#include "bootstrap_clock.h"

/* While work is pending, ask 2.1 for a tick this soon (it may otherwise sleep for hours). */
#define PENDING_TICK_MS 10
/* the broker ticks at least every 100 ms on 2.0, and 2.1 is asked to while work is pending */
#define NO_TICK_WARN_S 5
/* A reply to a request that joined a flow under way waits this long at most for Redis to say
 * whether its random was used before (multi-broker mode); then it goes out anyway. */
#define SHARED_CHECK_WAIT_MS 1000

/* Publishes payload to client_id alone: on the route's Response Topic (with its Correlation
 * Data) when the request had one, else on the client's reply topic (plus /cbor for a CBOR
 * request). */
void bootstrap__send(struct bootstrap_plugin *p, const char *client_id,
		const struct reply_route *route, const char *payload, size_t len, int qos)
{
	char *topic = NULL;
	mosquitto_property *props = NULL;
	char buf[SHOWN_LEN];

	if(route && route->response_topic){
		topic = strdup(route->response_topic);
	}else{
		topic = request__reply_topic(p->cfg.reply_topic, client_id);
		if(topic && route && route->cbor){
			size_t n = strlen(topic);
			char *longer = realloc(topic, n + sizeof(REQUEST_CBOR_SUFFIX));
			if(longer) memcpy(longer + n, REQUEST_CBOR_SUFFIX, sizeof(REQUEST_CBOR_SUFFIX));
			else free(topic);
			topic = longer;
		}
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

/* The one audit line of a request that reached the platform. */
void bootstrap__audit_reply(struct bootstrap_plugin *p, const struct job_result *r, enum bootstrap_reason reason,
		int64_t took_ms)
{
	const struct platform_flow *flow = r->flow;
	struct audit_entry e = { .time = time(NULL), .client = r->route.requester, .address = r->route.address,
		.product_key = r->product_key, .device_id = r->device_id, .format = route__format(&r->route), .reason = reason,
		.duration_ms = (long)took_ms };

	if(!p->audit) return;
	if(flow){
		/* which call served the device: a batch call's RequestId is shared by its devices */
		e.request_id = flow->request_id[0] ? flow->request_id : NULL;
		e.platform_code = flow->platform_code[0] ? flow->platform_code : NULL;
		if(flow->steps > 0) e.action = platform_actions[flow->answered_by].name;
		if(platform__flow_existence_known(flow)) e.device = flow->existing ? "existing" : "new";
	}
	audit__record(p->audit, &e);
}

/* At shutdown (jobs__abandon's callback): a request still open leaves its audit line too, its
 * flow saying how far the platform got. */
void bootstrap__audit_shutdown(const struct job_result *r, void *ud)
{
	struct bootstrap_plugin *p = ud;

	bootstrap__audit_reply(p, r, REASON_SHUTDOWN, clock__ms() - r->route.received_ms);
}

/* A finished job's one outcome: a replay refused, a bound reply dropped (its connection
 * ended), or the triple (sealed when the request asked) or the error published; then its
 * metrics and its audit line. */
static void bootstrap__deliver(struct bootstrap_plugin *p, struct job_result *r)
{
	static struct platform_flow no_memory = { .state = FLOW_DONE, .result = BOOTSTRAP_INTERNAL, .reason = REASON_OUT_OF_MEMORY,
		.message = "the bootstrap service ran out of memory" };
	const struct platform_flow *flow = r->flow ? r->flow : &no_memory;
	size_t len = 0;
	int64_t took_ms;
	char *payload;

	if(r->route.dynreg){
		dynreg__deliver(p, r); /* /ext/register, in the clear (dynreg.c) */
		return;
	}
	took_ms = clock__ms() - r->route.received_ms;
	if(!r->route.connection_ended && (r->route.replayed || (r->flow && r->flow->result == BOOTSTRAP_UNAUTHORIZED))){
		/* Redis knew the random (multi-broker mode; the worker answers nothing else with
		 * unauthorized): refused like a replay found here, counted against the requester. A
		 * joined request's flow result (a triple) is not for it. */
		if(r->route.replayed) p->shared_late_replays++;
		bootstrap__refuse(p, r->route.requester ? r->route.requester : r->device_id, r->route.address, &r->route,
				r->product_key, true, r->device_id, REASON_RANDOM_REPLAYED, "this random was already used for this deviceId; use a new one for every request",
				time(NULL));
		return;
	}
	if(r->route.connection_ended){
		/* bound delivery: nobody but the connection that asked may have this answer */
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": device %s: %s dropped: the requesting connection ended "
				"(closed, or its client id was taken over) before the answer came (product %s)", r->device_id,
				flow->result == BOOTSTRAP_OK ? "triple" : "reply", r->product_key);
		p->metrics.dropped_connection_ended++;
		bootstrap__audit_reply(p, r, REASON_CONNECTION_CLOSED, took_ms);
		return;
	}
	if(flow->result == BOOTSTRAP_OK){
		char iot_id[TEXT_ESCAPED_LEN(sizeof(flow->triple.iot_id))];
		if(r->route.cbor){
			payload = r->route.sealed ? reply__success_sealed_cbor(r->route.seal_key, &flow->triple, &len)
					: reply__success_cbor(&flow->triple, &len);
		}else{
			payload = r->route.sealed ? reply__success_sealed(r->route.seal_key, &flow->triple, &len)
					: reply__success(&flow->triple, &len);
		}
		mosquitto_log_printf(MOSQ_LOG_INFO, PLUGIN_NAME ": device %s: triple sent%s%s (%s device, product %s, IotId %s, by %s)",
				r->device_id, r->route.sealed ? " sealed" : "", r->route.cbor ? " in CBOR" : "", flow->existing ? "existing" : "new", r->product_key,
				text__escape(iot_id, sizeof(iot_id), flow->triple.iot_id), platform_actions[flow->answered_by].name);
	}else{
		payload = r->route.cbor ? reply__error_cbor(flow->result, flow->message, flow->retry_after, &len)
				: reply__error(flow->result, flow->message, flow->retry_after, &len);
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
	bootstrap__audit_reply(p, r, flow->reason, took_ms);
}

/* Redis's answers for the broker thread: refusal verdicts block keys here too; a joined
 * request's replay check settles its route (pending in the index, or held). */
static void bootstrap__shared_results(struct bootstrap_plugin *p, time_t now)
{
	struct shared_op *ops, *op, *next;

	if(!p->shared) return;
	ops = shared__take(p->shared, SHARED_FOR_BROKER);
	LL_FOREACH_SAFE(ops, op, next){
		if(op->kind == SHARED_REFUSAL && op->ok && op->blocked_ms > 0){
			limiter__block(op->by_address ? p->refusals_by_address : p->refusals_by_client, op->key, now,
					(time_t)((op->blocked_ms + 999) / 1000));
		}else if(op->kind == SHARED_REPLAY){
			/* still pending in the worker, or finished and held */
			struct reply_route *route = jobs__route(p->jobs, op->product_key, op->device_id);
			struct job_result *r;
			if(!route || route->shared_check != op->seq){
				LL_SEARCH_SCALAR(p->held, r, route.shared_check, op->seq);
				route = r ? &r->route : NULL;
			}
			if(route){
				route->shared_check = 0;
				route->replayed = op->ok && op->replayed;
			}
		}
		free(op);
	}
}

/* Finished jobs go out, the longest held first. A reply whose random Redis is still checking
 * (multi-broker mode: a request that joined a flow under way) is held until the answer comes,
 * or SHARED_CHECK_WAIT_MS has passed (Redis slow: this broker's replay cache has passed the
 * request). */
static void bootstrap__deliver_ready(struct bootstrap_plugin *p)
{
	struct job_result *ready = p->held, *done = jobs__take_results(p->jobs), *r, *next, *last_held = NULL;
	int64_t now = clock__ms();

	LL_CONCAT(ready, done);
	p->held = NULL;
	LL_FOREACH_SAFE(ready, r, next){
		if(r->route.shared_check && now - r->route.received_ms < SHARED_CHECK_WAIT_MS){
			LL_APPEND_ELEM(p->held, last_held, r);
			last_held = r;
			continue;
		}
		bootstrap__deliver(p, r);
		jobs__result_free(r);
	}
}

/* Replies go out from here: the only thread that may publish. */
int bootstrap__on_tick(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_tick *ed = event_data;
	struct bootstrap_plugin *p = userdata;

	(void)event;
	p->last_tick_s = time(NULL);
	/* once a second: what the operator should know, and the unanswered refusals' summary */
	if(p->last_tick_s != p->report_checked_s){
		p->report_checked_s = p->last_tick_s;
		report__changes(p, p->last_tick_s);
		bootstrap__audit_unanswered(p, p->last_tick_s, false);
	}
	report__metrics(p, p->last_tick_s);
	bootstrap__shared_results(p, p->last_tick_s);
	bootstrap__deliver_ready(p);
	dynreg__on_tick(p);
	if(jobs__outstanding(p->jobs) > 0 || p->held || dynreg__pending(p)){
#ifdef MOSQ_EVT_MESSAGE_IN
		ed->next_ms = PENDING_TICK_MS;
#else
		/* 2.1 reads this slot as next_ms; 2.0 ignores it and ticks every 100 ms anyway */
		ed->next_ns = PENDING_TICK_MS;
#endif
	}
	return MOSQ_ERR_SUCCESS;
}

/* Replies go out from the tick. Work pending and no tick for a while means they never will:
 * 2.1 idles for hours without work, never with it (the plugin asks for ticks). Checked from
 * the events that do come. */
void bootstrap__check_ticking(struct bootstrap_plugin *p, time_t now)
{
	if(p->no_tick_warned || jobs__outstanding(p->jobs) == 0 || now - p->last_tick_s <= NO_TICK_WARN_S) return;
	mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": the broker has not ticked for %ld s, so replies cannot go out: "
			"per_listener_settings true on Mosquitto 2.0.11-2.0.14 stops MOSQ_EVT_TICK; set it false", (long)(now - p->last_tick_s));
	p->no_tick_warned = true;
}

/* A connection ended (closed, or its client id taken over by a newer one: 2.0.11 fires this
 * for the old connection before the new one is registered). A reply bound to it is dropped. */
int bootstrap__on_disconnect(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ed = event_data;
	struct bootstrap_plugin *p = userdata;
	const char *client_id = mosquitto_client_id(ed->client);
	struct job_result *r;

	(void)event;
	if(client_id) jobs__connection_ended(p->jobs, client_id, ed->client);
	/* a finished reply held for its replay check is out of the index: bound to this
	 * connection, it must not go to whoever holds the client id next */
	LL_FOREACH(p->held, r){
		if(r->route.connection != ed->client) continue;
		r->route.connection_ended = true;
		r->route.connection = NULL;
	}
	dynreg__on_disconnect(p, ed->client);
	bootstrap__check_ticking(p, time(NULL));
	return MOSQ_ERR_SUCCESS;
}

/* mosquitto_bootstrap, broker thread: the plugin's entry points.
 *
 * mosquitto_plugin_init reads the options, starts the worker (and the Redis thread in
 * multi-broker mode) and registers the callbacks: requests come in through intake.c, replies
 * go out through delivery.c, the operator is told through report.c. MOSQ_EVT_RELOAD (SIGHUP)
 * takes up rotated credentials, secrets, products and the allowlist. Cleanup stops the
 * threads, audits what was left unanswered and frees everything.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include "bootstrap_list.h"

#include <mosquitto.h>

#include "bootstrap_broker.h"
#include "bootstrap_credentials.h"
#include "bootstrap_hash.h"
#include "bootstrap_identity.h"
#include "bootstrap_products.h"
#include "bootstrap_secret.h"

/* Built with -fvisibility=hidden: only the entry points the broker looks up are exported, so
 * nothing of ours collides with another plugin's symbols (the broker loads with RTLD_GLOBAL). */
#define PLUGIN_EXPORT __attribute__((visibility("default")))

#ifdef MOSQ_EVT_MESSAGE_IN
#  define BOOTSTRAP_EVT_MESSAGE MOSQ_EVT_MESSAGE_IN
#else
#  define BOOTSTRAP_EVT_MESSAGE MOSQ_EVT_MESSAGE
#endif

/* config__finish and config__load_credentials take the environment as a function: the unit
 * tests give them their own. */
static const char *bootstrap__getenv(const char *name)
{
	return getenv(name);
}

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
			(allowlist__name_count(al) + allowlist__pattern_count(al)) ? "" : " (no device may bootstrap)");
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

static void bootstrap__unregister(struct bootstrap_plugin *p)
{
	mosquitto_callback_unregister(p->id, BOOTSTRAP_EVT_MESSAGE, bootstrap__on_message, NULL);
	mosquitto_callback_unregister(p->id, MOSQ_EVT_TICK, bootstrap__on_tick, NULL);
	mosquitto_callback_unregister(p->id, MOSQ_EVT_ACL_CHECK, bootstrap__on_acl_check, NULL);
	mosquitto_callback_unregister(p->id, MOSQ_EVT_RELOAD, bootstrap__on_reload, NULL);
	mosquitto_callback_unregister(p->id, MOSQ_EVT_DISCONNECT, bootstrap__on_disconnect, NULL);
	if(p->dynreg) mosquitto_callback_unregister(p->id, MOSQ_EVT_BASIC_AUTH, dynreg__on_basic_auth, NULL);
}

/* Also undoes a start-up that failed half-way: any part may be missing. */
static void bootstrap__free(struct bootstrap_plugin *p)
{
	struct job_result *r, *next;

	if(!p) return;
	LL_FOREACH_SAFE(p->held, r, next) jobs__result_free(r);
	jobs__free(p->jobs);
	/* after the worker, which uses it */
	shared__free(p->shared);
	intake__cleanup(p);
	report__free(p->reports);
	dynreg__free(p->dynreg);
	/* the last unanswered refusals' summary, before the file closes */
	bootstrap__audit_unanswered(p, time(NULL), true);
	audit__close(p->audit);
	allowlist__free(p->allowlist);
	metrics__cleanup(&p->metrics);
	config__cleanup(&p->cfg);
	if(p->curl_ready) curl_global_cleanup();
	if(p->hash_held) hash__release();
	free(p);
}

/* Plugin API 5 (Mosquitto 2.0 on) alone: its events are what this plugin is built on. */
PLUGIN_EXPORT int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

/* Anything wrong in the options, the files they name or the start of a thread stops the broker
 * from starting, saying why: a broker that cannot bootstrap devices must not look as if it did. */
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
	if(intake__init(p) || !(p->reports = report__new())
			|| (p->cfg.dynreg_mqtt == DYNREG_ON && !(p->dynreg = dynreg__new(&p->cfg)))){
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
			|| mosquitto_callback_register(identifier, MOSQ_EVT_DISCONNECT, bootstrap__on_disconnect, NULL, p)
			|| (p->dynreg && mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, dynreg__on_basic_auth, NULL, p))){
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
	if(p->dynreg){
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": dynreg_mqtt on: Link SDK dynamic registration CONNECTs are served "
				"on the listeners of plugin_opt_dynreg_tls_ports %s alone (told by %s), answered within %ld ms; a client that sends a username "
				"and that nothing else authenticates is now refused", p->cfg.dynreg_tls_ports, dynreg__port_source(p->dynreg),
				p->cfg.dynreg_window_ms);
	}
	if(p->cfg.request_auth == REQUEST_AUTH_NONE){
		mosquitto_log_printf(MOSQ_LOG_WARNING, PLUGIN_NAME ": request_auth none: any client that can publish on '%s' "
				"can register devices and trigger platform calls", p->cfg.request_topic);
	}
	return MOSQ_ERR_SUCCESS;
}

/* The broker's loop has ended: nothing published now would be sent, so what was still open is
 * audited and counted in one log line instead. */
PLUGIN_EXPORT int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int opt_count)
{
	struct bootstrap_plugin *p = userdata;
	struct jobs_stats st;
	struct job_result *r;
	size_t held = 0;

	(void)opts;
	(void)opt_count;
	if(!p) return MOSQ_ERR_SUCCESS;
	bootstrap__unregister(p);
	/* every request still open leaves its audit line, even one the platform has answered */
	jobs__abandon(p->jobs, bootstrap__audit_shutdown, p);
	LL_FOREACH(p->held, r){
		bootstrap__audit_shutdown(r, p);
		held++;
	}
	jobs__stats(p->jobs, &st);
	mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": shutting down with %zu requests unanswered; "
			"%llu platform calls, %llu retries, %llu throttled answers",
			jobs__outstanding(p->jobs) + held, st.calls, st.retries, st.throttled);
	bootstrap__free(p);
	return MOSQ_ERR_SUCCESS;
}

/* Plugin options and platform credentials. Broker thread (start-up, SIGHUP); the worker gets
 * a config__snapshot() of its own. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/crypto.h>

#include "bootstrap_config.h"
#include "bootstrap_dynreg.h"
#include "bootstrap_request.h"
#include "bootstrap_secret.h"
#include "bootstrap_shared.h"
#include "bootstrap_text.h"

#define DEFAULT_REGION "cn-shanghai"
#define DEFAULT_REQUEST_TOPIC "bootstrap/register"
#define DEFAULT_REPLY_TOPIC "bootstrap/reply/" REPLY_TOPIC_PLACEHOLDER
#define DEFAULT_MAX_INFLIGHT 64
#define DEFAULT_MAX_QUEUE 10000
#define DEFAULT_HTTP_TIMEOUT_MS 5000
#define DEFAULT_REQUEST_DEADLINE_MS 30000
/* The platform's per-account quotas (RegisterDevice 30/s, QueryDeviceDetail 50/s). */
#define DEFAULT_BURST 1.0
#define DEFAULT_METRICS_INTERVAL_S 10 /* Mosquitto's own sys_interval default */
#define OPTION_VALUE_MAX 1024
/* a Redis command (and a connection attempt) that takes longer than this: Redis is down */
#define DEFAULT_REDIS_TIMEOUT_MS 200
#define REDIS_PASSWORD_MAX 512
#define REDIS_USERNAME_MAX 128
/* The Link SDK waits 5 s for its answer (DYNREGMQ_DEFAULT_TIMEOUT_MS): answer, or close, before. */
#define DEFAULT_DYNREG_WINDOW_MS 4500

static int string__replace(char **dst, const char *value)
{
	char *copy = strdup(value);

	if(!copy) return -1;
	free(*dst);
	*dst = copy;
	return 0;
}

/* A whole decimal number within [min, max]. */
static int number__parse(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if(!isdigit((unsigned char)s[0])) return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if(errno || *end != '\0' || v < min || v > max) return -1;
	*out = v;
	return 0;
}

/* Topic option: a publishable MQTT topic, no wildcards, no empty levels at the ends. */
static bool topic__valid(const char *t)
{
	size_t len = strlen(t);

	if(len == 0 || len > 256) return false;
	if(strpbrk(t, "+#")) return false;
	if(t[0] == '$') return false;
	return true;
}

static bool reply_template__valid(const char *t)
{
	return topic__valid(t) && request__reply_template_valid(t);
}

void config__init(struct bootstrap_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_inflight = DEFAULT_MAX_INFLIGHT;
	cfg->max_queue = DEFAULT_MAX_QUEUE;
	cfg->http_timeout_ms = DEFAULT_HTTP_TIMEOUT_MS;
	cfg->request_deadline_ms = DEFAULT_REQUEST_DEADLINE_MS;
	cfg->metrics_interval = DEFAULT_METRICS_INTERVAL_S;
	cfg->redis_timeout_ms = DEFAULT_REDIS_TIMEOUT_MS;
	cfg->dynreg_window_ms = DEFAULT_DYNREG_WINDOW_MS;
	for(int a = 0; a < PLATFORM_ACTIONS; a++){
		cfg->qps[a] = platform_actions[a].quota_qps;
		cfg->burst[a] = DEFAULT_BURST;
	}
}

/* A decimal number within [min, max]: rates may be fractions when brokers split a quota. */
static int decimal__parse(const char *s, double min, double max, double *out)
{
	char *end;
	double v;

	if(!isdigit((unsigned char)s[0])) return -1;
	errno = 0;
	v = strtod(s, &end);
	if(errno || *end != '\0' || !(v >= min && v <= max)) return -1;
	*out = v;
	return 0;
}

static bool region__valid(const char *r)
{
	size_t len = strlen(r);

	if(len == 0 || len > 64) return false;
	for(size_t i = 0; i < len; i++){
		if(!islower((unsigned char)r[i]) && !isdigit((unsigned char)r[i]) && r[i] != '-') return false;
	}
	return true;
}

/* The ProductKey rule requests and the products file follow too. */
static bool product_key__valid(const char *s)
{
	return request__product_key_valid(s, strlen(s));
}

/* IotInstanceId: a short token of letters, digits, - and _. */
static bool token__valid(const char *s)
{
	size_t len = strlen(s);

	if(len == 0 || len > 64) return false;
	for(size_t i = 0; i < len; i++){
		if(!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_') return false;
	}
	return true;
}

/* A proxy URL: http:// or https://, a host and maybe a port, no user:password (it would sit in
 * the configuration and in logs), nothing curl could read as more than one URL. */
static bool proxy__valid(const char *s)
{
	size_t len = strlen(s);

	if(len > 255 || (strncmp(s, "http://", 7) && strncmp(s, "https://", 8))) return false;
	if(s[strlen(s[4] == 's' ? "https://" : "http://")] == '\0') return false;
	for(size_t i = 0; i < len; i++){
		if(s[i] <= 0x20 || s[i] > 0x7e || s[i] == '@') return false;
	}
	return true;
}

static bool ports__valid(const char *s)
{
	return dynreg__ports_parse(s, NULL, DYNREG_PORTS_MAX) > 0;
}

/* How an option's value is read; the rest of its row says into which field, within what. */
enum option_kind {
	OPTION_STRING, /* copied, if check (when set) accepts it */
	OPTION_PATH,   /* copied, if absolute */
	OPTION_WORD,   /* one of words, stored as its enum value */
	OPTION_INT,    /* a whole number within [min, max] */
	OPTION_LONG,
	OPTION_DOUBLE, /* a decimal number within [min, max] */
};

struct option_word {
	const char *word;
	int value;
};

struct config_option {
	const char *name;                  /* plugin_opt_<name> */
	enum option_kind kind;
	size_t offset;                     /* of the field it writes in struct bootstrap_config */
	bool (*check)(const char *value);  /* OPTION_STRING; NULL takes anything */
	const struct option_word *words;   /* OPTION_WORD; ends with a NULL word */
	double min, max;                   /* OPTION_INT, _LONG (whole numbers) and _DOUBLE */
	const char *refusal;               /* why a value is refused, after "plugin_opt_<name>: '<value>' "
	                                    * (OPTION_PATH: without the value) */
	bool unshown;                      /* a refused value is never echoed: it may carry a password */
};

/* The field's offset, if it has the type the option's kind writes: a row pointing at a field
 * of another type does not compile. */
#define CFG_FIELD(field, type) _Generic(((struct bootstrap_config *)0)->field, type: offsetof(struct bootstrap_config, field))

/* OPTION_WORD writes the enum through an int */
_Static_assert(sizeof(enum request_auth) == sizeof(int) && sizeof(enum existing_devices) == sizeof(int)
		&& sizeof(enum acl_mode) == sizeof(int) && sizeof(enum flow_strategy) == sizeof(int)
		&& sizeof(enum reply_encryption) == sizeof(int) && sizeof(enum signature_version) == sizeof(int)
		&& sizeof(enum batching_mode) == sizeof(int) && sizeof(enum registration_mode) == sizeof(int)
		&& sizeof(enum identity_field) == sizeof(int) && sizeof(enum dynreg_mode) == sizeof(int),
		"option enums are int-sized");

static const struct option_word signature_version_words[] = {
	{"v3", SIGNATURE_V3}, {"v1", SIGNATURE_V1}, {NULL, 0},
};
static const struct option_word request_auth_words[] = {
	{"sign", REQUEST_AUTH_SIGN}, {"identity", REQUEST_AUTH_IDENTITY}, {"none", REQUEST_AUTH_NONE}, {NULL, 0},
};
static const struct option_word identity_field_words[] = {
	{"cn", IDENTITY_FIELD_CN}, {"san_dns", IDENTITY_FIELD_SAN_DNS}, {"san_uri", IDENTITY_FIELD_SAN_URI}, {NULL, 0},
};
static const struct option_word reply_encryption_words[] = {
	{"on", REPLY_ENCRYPTION_ON}, {"off", REPLY_ENCRYPTION_OFF}, {NULL, 0},
};
static const struct option_word existing_devices_words[] = {
	{"unactive", EXISTING_UNACTIVE}, {"always", EXISTING_ALWAYS}, {"never", EXISTING_NEVER}, {NULL, 0},
};
static const struct option_word acl_words[] = {
	{"strict", ACL_STRICT}, {"defer", ACL_DEFER}, {NULL, 0},
};
static const struct option_word registration_words[] = {
	{"open", REGISTRATION_OPEN}, {"preregistered", REGISTRATION_PREREGISTERED}, {NULL, 0},
};
static const struct option_word dynreg_words[] = {
	{"off", DYNREG_OFF}, {"on", DYNREG_ON}, {NULL, 0},
};
static const struct option_word batching_words[] = {
	{"auto", BATCHING_AUTO}, {"off", BATCHING_OFF}, {NULL, 0},
};
static const struct option_word strategy_words[] = {
	{"auto", STRATEGY_AUTO}, {"register_first", STRATEGY_REGISTER_FIRST}, {"query_first", STRATEGY_QUERY_FIRST}, {NULL, 0},
};

/* Every option config__set() accepts, in the README's order. */
static const struct config_option options[] = {
	{"product_key", OPTION_STRING, CFG_FIELD(product_key, char *), .check = product_key__valid,
		.refusal = "is not a ProductKey (letters, digits, - and _)"},
	{"region", OPTION_STRING, CFG_FIELD(region, char *), .check = region__valid,
		.refusal = "is not a region id such as cn-shanghai"},
	{"endpoint", OPTION_STRING, CFG_FIELD(endpoint, char *), .check = NULL}, /* parsed as a URL by config__finish */
	{"iot_instance_id", OPTION_STRING, CFG_FIELD(iot_instance_id, char *), .check = token__valid,
		.refusal = "is not an instance id"},
	{"signature_version", OPTION_WORD, CFG_FIELD(signature_version, enum signature_version), .words = signature_version_words},
	{"credentials_file", OPTION_PATH, CFG_FIELD(credentials_file, char *), .refusal = "must be an absolute path"},
	{"request_auth", OPTION_WORD, CFG_FIELD(request_auth, enum request_auth), .words = request_auth_words},
	{"identity_field", OPTION_WORD, CFG_FIELD(identity_field, enum identity_field), .words = identity_field_words},
	{"product_secret_file", OPTION_PATH, CFG_FIELD(product_secret_file, char *), .refusal = "must be an absolute path"},
	{"products_file", OPTION_PATH, CFG_FIELD(products_file, char *), .refusal = "must be an absolute path"},
	{"reply_encryption", OPTION_WORD, CFG_FIELD(reply_encryption, enum reply_encryption), .words = reply_encryption_words},
	{"existing_devices", OPTION_WORD, CFG_FIELD(existing_devices, enum existing_devices), .words = existing_devices_words},
	{"registration", OPTION_WORD, CFG_FIELD(registration, enum registration_mode), .words = registration_words},
	{"device_allowlist", OPTION_PATH, CFG_FIELD(device_allowlist, char *), .refusal = "must be an absolute path"},
	{"acl", OPTION_WORD, CFG_FIELD(acl, enum acl_mode), .words = acl_words},
	{"metrics_interval", OPTION_INT, CFG_FIELD(metrics_interval, int), .min = 0, .max = 86400,
		.refusal = "is not a number of seconds from 0 to 86400"},
	{"operator", OPTION_STRING, CFG_FIELD(operator_username, char *), .check = NULL},
	{"audit_file", OPTION_PATH, CFG_FIELD(audit_file, char *), .refusal = "must be an absolute path"},
	{"batch_state_file", OPTION_PATH, CFG_FIELD(batch_state_file, char *), .refusal = "must be an absolute path"},
	{"ca_file", OPTION_PATH, CFG_FIELD(ca_file, char *), .refusal = "must be an absolute path"},
	{"https_proxy", OPTION_STRING, CFG_FIELD(https_proxy, char *), .check = proxy__valid,
		.refusal = "must be an http:// or https:// proxy URL without user:password", .unshown = true},
	{"https_proxy_ca_file", OPTION_PATH, CFG_FIELD(https_proxy_ca_file, char *), .refusal = "must be an absolute path"},
	{"request_topic", OPTION_STRING, CFG_FIELD(request_topic, char *), .check = topic__valid,
		.refusal = "is not a topic without wildcards (+ #) or a leading $"},
	{"reply_topic", OPTION_STRING, CFG_FIELD(reply_topic, char *), .check = reply_template__valid,
		.refusal = "must be a topic without wildcards containing " REPLY_TOPIC_PLACEHOLDER " exactly once"},
	{"response_topic_prefix", OPTION_STRING, CFG_FIELD(response_topic_prefix, char *), .check = topic__valid,
		.refusal = "is not a topic without wildcards (+ #) or a leading $"},
	{"max_inflight", OPTION_INT, CFG_FIELD(max_inflight, int), .min = 1, .max = 1024,
		.refusal = "is not a number from 1 to 1024"},
	{"max_queue", OPTION_INT, CFG_FIELD(max_queue, int), .min = 1, .max = 1000000,
		.refusal = "is not a number from 1 to 1000000"},
	{"http_timeout_ms", OPTION_LONG, CFG_FIELD(http_timeout_ms, long), .min = 100, .max = 120000,
		.refusal = "is not a number from 100 to 120000"},
	{"request_deadline_ms", OPTION_LONG, CFG_FIELD(request_deadline_ms, long), .min = 100, .max = 3600000,
		.refusal = "is not a number from 100 to 3600000"},
	{"register_qps", OPTION_DOUBLE, CFG_FIELD(qps[ACTION_REGISTER], double), .min = 0.01, .max = 10000,
		.refusal = "is not a rate from 0.01 to 10000 calls per second"},
	{"register_burst", OPTION_DOUBLE, CFG_FIELD(burst[ACTION_REGISTER], double), .min = 1, .max = 10000,
		.refusal = "is not a number of calls from 1 to 10000"},
	{"query_qps", OPTION_DOUBLE, CFG_FIELD(qps[ACTION_QUERY], double), .min = 0.01, .max = 10000,
		.refusal = "is not a rate from 0.01 to 10000 calls per second"},
	{"query_burst", OPTION_DOUBLE, CFG_FIELD(burst[ACTION_QUERY], double), .min = 1, .max = 10000,
		.refusal = "is not a number of calls from 1 to 10000"},
	{"batching", OPTION_WORD, CFG_FIELD(batching, enum batching_mode), .words = batching_words},
	{"batch_query_qps", OPTION_DOUBLE, CFG_FIELD(qps[ACTION_BATCH_QUERY], double), .min = 0.01, .max = 10000,
		.refusal = "is not a rate from 0.01 to 10000 calls per second"},
	{"batch_check_qps", OPTION_DOUBLE, CFG_FIELD(qps[ACTION_BATCH_CHECK], double), .min = 0.01, .max = 10000,
		.refusal = "is not a rate from 0.01 to 10000 calls per second"},
	{"batch_status_qps", OPTION_DOUBLE, CFG_FIELD(qps[ACTION_BATCH_STATUS], double), .min = 0.01, .max = 10000,
		.refusal = "is not a rate from 0.01 to 10000 calls per second"},
	{"batch_register_qps", OPTION_DOUBLE, CFG_FIELD(qps[ACTION_BATCH_REGISTER], double), .min = 0.01, .max = 10000,
		.refusal = "is not a rate from 0.01 to 10000 calls per second"},
	{"batch_page_qps", OPTION_DOUBLE, CFG_FIELD(qps[ACTION_BATCH_PAGE], double), .min = 0.01, .max = 10000,
		.refusal = "is not a rate from 0.01 to 10000 calls per second"},
	{"sts_endpoint", OPTION_STRING, CFG_FIELD(sts_endpoint, char *), .check = NULL}, /* a URL, checked by config__finish */
	{"ecs_metadata_endpoint", OPTION_STRING, CFG_FIELD(ecs_metadata_endpoint, char *), .check = NULL},
	{"strategy", OPTION_WORD, CFG_FIELD(strategy, enum flow_strategy), .words = strategy_words},
	{"wakeup_port", OPTION_INT, CFG_FIELD(wakeup_port, int), .min = 0, .max = 65535,
		.refusal = "is not a port number"},
	{"redis_url", OPTION_STRING, CFG_FIELD(redis_url, char *), .check = NULL}, /* parsed by config__finish, never echoed */
	{"redis_password_file", OPTION_PATH, CFG_FIELD(redis_password_file, char *), .refusal = "must be an absolute path"},
	{"redis_prefix", OPTION_STRING, CFG_FIELD(redis_prefix, char *), .check = shared__prefix_valid,
		.refusal = "is not 1 to 64 letters, digits, - _ . : { }"},
	{"redis_timeout_ms", OPTION_LONG, CFG_FIELD(redis_timeout_ms, long), .min = 10, .max = 10000,
		.refusal = "is not a number from 10 to 10000"},
	{"redis_fallback_share", OPTION_DOUBLE, CFG_FIELD(redis_fallback_share, double), .min = 0.01, .max = 1,
		.refusal = "is not a share from 0.01 to 1"},
	{"dynreg_mqtt", OPTION_WORD, CFG_FIELD(dynreg_mqtt, enum dynreg_mode), .words = dynreg_words},
	{"dynreg_tls_ports", OPTION_STRING, CFG_FIELD(dynreg_tls_ports, char *), .check = ports__valid,
		.refusal = "is not a list of 1 to 8 port numbers separated by commas"},
	{"dynreg_window_ms", OPTION_LONG, CFG_FIELD(dynreg_window_ms, long), .min = 200, .max = 60000,
		.refusal = "is not a number from 200 to 60000"},
};

#define OPTION_COUNT (sizeof(options) / sizeof(options[0]))

/* Names people put secrets under: refused without echoing the value. */
static const char *const secret_names[] = {
	"access_key_id", "access_key_secret", "security_token", "product_secret", NULL,
};

const char *config__option_name(size_t i)
{
	return i < OPTION_COUNT ? options[i].name : NULL;
}

static const struct config_option *option__find(const char *key)
{
	for(size_t i = 0; i < OPTION_COUNT; i++){
		if(!strcmp(key, options[i].name)) return &options[i];
	}
	return NULL;
}

static int option__refuse(const struct config_option *opt, const char *value, char *err, size_t errlen)
{
	char shown[TEXT_ESCAPED_LEN(OPTION_VALUE_MAX)];

	if(opt->unshown){
		text__error(err, errlen, "plugin_opt_%s: the value (not shown: it may hold a password) %s", opt->name, opt->refusal);
		return -1;
	}
	text__error(err, errlen, "plugin_opt_%s: '%s' %s", opt->name, text__escape(shown, sizeof(shown), value), opt->refusal);
	return -1;
}

/* One of the option's words, written as its enum value; else the error lists them all. */
static int word__set(const struct config_option *opt, const char *value, int *field, char *err, size_t errlen)
{
	const struct option_word *w = opt->words;
	char list[128] = "", shown[TEXT_ESCAPED_LEN(OPTION_VALUE_MAX)];

	for(int i = 0; w[i].word; i++){
		if(!strcmp(value, w[i].word)){
			*field = w[i].value;
			return 0;
		}
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? (w[i+1].word ? ", " : " or ") : "", w[i].word);
	}
	text__error(err, errlen, "plugin_opt_%s: '%s' is not %s", opt->name, text__escape(shown, sizeof(shown), value), list);
	return -1;
}

int config__set(struct bootstrap_config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
	const struct config_option *opt;
	void *field;
	long n;

	if(!key || !value){
		text__error(err, errlen, "option without a value");
		return -1;
	}
	if(strlen(value) > OPTION_VALUE_MAX){
		text__error(err, errlen, "plugin_opt_%s: value longer than %d bytes", key, OPTION_VALUE_MAX);
		return -1;
	}
	opt = option__find(key);
	if(!opt){
		if(!strcmp(key, "redis_password") || !strcmp(key, "redis_username")){
			/* never echo the value */
			text__error(err, errlen, "plugin_opt_%s: the Redis password is never read from mosquitto.conf; "
					"put 'password = ...' (and 'username = ...') in plugin_opt_redis_password_file (mode 0600)", key);
			return -1;
		}
		for(int i = 0; secret_names[i]; i++){
			if(strcmp(key, secret_names[i])) continue;
			/* never echo the value: it is a secret somebody put in the wrong place */
			text__error(err, errlen, "plugin_opt_%s: credentials are never read from mosquitto.conf; "
					"use the ALIBABA_CLOUD_* environment, plugin_opt_credentials_file or plugin_opt_product_secret_file", key);
			return -1;
		}
		text__error(err, errlen, "plugin_opt_%s: unknown option", key);
		return -1;
	}

	field = (char *)cfg + opt->offset;
	switch(opt->kind){
		case OPTION_STRING:
			if(opt->check && !opt->check(value)) return option__refuse(opt, value, err, errlen);
			return string__replace(field, value);
		case OPTION_PATH:
			if(value[0] != '/'){
				text__error(err, errlen, "plugin_opt_%s: %s", opt->name, opt->refusal);
				return -1;
			}
			return string__replace(field, value);
		case OPTION_WORD:
			return word__set(opt, value, field, err, errlen);
		case OPTION_INT:
			if(number__parse(value, (long)opt->min, (long)opt->max, &n)) return option__refuse(opt, value, err, errlen);
			*(int *)field = (int)n;
			return 0;
		case OPTION_LONG:
			if(number__parse(value, (long)opt->min, (long)opt->max, &n)) return option__refuse(opt, value, err, errlen);
			*(long *)field = n;
			return 0;
		case OPTION_DOUBLE:
			if(decimal__parse(value, opt->min, opt->max, field)) return option__refuse(opt, value, err, errlen);
			return 0;
	}
	/* a kind without a case above: a bug the unit test catches */
	text__error(err, errlen, "plugin_opt_%s: not handled", key);
	return -1;
}

/* An endpoint option (endpoint, sts_endpoint, ecs_metadata_endpoint): where credentials may go,
 * by the one rule every credential endpoint follows (credentials__endpoint_allowed: https, or
 * http to loopback or the metadata service's address; no user info); and, as requests are
 * signed for "/", no path beyond "/" and no query. name says where the URL came from. */
static int endpoint__check(const char *name, const char *url, char *err, size_t errlen)
{
	CURLU *u;
	char *path = NULL, *query = NULL, why[200];
	int rc = -1;

	if(!credentials__endpoint_allowed(url, why, sizeof(why))){
		text__error(err, errlen, "%s: %s", name, why);
		return -1;
	}
	if(!(u = curl_url())){
		text__error(err, errlen, "%s: out of memory", name);
		return -1;
	}
	if(curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK){
		text__error(err, errlen, "%s: is not a URL", name);
		goto done;
	}
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	curl_url_get(u, CURLUPART_QUERY, &query, 0);
	if((path && strcmp(path, "/") && strcmp(path, "")) || query){
		text__error(err, errlen, "%s: must be scheme://host[:port]/ with no path, query or user", name);
		goto done;
	}
	rc = 0;
done:
	curl_free(path);
	curl_free(query);
	curl_url_cleanup(u);
	return rc;
}

/* The ProductSecret: the first line of a private file. */
int config__load_product_secret(struct bootstrap_config *cfg, char *err, size_t errlen)
{
	return products__read_secret("plugin_opt_product_secret_file", cfg->product_secret_file, &cfg->product_secret, err, errlen);
}

int config__load_products(struct bootstrap_config *cfg, char *err, size_t errlen)
{
	struct products *set = products__load(cfg->products_file, err, errlen);
	char *check;

	if(!set) return -1;
	/* the default product must be one of them: its requests need its secret */
	if(cfg->product_key && !products__find(set, cfg->product_key)){
		text__error(err, errlen, "plugin_opt_products_file: %s does not list plugin_opt_product_key %s",
				cfg->products_file, cfg->product_key);
		products__free(set);
		return -1;
	}
	if(!(check = strdup(cfg->product_key ? cfg->product_key : products__first(set)))){
		text__error(err, errlen, "out of memory");
		products__free(set);
		return -1;
	}
	products__free(cfg->products);
	cfg->products = set;
	free(cfg->check_product_key);
	cfg->check_product_key = check;
	return 0;
}

/* The Redis user and password: "username = NAME" (optional, a Redis 6 ACL user) and
 * "password = SECRET" lines, '#' comments and blank lines, in a private file. */
static int config__load_redis_auth(struct bootstrap_config *cfg, char *err, size_t errlen)
{
	char *text = NULL, *line, *next;
	size_t textlen;
	int rc = -1, n = 0;

	if(secret__read_file("plugin_opt_redis_password_file", cfg->redis_password_file, true, &text, err, errlen)) return -1;
	textlen = strlen(text);
	for(line = text; line; line = next){
		char *eq, *key, *value;
		next = strchr(line, '\n');
		if(next) *next++ = '\0';
		n++;
		key = secret__trim(line);
		if(key[0] == '\0' || key[0] == '#') continue;
		eq = strchr(key, '=');
		if(!eq){
			text__error(err, errlen, "plugin_opt_redis_password_file: %s line %d is not 'username = NAME' or 'password = SECRET'",
					cfg->redis_password_file, n);
			goto done;
		}
		*eq = '\0';
		key = secret__trim(key);
		value = secret__trim(eq + 1);
		if(!strcmp(key, "password")){
			if(value[0] == '\0' || strlen(value) > REDIS_PASSWORD_MAX){
				text__error(err, errlen, "plugin_opt_redis_password_file: %s line %d: the password is empty or longer than %d bytes",
						cfg->redis_password_file, n, REDIS_PASSWORD_MAX);
				goto done;
			}
			secret__free(&cfg->redis_password);
			if(!(cfg->redis_password = strdup(value))) goto oom;
		}else if(!strcmp(key, "username")){
			if(value[0] == '\0' || strlen(value) > REDIS_USERNAME_MAX || strcspn(value, " \t") != strlen(value)){
				text__error(err, errlen, "plugin_opt_redis_password_file: %s line %d: the username is empty, has white space "
						"or is longer than %d bytes", cfg->redis_password_file, n, REDIS_USERNAME_MAX);
				goto done;
			}
			free(cfg->redis_username);
			if(!(cfg->redis_username = strdup(value))) goto oom;
		}else{
			/* the key only: a value could be a password on the wrong line */
			text__error(err, errlen, "plugin_opt_redis_password_file: %s line %d: unknown key (username and password are known)",
					cfg->redis_password_file, n);
			goto done;
		}
	}
	if(!cfg->redis_password){
		text__error(err, errlen, "plugin_opt_redis_password_file: %s has no 'password = ...' line", cfg->redis_password_file);
		goto done;
	}
	rc = 0;
	goto done;
oom:
	text__error(err, errlen, "out of memory");
done:
	OPENSSL_cleanse(text, textlen);
	free(text);
	if(rc){
		secret__free(&cfg->redis_password);
		free(cfg->redis_username);
		cfg->redis_username = NULL;
	}
	return rc;
}

/* Multi-broker mode's options: the URL parsed (never echoed beyond what the parser says), the
 * prefix defaulted, the password read. */
static int config__finish_redis(struct bootstrap_config *cfg, char *err, size_t errlen)
{
	struct shared_endpoint ep;

	if(!cfg->redis_url){
		if(cfg->redis_password_file){
			text__error(err, errlen, "plugin_opt_redis_password_file: only used with plugin_opt_redis_url");
			return -1;
		}
		return 0;
	}
	if(shared__parse_url(cfg->redis_url, &ep, err, errlen)) return -1;
	if(!cfg->redis_prefix && string__replace(&cfg->redis_prefix, SHARED_DEFAULT_PREFIX)) return -1;
	if(cfg->redis_password_file) return config__load_redis_auth(cfg, err, errlen);
	return 0;
}

int config__load_credentials(struct bootstrap_config *cfg, config_getenv_fn get_env, char *err, size_t errlen)
{
	struct credentials_source source;

	if(credentials__resolve(cfg->credentials_file, get_env, &source, err, errlen)) return -1;
	credentials__source_cleanup(&cfg->creds_source);
	cfg->creds_source = source;
	/* an AccessKey is current at once; temporary credentials come from the worker's provider */
	credentials__cleanup(&cfg->creds);
	if(source.kind == CREDENTIALS_STATIC && credentials__copy(&cfg->creds, &source.key)){
		text__error(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int config__finish(struct bootstrap_config *cfg, config_getenv_fn get_env, char *err, size_t errlen)
{
	char url[256];

	if(!cfg->product_key && !cfg->products_file){
		text__error(err, errlen, "plugin_opt_product_key: required, and not set (or name several products in plugin_opt_products_file)");
		return -1;
	}
	if(!cfg->region && string__replace(&cfg->region, DEFAULT_REGION)) return -1;
	if(!cfg->request_topic && string__replace(&cfg->request_topic, DEFAULT_REQUEST_TOPIC)) return -1;
	if(!cfg->reply_topic && string__replace(&cfg->reply_topic, DEFAULT_REPLY_TOPIC)) return -1;
	if(!cfg->response_topic_prefix){
		/* the reply template up to its placeholder: bootstrap/reply/{deviceId} gives bootstrap/reply/ */
		size_t head = (size_t)(strstr(cfg->reply_topic, REPLY_TOPIC_PLACEHOLDER) - cfg->reply_topic);
		if(head == 0){
			text__error(err, errlen, "plugin_opt_response_topic_prefix: required when plugin_opt_reply_topic starts with %s",
					REPLY_TOPIC_PLACEHOLDER);
			return -1;
		}
		if(!(cfg->response_topic_prefix = strndup(cfg->reply_topic, head))) return -1;
	}
	if(!cfg->endpoint){
		snprintf(url, sizeof(url), "https://iot.%s.aliyuncs.com/", cfg->region);
		if(string__replace(&cfg->endpoint, url)) return -1;
	}
	if(endpoint__check("plugin_opt_endpoint", cfg->endpoint, err, errlen)) return -1;
	if(cfg->registration == REGISTRATION_PREREGISTERED && cfg->existing_devices == EXISTING_NEVER){
		text__error(err, errlen, "plugin_opt_registration: preregistered serves only devices that already exist, "
				"which plugin_opt_existing_devices never refuses: choose one");
		return -1;
	}
	if(cfg->reply_encryption == REPLY_ENCRYPTION_DEFAULT){
		cfg->reply_encryption = cfg->request_auth == REQUEST_AUTH_SIGN ? REPLY_ENCRYPTION_ON : REPLY_ENCRYPTION_OFF;
	}else if(cfg->reply_encryption == REPLY_ENCRYPTION_ON && cfg->request_auth != REQUEST_AUTH_SIGN){
		text__error(err, errlen, "plugin_opt_reply_encryption: on needs request_auth sign "
				"(the reply is sealed with a key derived from the ProductSecret)");
		return -1;
	}
	if(cfg->request_auth == REQUEST_AUTH_IDENTITY){
		if(cfg->identity_field == IDENTITY_FIELD_DEFAULT) cfg->identity_field = IDENTITY_FIELD_CN;
	}else if(cfg->identity_field != IDENTITY_FIELD_DEFAULT){
		text__error(err, errlen, "plugin_opt_identity_field: only used with plugin_opt_request_auth identity");
		return -1;
	}
	if(cfg->products_file){
		/* identity and none prove a deviceId at most, never which product it belongs to */
		if(cfg->request_auth != REQUEST_AUTH_SIGN){
			text__error(err, errlen, "plugin_opt_products_file: needs plugin_opt_request_auth sign "
					"(only a product's secret proves which product a device belongs to)");
			return -1;
		}
		if(cfg->product_secret_file){
			text__error(err, errlen, "plugin_opt_product_secret_file: not with plugin_opt_products_file, "
					"which names every product's secret file (plugin_opt_product_key then names the default product)");
			return -1;
		}
		if(config__load_products(cfg, err, errlen)) return -1;
	}else if(cfg->request_auth == REQUEST_AUTH_SIGN){
		if(!cfg->product_secret_file){
			text__error(err, errlen, "plugin_opt_request_auth: sign (the default) needs plugin_opt_product_secret_file "
					"(or plugin_opt_products_file); set plugin_opt_request_auth none to let any client register devices");
			return -1;
		}
		secret__free(&cfg->product_secret);
		if(config__load_product_secret(cfg, err, errlen)) return -1;
	}else if(cfg->product_secret_file){
		text__error(err, errlen, "plugin_opt_product_secret_file: only used with plugin_opt_request_auth sign");
		return -1;
	}
	if(!cfg->check_product_key && !(cfg->check_product_key = strdup(cfg->product_key))) return -1;
	if(!cfg->sts_endpoint){
		/* as the official libraries: sts.aliyuncs.com, or by ALIBABA_CLOUD_STS_REGION (and
		 * ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED) */
		if(credentials__sts_endpoint(get_env, url, sizeof(url), err, errlen)) return -1;
		if(string__replace(&cfg->sts_endpoint, url)) return -1;
		if(endpoint__check("ALIBABA_CLOUD_STS_REGION", cfg->sts_endpoint, err, errlen)) return -1;
	}else if(endpoint__check("plugin_opt_sts_endpoint", cfg->sts_endpoint, err, errlen)){
		return -1;
	}
	if(!cfg->ecs_metadata_endpoint && string__replace(&cfg->ecs_metadata_endpoint, CREDENTIALS_DEFAULT_METADATA)) return -1;
	if(endpoint__check("plugin_opt_ecs_metadata_endpoint", cfg->ecs_metadata_endpoint, err, errlen)) return -1;
	if(config__finish_redis(cfg, err, errlen)) return -1;
	if(dynreg__finish_config(cfg, err, errlen)) return -1;
	return config__load_credentials(cfg, get_env, err, errlen);
}

/* The string fields of the configuration: every OPTION_STRING and OPTION_PATH row. */
static char **config__string_field(struct bootstrap_config *cfg, size_t i)
{
	if(options[i].kind != OPTION_STRING && options[i].kind != OPTION_PATH) return NULL;
	return (char **)((char *)cfg + options[i].offset);
}

struct bootstrap_config *config__snapshot(const struct bootstrap_config *cfg)
{
	struct bootstrap_config *copy = malloc(sizeof(*copy));

	if(!copy) return NULL;
	*copy = *cfg;
	/* the broker thread's alone: it checks requests */
	copy->product_secret = NULL;
	copy->products = NULL;
	copy->check_product_key = NULL;
	copy->redis_username = NULL; /* the Redis thread's */
	copy->redis_password = NULL;
	memset(&copy->creds, 0, sizeof(copy->creds));
	memset(&copy->creds_source, 0, sizeof(copy->creds_source));
	for(size_t i = 0; i < OPTION_COUNT; i++){
		char **field = config__string_field(copy, i);
		if(field && *field && !(*field = strdup(*field))){
			/* the rest still point into cfg: clear them before cleaning up */
			for(size_t j = i; j < OPTION_COUNT; j++){
				char **rest = config__string_field(copy, j);
				if(rest) *rest = NULL;
			}
			config__snapshot_free(copy);
			return NULL;
		}
	}
	if((cfg->check_product_key && !(copy->check_product_key = strdup(cfg->check_product_key)))
			|| credentials__copy(&copy->creds, &cfg->creds) || credentials__source_copy(&copy->creds_source, &cfg->creds_source)){
		config__snapshot_free(copy);
		return NULL;
	}
	return copy;
}

void config__snapshot_free(struct bootstrap_config *snapshot)
{
	if(!snapshot) return;
	config__cleanup(snapshot);
	free(snapshot);
}

void config__cleanup(struct bootstrap_config *cfg)
{
	for(size_t i = 0; i < OPTION_COUNT; i++){
		char **field = config__string_field(cfg, i);
		if(field) free(*field);
	}
	secret__free(&cfg->product_secret);
	products__free(cfg->products);
	free(cfg->check_product_key);
	secret__free(&cfg->redis_password);
	free(cfg->redis_username);
	credentials__cleanup(&cfg->creds);
	credentials__source_cleanup(&cfg->creds_source);
	memset(cfg, 0, sizeof(*cfg));
}

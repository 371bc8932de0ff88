/* Plugin options and platform credentials. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
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
#include "bootstrap_request.h"

#define DEFAULT_REGION "cn-shanghai"
#define DEFAULT_REQUEST_TOPIC "bootstrap/register"
#define DEFAULT_REPLY_TOPIC "bootstrap/reply/" REPLY_TOPIC_PLACEHOLDER
#define DEFAULT_MAX_INFLIGHT 64
#define DEFAULT_MAX_QUEUE 10000
#define DEFAULT_HTTP_TIMEOUT_MS 5000
#define DEFAULT_REQUEST_DEADLINE_MS 30000
/* The platform's per-account quotas (RegisterDevice 30/s, QueryDeviceDetail 50/s). */
#define DEFAULT_REGISTER_QPS 30.0
#define DEFAULT_QUERY_QPS 50.0
#define DEFAULT_BURST 1.0
#define DEFAULT_METRICS_INTERVAL_S 10 /* Mosquitto's own sys_interval default */
#define CREDENTIALS_FILE_MAX (64 * 1024)
#define OPTION_VALUE_MAX 1024

static void config__error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list va;

	if(!err || errlen == 0) return;
	va_start(va, fmt);
	vsnprintf(err, errlen, fmt, va);
	va_end(va);
}

void config__secret_free(char **s)
{
	if(*s){
		OPENSSL_cleanse(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

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

/* One of a fixed list of words: its index, which is the matching enum value (the lists are
 * in enum order), or -1 with err set. */
static int choice__parse(const char *key, const char *value, const char *const *names, char *err, size_t errlen)
{
	char list[128] = "";

	for(int i = 0; names[i]; i++){
		if(!strcmp(value, names[i])) return i;
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? (names[i+1] ? ", " : " or ") : "", names[i]);
	}
	config__error(err, errlen, "plugin_opt_%s: '%s' is not %s", key, value, list);
	return -1;
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

const char *const config__option_names[] = {
	"product_key", "region", "endpoint", "iot_instance_id", "credentials_file", "request_auth",
	"product_secret_file", "existing_devices", "acl", "ca_file", "request_topic", "reply_topic",
	"max_inflight", "max_queue", "http_timeout_ms", "request_deadline_ms", "register_qps",
	"register_burst", "query_qps", "query_burst", "strategy", "wakeup_port", "response_topic_prefix", "audit_file", "metrics_interval", "operator", "reply_encryption", NULL,
};

static bool option__known(const char *key)
{
	for(int i = 0; config__option_names[i]; i++){
		if(!strcmp(key, config__option_names[i])) return true;
	}
	return false;
}

void config__init(struct bootstrap_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_inflight = DEFAULT_MAX_INFLIGHT;
	cfg->max_queue = DEFAULT_MAX_QUEUE;
	cfg->http_timeout_ms = DEFAULT_HTTP_TIMEOUT_MS;
	cfg->request_deadline_ms = DEFAULT_REQUEST_DEADLINE_MS;
	cfg->metrics_interval = DEFAULT_METRICS_INTERVAL_S;
	cfg->register_qps = DEFAULT_REGISTER_QPS;
	cfg->register_burst = DEFAULT_BURST;
	cfg->query_qps = DEFAULT_QUERY_QPS;
	cfg->query_burst = DEFAULT_BURST;
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

/* ProductKey and IotInstanceId: short tokens of letters, digits, - and _. */
static bool token__valid(const char *s, size_t maxlen)
{
	size_t len = strlen(s);

	if(len == 0 || len > maxlen) return false;
	for(size_t i = 0; i < len; i++){
		if(!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_') return false;
	}
	return true;
}

int config__set(struct bootstrap_config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
	long n;

	if(!key || !value){
		config__error(err, errlen, "option without a value");
		return -1;
	}
	if(strlen(value) > OPTION_VALUE_MAX){
		config__error(err, errlen, "plugin_opt_%s: value longer than %d bytes", key, OPTION_VALUE_MAX);
		return -1;
	}
	if(!option__known(key)){
		if(!strcmp(key, "access_key_secret") || !strcmp(key, "access_key_id") || !strcmp(key, "security_token")
				|| !strcmp(key, "product_secret")){
			/* never echo the value: it is a secret somebody put in the wrong place */
			config__error(err, errlen, "plugin_opt_%s: credentials are never read from mosquitto.conf; "
					"use the ALIBABA_CLOUD_* environment, plugin_opt_credentials_file or plugin_opt_product_secret_file", key);
		}else{
			config__error(err, errlen, "plugin_opt_%s: unknown option", key);
		}
		return -1;
	}

	if(!strcmp(key, "product_key")){
		if(!token__valid(value, 64)){
			config__error(err, errlen, "plugin_opt_product_key: '%s' is not a ProductKey (letters, digits, - and _)", value);
			return -1;
		}
		return string__replace(&cfg->product_key, value);
	}else if(!strcmp(key, "region")){
		if(!region__valid(value)){
			config__error(err, errlen, "plugin_opt_region: '%s' is not a region id such as cn-shanghai", value);
			return -1;
		}
		return string__replace(&cfg->region, value);
	}else if(!strcmp(key, "endpoint")){
		/* checked in config__finish, where it is parsed as a URL */
		return string__replace(&cfg->endpoint, value);
	}else if(!strcmp(key, "iot_instance_id")){
		if(!token__valid(value, 64)){
			config__error(err, errlen, "plugin_opt_iot_instance_id: '%s' is not an instance id", value);
			return -1;
		}
		return string__replace(&cfg->iot_instance_id, value);
	}else if(!strcmp(key, "credentials_file")){
		if(value[0] != '/'){
			config__error(err, errlen, "plugin_opt_credentials_file: must be an absolute path");
			return -1;
		}
		return string__replace(&cfg->credentials_file, value);
	}else if(!strcmp(key, "request_deadline_ms")){
		if(number__parse(value, 100, 3600000, &n)){
			config__error(err, errlen, "plugin_opt_request_deadline_ms: '%s' is not a number from 100 to 3600000", value);
			return -1;
		}
		cfg->request_deadline_ms = n;
		return 0;
	}else if(!strcmp(key, "register_qps") || !strcmp(key, "query_qps")){
		double *dst = !strcmp(key, "register_qps") ? &cfg->register_qps : &cfg->query_qps;
		if(decimal__parse(value, 0.01, 10000.0, dst)){
			config__error(err, errlen, "plugin_opt_%s: '%s' is not a rate from 0.01 to 10000 calls per second", key, value);
			return -1;
		}
		return 0;
	}else if(!strcmp(key, "register_burst") || !strcmp(key, "query_burst")){
		double *dst = !strcmp(key, "register_burst") ? &cfg->register_burst : &cfg->query_burst;
		if(decimal__parse(value, 1.0, 10000.0, dst)){
			config__error(err, errlen, "plugin_opt_%s: '%s' is not a number of calls from 1 to 10000", key, value);
			return -1;
		}
		return 0;
	}else if(!strcmp(key, "wakeup_port")){
		if(number__parse(value, 0, 65535, &n)){
			config__error(err, errlen, "plugin_opt_wakeup_port: '%s' is not a port number", value);
			return -1;
		}
		cfg->wakeup_port = (int)n;
		return 0;
	}else if(!strcmp(key, "metrics_interval")){
		if(number__parse(value, 0, 86400, &n)){
			config__error(err, errlen, "plugin_opt_metrics_interval: '%s' is not a number of seconds from 0 to 86400", value);
			return -1;
		}
		cfg->metrics_interval = (int)n;
		return 0;
	}else if(!strcmp(key, "operator")){
		return string__replace(&cfg->operator_username, value);
	}else if(!strcmp(key, "audit_file")){
		if(value[0] != '/'){
			config__error(err, errlen, "plugin_opt_audit_file: must be an absolute path");
			return -1;
		}
		return string__replace(&cfg->audit_file, value);
	}else if(!strcmp(key, "ca_file")){
		if(value[0] != '/'){
			config__error(err, errlen, "plugin_opt_ca_file: must be an absolute path");
			return -1;
		}
		return string__replace(&cfg->ca_file, value);
	}else if(!strcmp(key, "product_secret_file")){
		if(value[0] != '/'){
			config__error(err, errlen, "plugin_opt_product_secret_file: must be an absolute path");
			return -1;
		}
		return string__replace(&cfg->product_secret_file, value);
	}else if(!strcmp(key, "request_auth")){
		static const char *const names[] = {"sign", "identity", "none", NULL};
		int i = choice__parse(key, value, names, err, errlen);
		if(i >= 0) cfg->request_auth = (enum request_auth)i;
		return i < 0 ? -1 : 0;
	}else if(!strcmp(key, "reply_encryption")){
		static const char *const names[] = {"on", "off", NULL};
		int i = choice__parse(key, value, names, err, errlen);
		if(i >= 0) cfg->reply_encryption = i == 0 ? REPLY_ENCRYPTION_ON : REPLY_ENCRYPTION_OFF;
		return i < 0 ? -1 : 0;
	}else if(!strcmp(key, "existing_devices")){
		static const char *const names[] = {"unactive", "always", "never", NULL};
		int i = choice__parse(key, value, names, err, errlen);
		if(i >= 0) cfg->existing_devices = (enum existing_devices)i;
		return i < 0 ? -1 : 0;
	}else if(!strcmp(key, "strategy")){
		static const char *const names[] = {"auto", "register_first", "query_first", NULL};
		int i = choice__parse(key, value, names, err, errlen);
		if(i >= 0) cfg->strategy = (enum flow_strategy)i;
		return i < 0 ? -1 : 0;
	}else if(!strcmp(key, "acl")){
		static const char *const names[] = {"strict", "defer", NULL};
		int i = choice__parse(key, value, names, err, errlen);
		if(i >= 0) cfg->acl = (enum acl_mode)i;
		return i < 0 ? -1 : 0;
	}else if(!strcmp(key, "request_topic")){
		if(!topic__valid(value)){
			config__error(err, errlen, "plugin_opt_request_topic: '%s' is not a topic without wildcards (+ #) or a leading $", value);
			return -1;
		}
		return string__replace(&cfg->request_topic, value);
	}else if(!strcmp(key, "reply_topic")){
		if(!topic__valid(value) || !request__reply_template_valid(value)){
			config__error(err, errlen, "plugin_opt_reply_topic: '%s' must be a topic without wildcards containing %s exactly once",
					value, REPLY_TOPIC_PLACEHOLDER);
			return -1;
		}
		return string__replace(&cfg->reply_topic, value);
	}else if(!strcmp(key, "response_topic_prefix")){
		if(!topic__valid(value)){
			config__error(err, errlen, "plugin_opt_response_topic_prefix: '%s' is not a topic without wildcards (+ #) or a leading $", value);
			return -1;
		}
		return string__replace(&cfg->response_topic_prefix, value);
	}else if(!strcmp(key, "max_inflight")){
		if(number__parse(value, 1, 1024, &n)){
			config__error(err, errlen, "plugin_opt_max_inflight: '%s' is not a number from 1 to 1024", value);
			return -1;
		}
		cfg->max_inflight = (int)n;
		return 0;
	}else if(!strcmp(key, "max_queue")){
		if(number__parse(value, 1, 1000000, &n)){
			config__error(err, errlen, "plugin_opt_max_queue: '%s' is not a number from 1 to 1000000", value);
			return -1;
		}
		cfg->max_queue = (int)n;
		return 0;
	}else if(!strcmp(key, "http_timeout_ms")){
		if(number__parse(value, 100, 120000, &n)){
			config__error(err, errlen, "plugin_opt_http_timeout_ms: '%s' is not a number from 100 to 120000", value);
			return -1;
		}
		cfg->http_timeout_ms = n;
		return 0;
	}
	/* a name in config__option_names without a branch above: a bug the unit test catches */
	config__error(err, errlen, "plugin_opt_%s: not handled", key);
	return -1;
}

bool config__host_is_loopback(const char *host)
{
	char buf[64];
	size_t len;
	struct in_addr v4;
	struct in6_addr v6;

	if(!host) return false;
	len = strlen(host);
	if(len >= sizeof(buf)) return false;
	if(len >= 2 && host[0] == '[' && host[len-1] == ']'){
		memcpy(buf, host+1, len-2);
		buf[len-2] = '\0';
	}else{
		memcpy(buf, host, len+1);
	}
	if(!strcasecmp(buf, "localhost")) return true;
	if(inet_pton(AF_INET, buf, &v4) == 1){
		return (ntohl(v4.s_addr) >> 24) == 127;
	}
	if(inet_pton(AF_INET6, buf, &v6) == 1){
		return IN6_IS_ADDR_LOOPBACK(&v6);
	}
	return false;
}

/* endpoint: https anywhere, http only to this machine; no path beyond "/" (the signature
 * covers "/"), no query, no user info. */
static int endpoint__check(const char *url, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *path = NULL, *query = NULL, *user = NULL;
	int rc = -1;

	if(!u){
		config__error(err, errlen, "plugin_opt_endpoint: out of memory");
		return -1;
	}
	if(curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK
			|| curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
			|| curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK){
		config__error(err, errlen, "plugin_opt_endpoint: '%s' is not a URL", url);
		goto done;
	}
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	curl_url_get(u, CURLUPART_QUERY, &query, 0);
	curl_url_get(u, CURLUPART_USER, &user, 0);
	if(strcmp(scheme, "https") && strcmp(scheme, "http")){
		config__error(err, errlen, "plugin_opt_endpoint: scheme '%s' is not https", scheme);
		goto done;
	}
	if(!strcmp(scheme, "http") && !config__host_is_loopback(host)){
		config__error(err, errlen, "plugin_opt_endpoint: http:// is only allowed for loopback hosts; use https:// for '%s'", host);
		goto done;
	}
	if((path && strcmp(path, "/") && strcmp(path, "")) || query || user){
		config__error(err, errlen, "plugin_opt_endpoint: must be scheme://host[:port]/ with no path, query or user");
		goto done;
	}
	rc = 0;
done:
	curl_free(scheme);
	curl_free(host);
	curl_free(path);
	curl_free(query);
	curl_free(user);
	curl_url_cleanup(u);
	return rc;
}

static char *string__trim(char *s)
{
	char *end;

	while(*s && isspace((unsigned char)*s)) s++;
	end = s + strlen(s);
	while(end > s && isspace((unsigned char)end[-1])) end--;
	*end = '\0';
	return s;
}

static int file__read_private(const char *option, const char *path, char **out, char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	ssize_t got;
	size_t total = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if(fd < 0){
		config__error(err, errlen, "plugin_opt_%s: cannot open %s: %s", option, path, strerror(errno));
		return -1;
	}
	if(fstat(fd, &st) || !S_ISREG(st.st_mode)){
		config__error(err, errlen, "plugin_opt_%s: %s is not a regular file", option, path);
		close(fd);
		return -1;
	}
	if(st.st_mode & (S_IRWXG | S_IRWXO)){
		config__error(err, errlen, "plugin_opt_%s: %s is accessible by group or others (mode %03o); chmod 600 it",
				option, path, (unsigned)(st.st_mode & 0777));
		close(fd);
		return -1;
	}
	if(st.st_size > CREDENTIALS_FILE_MAX){
		config__error(err, errlen, "plugin_opt_%s: %s is larger than %d bytes", option, path, CREDENTIALS_FILE_MAX);
		close(fd);
		return -1;
	}
	buf = malloc((size_t)st.st_size + 1);
	if(!buf){
		close(fd);
		return -1;
	}
	while(total < (size_t)st.st_size){
		got = read(fd, buf + total, (size_t)st.st_size - total);
		if(got <= 0) break;
		total += (size_t)got;
	}
	close(fd);
	buf[total] = '\0';
	*out = buf;
	return 0;
}

void config__credentials_cleanup(struct bootstrap_credentials *creds)
{
	config__secret_free(&creds->access_key_id);
	config__secret_free(&creds->access_key_secret);
	config__secret_free(&creds->security_token);
}

int config__load_credentials_file(struct bootstrap_credentials *creds, const char *path,
		const char *profile, char *err, size_t errlen)
{
	char *text = NULL, *line, *save = NULL;
	bool in_profile = false, seen_profile = false;
	int rc = -1;
	size_t textlen;

	if(file__read_private("credentials_file", path, &text, err, errlen)) return -1;
	textlen = strlen(text);

	for(line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)){
		char *l = string__trim(line), *eq, *k, *v;
		char **dst = NULL;

		if(l[0] == '\0' || l[0] == '#' || l[0] == ';') continue;
		if(l[0] == '['){
			size_t len = strlen(l);
			if(l[len-1] != ']') continue;
			l[len-1] = '\0';
			in_profile = !strcmp(string__trim(l+1), profile);
			seen_profile |= in_profile;
			continue;
		}
		if(!in_profile || !(eq = strchr(l, '='))) continue;
		*eq = '\0';
		k = string__trim(l);
		v = string__trim(eq+1);
		if(!strcmp(k, "access_key_id")) dst = &creds->access_key_id;
		else if(!strcmp(k, "access_key_secret")) dst = &creds->access_key_secret;
		else if(!strcmp(k, "security_token") || !strcmp(k, "sts_token")) dst = &creds->security_token;
		else if(!strcmp(k, "type") && strcmp(v, "access_key") && strcmp(v, "sts")){
			config__error(err, errlen, "plugin_opt_credentials_file: profile [%s] has type '%s'; only access_key and sts are supported",
					profile, v);
			goto done;
		}
		if(dst && v[0]){
			config__secret_free(dst);
			if(!(*dst = strdup(v))) goto done;
		}
	}
	if(!seen_profile){
		config__error(err, errlen, "plugin_opt_credentials_file: %s has no [%s] profile", path, profile);
		goto done;
	}
	if(!creds->access_key_id || !creds->access_key_secret){
		config__error(err, errlen, "plugin_opt_credentials_file: profile [%s] in %s lacks access_key_id or access_key_secret",
				profile, path);
		goto done;
	}
	rc = 0;
done:
	OPENSSL_cleanse(text, textlen);
	free(text);
	if(rc) config__credentials_cleanup(creds);
	return rc;
}

static int credentials__from_env(struct bootstrap_credentials *creds, config_getenv_fn get_env)
{
	const char *id = get_env("ALIBABA_CLOUD_ACCESS_KEY_ID");
	const char *secret = get_env("ALIBABA_CLOUD_ACCESS_KEY_SECRET");
	const char *token = get_env("ALIBABA_CLOUD_SECURITY_TOKEN");

	if(!id || !id[0] || !secret || !secret[0]) return 1;
	creds->access_key_id = strdup(id);
	creds->access_key_secret = strdup(secret);
	if(token && token[0]) creds->security_token = strdup(token);
	if(!creds->access_key_id || !creds->access_key_secret || (token && token[0] && !creds->security_token)){
		config__credentials_cleanup(creds);
		return -1;
	}
	return 0;
}

/* The ProductSecret: the first line of a private file. */
int config__load_product_secret(struct bootstrap_config *cfg, char *err, size_t errlen)
{
	char *text = NULL, *line;
	size_t textlen;
	int rc = -1;

	if(file__read_private("product_secret_file", cfg->product_secret_file, &text, err, errlen)) return -1;
	textlen = strlen(text);
	text[strcspn(text, "\r\n")] = '\0';
	line = string__trim(text);
	if(line[0] == '\0' || strlen(line) > 256){
		config__error(err, errlen, "plugin_opt_product_secret_file: %s does not hold a ProductSecret on its first line",
				cfg->product_secret_file);
	}else if(!(cfg->product_secret = strdup(line))){
		config__error(err, errlen, "out of memory");
	}else{
		rc = 0;
	}
	OPENSSL_cleanse(text, textlen);
	free(text);
	return rc;
}

int config__reload_credentials(const struct bootstrap_config *cfg, config_getenv_fn get_env,
		struct bootstrap_credentials *creds, char *err, size_t errlen)
{
	const char *profile = get_env("ALIBABA_CLOUD_PROFILE");
	const char *file = cfg->credentials_file;
	int rc;

	memset(creds, 0, sizeof(*creds));
	if(!profile || !profile[0]) profile = "default";
	if(file) return config__load_credentials_file(creds, file, profile, err, errlen);
	rc = credentials__from_env(creds, get_env);
	if(rc == 0) return 0;
	if(rc < 0){
		config__error(err, errlen, "out of memory reading credentials");
		return -1;
	}
	file = get_env("ALIBABA_CLOUD_CREDENTIALS_FILE");
	if(file && file[0]) return config__load_credentials_file(creds, file, profile, err, errlen);
	config__error(err, errlen, "no platform credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
			"ALIBABA_CLOUD_ACCESS_KEY_SECRET in the broker's environment, or plugin_opt_credentials_file");
	return -1;
}

int config__finish(struct bootstrap_config *cfg, config_getenv_fn get_env, char *err, size_t errlen)
{
	char url[256];

	if(!cfg->product_key){
		config__error(err, errlen, "plugin_opt_product_key: required, and not set");
		return -1;
	}
	if(!cfg->region && string__replace(&cfg->region, DEFAULT_REGION)) return -1;
	if(!cfg->request_topic && string__replace(&cfg->request_topic, DEFAULT_REQUEST_TOPIC)) return -1;
	if(!cfg->reply_topic && string__replace(&cfg->reply_topic, DEFAULT_REPLY_TOPIC)) return -1;
	if(!cfg->response_topic_prefix){
		/* the reply template up to its placeholder: bootstrap/reply/{deviceId} gives bootstrap/reply/ */
		size_t head = (size_t)(strstr(cfg->reply_topic, REPLY_TOPIC_PLACEHOLDER) - cfg->reply_topic);
		if(head == 0){
			config__error(err, errlen, "plugin_opt_response_topic_prefix: required when plugin_opt_reply_topic starts with %s",
					REPLY_TOPIC_PLACEHOLDER);
			return -1;
		}
		if(!(cfg->response_topic_prefix = strndup(cfg->reply_topic, head))) return -1;
	}
	if(!cfg->endpoint){
		snprintf(url, sizeof(url), "https://iot.%s.aliyuncs.com/", cfg->region);
		if(string__replace(&cfg->endpoint, url)) return -1;
	}
	if(endpoint__check(cfg->endpoint, err, errlen)) return -1;
	if(cfg->request_auth == REQUEST_AUTH_SIGN){
		if(!cfg->product_secret_file){
			config__error(err, errlen, "plugin_opt_request_auth: sign (the default) needs plugin_opt_product_secret_file; "
					"set plugin_opt_request_auth none to let any client register devices");
			return -1;
		}
		config__secret_free(&cfg->product_secret);
		if(config__load_product_secret(cfg, err, errlen)) return -1;
	}else if(cfg->product_secret_file){
		config__error(err, errlen, "plugin_opt_product_secret_file: only used with plugin_opt_request_auth sign");
		return -1;
	}
	if(cfg->reply_encryption == REPLY_ENCRYPTION_DEFAULT){
		cfg->reply_encryption = cfg->request_auth == REQUEST_AUTH_SIGN ? REPLY_ENCRYPTION_ON : REPLY_ENCRYPTION_OFF;
	}else if(cfg->reply_encryption == REPLY_ENCRYPTION_ON && cfg->request_auth != REQUEST_AUTH_SIGN){
		config__error(err, errlen, "plugin_opt_reply_encryption: on needs request_auth sign "
				"(the reply is sealed with a key derived from the ProductSecret)");
		return -1;
	}
	config__credentials_cleanup(&cfg->creds);
	return config__reload_credentials(cfg, get_env, &cfg->creds, err, errlen);
}

void config__cleanup(struct bootstrap_config *cfg)
{
	free(cfg->product_key);
	free(cfg->region);
	free(cfg->endpoint);
	free(cfg->iot_instance_id);
	free(cfg->credentials_file);
	free(cfg->ca_file);
	free(cfg->audit_file);
	free(cfg->operator_username);
	free(cfg->product_secret_file);
	config__secret_free(&cfg->product_secret);
	free(cfg->request_topic);
	free(cfg->reply_topic);
	free(cfg->response_topic_prefix);
	config__credentials_cleanup(&cfg->creds);
	memset(cfg, 0, sizeof(*cfg));
}

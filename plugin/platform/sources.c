/* Where platform credentials come from, and what each source says: the default chain of
 * Alibaba's credentials libraries (environment AccessKey, OIDC/RRSA, the INI profile, the ECS
 * RAM role, a credentials URI), their files and variables checked; and the readers of the
 * sources' answers (STS, the metadata service, a credentials URI). Pure. The chain is resolved
 * on the broker thread (start-up, SIGHUP); the answer readers run on the worker thread for the
 * provider (credentials.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "bootstrap_credentials.h"
#include "bootstrap_secret.h"
#include "bootstrap_text.h"

#define ROLE_NAME_MAX 64

void credentials__cleanup(struct bootstrap_credentials *creds)
{
	secret__free(&creds->access_key_id);
	secret__free(&creds->access_key_secret);
	secret__free(&creds->security_token);
}

static int string__copy(char **dst, const char *src)
{
	*dst = NULL;
	return src && !(*dst = strdup(src)) ? -1 : 0;
}

int credentials__copy(struct bootstrap_credentials *dst, const struct bootstrap_credentials *src)
{
	if(string__copy(&dst->access_key_id, src->access_key_id)
			| string__copy(&dst->access_key_secret, src->access_key_secret)
			| string__copy(&dst->security_token, src->security_token)){
		credentials__cleanup(dst);
		return -1;
	}
	return 0;
}

const char *credentials__kind_name(enum credentials_kind kind)
{
	switch(kind){
		case CREDENTIALS_STATIC: return "access key";
		case CREDENTIALS_RAM_ROLE_ARN: return "RAM role ARN (STS AssumeRole)";
		case CREDENTIALS_OIDC: return "OIDC role (STS AssumeRoleWithOIDC)";
		case CREDENTIALS_ECS_RAM_ROLE: return "ECS instance RAM role";
		case CREDENTIALS_URI: return "credentials URI";
	}
	return "?";
}

void credentials__source_cleanup(struct credentials_source *s)
{
	struct credentials_source *next = s->next;

	credentials__cleanup(&s->key);
	free(s->role_arn);
	free(s->role_session_name);
	free(s->oidc_provider_arn);
	free(s->oidc_token_file);
	free(s->role_name);
	free(s->uri);
	free(s->policy);
	free(s->external_id);
	free(s->skipped);
	memset(s, 0, sizeof(*s));
	while(next){
		struct credentials_source *n = next->next;
		next->next = NULL;
		credentials__source_cleanup(next);
		free(next);
		next = n;
	}
}

/* One source, without the rest of its chain. */
static int source__copy_one(struct credentials_source *dst, const struct credentials_source *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->kind = src->kind;
	dst->origin = src->origin;
	dst->duration_s = src->duration_s;
	dst->imdsv1_disabled = src->imdsv1_disabled;
	dst->role_from_env = src->role_from_env;
	if(credentials__copy(&dst->key, &src->key)
			| string__copy(&dst->role_arn, src->role_arn)
			| string__copy(&dst->role_session_name, src->role_session_name)
			| string__copy(&dst->oidc_provider_arn, src->oidc_provider_arn)
			| string__copy(&dst->oidc_token_file, src->oidc_token_file)
			| string__copy(&dst->role_name, src->role_name)
			| string__copy(&dst->uri, src->uri)
			| string__copy(&dst->policy, src->policy)
			| string__copy(&dst->external_id, src->external_id)
			| string__copy(&dst->skipped, src->skipped)){
		credentials__source_cleanup(dst);
		return -1;
	}
	return 0;
}

int credentials__source_copy(struct credentials_source *dst, const struct credentials_source *src)
{
	struct credentials_source **tail;

	if(source__copy_one(dst, src)) return -1;
	tail = &dst->next;
	for(const struct credentials_source *s = src->next; s; s = s->next){
		struct credentials_source *n = malloc(sizeof(*n));
		if(!n || source__copy_one(n, s)){
			free(n);
			credentials__source_cleanup(dst);
			return -1;
		}
		*tail = n;
		tail = &n->next;
	}
	return 0;
}

static const char *env__get(credentials_getenv_fn get_env, const char *name)
{
	const char *v = get_env(name);
	return v && v[0] ? v : NULL;
}

/* "true" in any case, as the official libraries compare (strings.ToLower(...) == "true") */
static bool env__true(credentials_getenv_fn get_env, const char *name)
{
	const char *v = env__get(get_env, name);
	return v && !strcasecmp(v, "true");
}

/* A RAM role name, as it goes into the metadata service's path: nothing that could change the
 * path (/ ? # %), at most 64 characters. */
static bool role_name__valid(const char *s, size_t len)
{
	if(len == 0 || len > ROLE_NAME_MAX) return false;
	for(size_t i = 0; i < len; i++){
		char c = s[i];
		if(!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_')) return false;
	}
	return true;
}

/* What each kind needs, checked once for every way of naming it. */
static int source__complete(const struct credentials_source *s, const char *where, char *err, size_t errlen)
{
	const char *missing = NULL;

	switch(s->kind){
		case CREDENTIALS_STATIC:
			if(!s->key.access_key_id || !s->key.access_key_secret) missing = "access_key_id or access_key_secret";
			break;
		case CREDENTIALS_RAM_ROLE_ARN:
			if(!s->key.access_key_id || !s->key.access_key_secret) missing = "access_key_id or access_key_secret";
			else if(!s->role_arn) missing = "role_arn";
			break;
		case CREDENTIALS_OIDC:
			if(!s->role_arn) missing = "role_arn";
			else if(!s->oidc_provider_arn) missing = "oidc_provider_arn";
			else if(!s->oidc_token_file) missing = "oidc_token_file_path";
			break;
		case CREDENTIALS_ECS_RAM_ROLE:
			break;
		case CREDENTIALS_URI:
			if(!s->uri) missing = "credentials_uri";
			break;
	}
	if(missing){
		text__error(err, errlen, "%s: %s lacks %s", where, credentials__kind_name(s->kind), missing);
		return -1;
	}
	return 0;
}

int credentials__load_ini(struct credentials_source *out, const char *label, const char *path,
		const char *profile, credentials_getenv_fn get_env, char *err, size_t errlen)
{
	char *text = NULL, *line, *save = NULL;
	bool in_profile = false, seen_profile = false, sts = false;
	char where[300];
	size_t textlen;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	out->origin = "credentials file";
	if(secret__read_file(label, path, true, &text, err, errlen)) return -1;
	textlen = strlen(text);
	for(line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)){
		char *l = secret__trim(line), *eq, *k, *v;
		char **dst = NULL;

		if(l[0] == '\0' || l[0] == '#' || l[0] == ';') continue;
		if(l[0] == '['){
			size_t len = strlen(l);
			if(l[len-1] != ']') continue;
			l[len-1] = '\0';
			in_profile = !strcmp(secret__trim(l+1), profile);
			seen_profile |= in_profile;
			continue;
		}
		if(!in_profile || !(eq = strchr(l, '='))) continue;
		*eq = '\0';
		k = secret__trim(l);
		v = secret__trim(eq+1);
		if(!strcmp(k, "type")){
			if(!strcmp(v, "access_key")) out->kind = CREDENTIALS_STATIC;
			else if(!strcmp(v, "sts")){
				out->kind = CREDENTIALS_STATIC;
				sts = true;
			}
			else if(!strcmp(v, "ram_role_arn")) out->kind = CREDENTIALS_RAM_ROLE_ARN;
			else if(!strcmp(v, "oidc_role_arn")) out->kind = CREDENTIALS_OIDC;
			else if(!strcmp(v, "ecs_ram_role")) out->kind = CREDENTIALS_ECS_RAM_ROLE;
			else if(!strcmp(v, "credentials_uri")) out->kind = CREDENTIALS_URI;
			else{
				/* the value is not echoed: a secret pasted on the wrong line must not reach a log */
				text__error(err, errlen, "%s: profile [%s] has an unsupported type; supported: access_key, sts, "
						"ram_role_arn, oidc_role_arn, ecs_ram_role, credentials_uri", label, profile);
				goto done;
			}
			continue;
		}
		if(!strcmp(k, "access_key_id")) dst = &out->key.access_key_id;
		else if(!strcmp(k, "access_key_secret")) dst = &out->key.access_key_secret;
		else if(!strcmp(k, "security_token") || !strcmp(k, "sts_token")) dst = &out->key.security_token;
		else if(!strcmp(k, "role_arn")) dst = &out->role_arn;
		else if(!strcmp(k, "role_session_name")) dst = &out->role_session_name;
		else if(!strcmp(k, "oidc_provider_arn")) dst = &out->oidc_provider_arn;
		else if(!strcmp(k, "oidc_token_file_path")) dst = &out->oidc_token_file;
		else if(!strcmp(k, "role_name")) dst = &out->role_name;
		else if(!strcmp(k, "credentials_uri")) dst = &out->uri;
		else if(!strcmp(k, "policy")) dst = &out->policy;
		else if(!strcmp(k, "external_id")) dst = &out->external_id;
		else if(!strcmp(k, "role_session_expiration")){
			char *end;
			out->duration_s = strtol(v, &end, 10);
			/* STS refuses less than 15 minutes, and so do the official libraries before asking */
			if(end == v || *end != '\0' || out->duration_s < CREDENTIALS_DURATION_MIN_S || out->duration_s > CREDENTIALS_DURATION_MAX_S){
				text__error(err, errlen, "%s: profile [%s]: role_session_expiration must be %d to %d seconds",
						label, profile, CREDENTIALS_DURATION_MIN_S, CREDENTIALS_DURATION_MAX_S);
				goto done;
			}
		}
		if(dst && v[0]){
			secret__free(dst);
			if(!(*dst = strdup(v))){
				text__error(err, errlen, "out of memory");
				goto done;
			}
		}
	}
	if(!seen_profile){
		text__error(err, errlen, "%s: %s has no [%s] profile", label, path, profile);
		goto done;
	}
	snprintf(where, sizeof(where), "%s: profile [%s] in %s", label, profile, path);
	if(source__complete(out, where, err, errlen)) goto done;
	if(sts && !out->key.security_token){
		text__error(err, errlen, "%s: type sts lacks security_token", where);
		goto done;
	}
	if(out->kind == CREDENTIALS_ECS_RAM_ROLE){
		/* the official ECS provider reads these however it is named */
		if(env__true(get_env, "ALIBABA_CLOUD_ECS_METADATA_DISABLED")){
			text__error(err, errlen, "%s: type ecs_ram_role, but ALIBABA_CLOUD_ECS_METADATA_DISABLED=true", where);
			goto done;
		}
		out->imdsv1_disabled = env__true(get_env, "ALIBABA_CLOUD_IMDSV1_DISABLED");
		/* environment variables name the role where the file does not, as the SDKs do */
		if(!out->role_name && env__get(get_env, "ALIBABA_CLOUD_ECS_METADATA")){
			if(!(out->role_name = strdup(env__get(get_env, "ALIBABA_CLOUD_ECS_METADATA")))) goto done;
			out->role_from_env = true;
		}
		if(out->role_name && !role_name__valid(out->role_name, strlen(out->role_name))){
			text__error(err, errlen, "%s: the ECS role name is not a RAM role name (letters, digits, . - _)", where);
			goto done;
		}
	}
	rc = 0;
done:
	OPENSSL_cleanse(text, textlen);
	free(text);
	if(rc) credentials__source_cleanup(out);
	return rc;
}

bool credentials__host_is_loopback(const char *host)
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

bool credentials__endpoint_allowed(const char *url, char *why, size_t whylen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL, *options = NULL;
	bool ok = false;

	if(!u){
		snprintf(why, whylen, "out of memory");
		return false;
	}
	/* libcurl's own parser: the host checked here is the host libcurl connects to */
	if(curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK
			|| curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
			|| curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK){
		/* not echoed: it may hold a password */
		snprintf(why, whylen, "is not a URL");
		goto done;
	}
	if(curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK || curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK
			|| curl_url_get(u, CURLUPART_OPTIONS, &options, 0) == CURLUE_OK){
		snprintf(why, whylen, "must not carry user info (user@ or user:password@)");
		goto done;
	}
	if(strcasecmp(scheme, "https") && strcasecmp(scheme, "http")){
		snprintf(why, whylen, "scheme '%.16s' is not https", scheme);
		goto done;
	}
	if(!strcasecmp(scheme, "http") && !credentials__host_is_loopback(host) && strcmp(host, CREDENTIALS_METADATA_HOST)){
		snprintf(why, whylen, "http:// is only allowed for loopback hosts and the ECS metadata service (" CREDENTIALS_METADATA_HOST
				"); use https:// for '%.100s'", host);
		goto done;
	}
	ok = true;
done:
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(password);
	curl_free(options);
	curl_url_cleanup(u);
	return ok;
}

/* A region id as it goes into a host name: lower-case letters, digits and '-'. */
static bool region__valid(const char *r)
{
	size_t len = strlen(r);

	if(len == 0 || len > 64) return false;
	for(size_t i = 0; i < len; i++){
		if(!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '-')) return false;
	}
	return true;
}

int credentials__sts_endpoint(credentials_getenv_fn get_env, char *out, size_t outlen, char *err, size_t errlen)
{
	const char *region = env__get(get_env, "ALIBABA_CLOUD_STS_REGION");

	if(!region){
		/* credentials-go: without a region, sts.aliyuncs.com whether or not VPC is asked for */
		snprintf(out, outlen, "%s", CREDENTIALS_DEFAULT_STS);
		return 0;
	}
	if(!region__valid(region)){
		text__error(err, errlen, "ALIBABA_CLOUD_STS_REGION: '%.64s' is not a region id such as cn-hangzhou", region);
		return -1;
	}
	snprintf(out, outlen, "https://%s.%s.aliyuncs.com/", env__true(get_env, "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED") ? "sts-vpc" : "sts", region);
	return 0;
}

/* A credentials URI goes where the operator said, or the broker does not start: no falling
 * through to another source that would hide the mistake. */
static int source__check_uri(const struct credentials_source *s, const char *name, char *err, size_t errlen)
{
	char why[200];

	if(s->kind != CREDENTIALS_URI || credentials__endpoint_allowed(s->uri, why, sizeof(why))) return 0;
	text__error(err, errlen, "%s: %s", name, why);
	return -1;
}

static void chain__free(struct credentials_source *head)
{
	if(!head) return;
	credentials__source_cleanup(head);
	free(head);
}

void credentials__note(char *notes, size_t len, const char *name, const char *why)
{
	size_t used = strlen(notes);

	if(used + 1 < len) snprintf(notes + used, len - used, "%s%s%s%s", used ? "; " : "", name, name[0] ? ": " : "", why);
}

/* A source left out at start-up: in the whole list (for the error when nothing is left) and
 * in the gap before the next source of the chain (which carries it in skipped). */
static void skip__note(char *notes, char *gap, const char *name, const char *why)
{
	credentials__note(notes, 512, name, why);
	credentials__note(gap, 512, name, why);
}

/* A new source at the chain's end, carrying the notes of the gap before it; NULL when out of
 * memory. */
static struct credentials_source *chain__add(struct credentials_source **tail, enum credentials_kind kind, const char *origin, char *gap)
{
	struct credentials_source *s = calloc(1, sizeof(*s));

	if(!s) return NULL;
	s->kind = kind;
	s->origin = origin;
	*tail = s;
	if(gap[0] && !(s->skipped = strdup(gap))) return NULL; /* linked: freed with the chain */
	gap[0] = '\0';
	return s;
}

int credentials__resolve(const char *credentials_file, credentials_getenv_fn get_env,
		struct credentials_source *out, char *err, size_t errlen)
{
	const char *profile = env__get(get_env, "ALIBABA_CLOUD_PROFILE");
	const char *file, *home, *label = NULL;
	struct credentials_source *head = NULL, **tail = &head, *s;
	char path[512], notes[512] = "", gap[512] = "", why[300];
	bool oom = false;

	memset(out, 0, sizeof(*out));
	if(!profile) profile = "default";
	if(credentials_file){
		if(credentials__load_ini(out, "plugin_opt_credentials_file", credentials_file, profile, get_env, err, errlen)) return -1;
		if(source__check_uri(out, "plugin_opt_credentials_file: credentials_uri", err, errlen)){
			credentials__source_cleanup(out);
			return -1;
		}
		return 0;
	}
	/* 1. the environment's AccessKey */
	if(env__get(get_env, "ALIBABA_CLOUD_ACCESS_KEY_ID") && env__get(get_env, "ALIBABA_CLOUD_ACCESS_KEY_SECRET")){
		if(!(s = chain__add(tail, CREDENTIALS_STATIC, "environment", gap))) goto oom;
		tail = &s->next;
		oom |= string__copy(&s->key.access_key_id, env__get(get_env, "ALIBABA_CLOUD_ACCESS_KEY_ID"))
			| string__copy(&s->key.access_key_secret, env__get(get_env, "ALIBABA_CLOUD_ACCESS_KEY_SECRET"))
			| string__copy(&s->key.security_token, env__get(get_env, "ALIBABA_CLOUD_SECURITY_TOKEN"));
	}else{
		skip__note(notes, gap, "environment", env__get(get_env, "ALIBABA_CLOUD_ACCESS_KEY_ID")
				? "ALIBABA_CLOUD_ACCESS_KEY_SECRET not set" : "not set");
	}
	/* 2. OIDC, as ACK's RRSA injects it */
	if(env__get(get_env, "ALIBABA_CLOUD_ROLE_ARN") && env__get(get_env, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN")
			&& env__get(get_env, "ALIBABA_CLOUD_OIDC_TOKEN_FILE")){
		if(!(s = chain__add(tail, CREDENTIALS_OIDC, "environment (OIDC)", gap))) goto oom;
		tail = &s->next;
		oom |= string__copy(&s->role_arn, env__get(get_env, "ALIBABA_CLOUD_ROLE_ARN"))
			| string__copy(&s->oidc_provider_arn, env__get(get_env, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN"))
			| string__copy(&s->oidc_token_file, env__get(get_env, "ALIBABA_CLOUD_OIDC_TOKEN_FILE"))
			| string__copy(&s->role_session_name, env__get(get_env, "ALIBABA_CLOUD_ROLE_SESSION_NAME"));
	}else{
		skip__note(notes, gap, "OIDC", "not set");
	}
	/* 3. the INI file: the one named, else ~/.alibabacloud/credentials if there is one; one
	 * that cannot be used is passed over, as the official chain does */
	file = env__get(get_env, "ALIBABA_CLOUD_CREDENTIALS_FILE");
	if(file){
		label = "ALIBABA_CLOUD_CREDENTIALS_FILE";
	}else if((home = env__get(get_env, "HOME")) && snprintf(path, sizeof(path), "%s/.alibabacloud/credentials", home) < (int)sizeof(path)
			&& access(path, F_OK) == 0){
		label = "~/.alibabacloud/credentials";
		file = path;
	}
	if(label){
		struct credentials_source loaded;
		if(credentials__load_ini(&loaded, label, file, profile, get_env, why, sizeof(why)) == 0){
			if(source__check_uri(&loaded, label, err, errlen)){
				credentials__source_cleanup(&loaded);
				chain__free(head);
				return -1;
			}
			if(!(s = malloc(sizeof(*s)))){
				credentials__source_cleanup(&loaded);
				goto oom;
			}
			*s = loaded;
			*tail = s;
			tail = &s->next;
			if(gap[0] && !(s->skipped = strdup(gap))) goto oom;
			gap[0] = '\0';
		}else{
			/* why begins with the label */
			skip__note(notes, gap, "credentials file", strncmp(why, label, strlen(label)) ? why : why + strlen(label) + 2);
		}
	}else{
		skip__note(notes, gap, "credentials file", "none");
	}
	/* 4. the ECS instance's RAM role: in the chain unless switched off; the role named, or asked
	 * of the metadata service */
	if(env__true(get_env, "ALIBABA_CLOUD_ECS_METADATA_DISABLED")){
		skip__note(notes, gap, "ECS", "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true");
	}else{
		const char *role = env__get(get_env, "ALIBABA_CLOUD_ECS_METADATA");
		if(role && !role_name__valid(role, strlen(role))){
			text__error(err, errlen, "ALIBABA_CLOUD_ECS_METADATA: not a RAM role name (letters, digits, . - _, at most %d)", ROLE_NAME_MAX);
			chain__free(head);
			return -1;
		}
		if(!(s = chain__add(tail, CREDENTIALS_ECS_RAM_ROLE, role ? "environment (ECS RAM role)" : "ECS metadata service (role discovered)", gap))) goto oom;
		tail = &s->next;
		s->imdsv1_disabled = env__true(get_env, "ALIBABA_CLOUD_IMDSV1_DISABLED");
		s->role_from_env = role != NULL;
		oom |= string__copy(&s->role_name, role);
	}
	/* 5. a credentials URI */
	if(env__get(get_env, "ALIBABA_CLOUD_CREDENTIALS_URI")){
		if(!(s = chain__add(tail, CREDENTIALS_URI, "environment (credentials URI)", gap))) goto oom;
		tail = &s->next;
		oom |= string__copy(&s->uri, env__get(get_env, "ALIBABA_CLOUD_CREDENTIALS_URI"));
		if(!oom && source__check_uri(s, "ALIBABA_CLOUD_CREDENTIALS_URI", err, errlen)){
			chain__free(head);
			return -1;
		}
	}
	if(oom) goto oom;
	if(!head){
		text__error(err, errlen, "no platform credentials (%s): set ALIBABA_CLOUD_ACCESS_KEY_ID and _SECRET "
				"(or another source of the default chain) or plugin_opt_credentials_file", notes);
		return -1;
	}
	/* the head moves into out; the rest stay linked from it */
	*out = *head;
	free(head);
	return 0;
oom:
	chain__free(head);
	text__error(err, errlen, "out of memory reading credentials");
	return -1;
}

/* ---- the provider ---- */

/* ---- what a source answers: read for the provider (worker thread) ---- */

/* "YYYY-MM-DDThh:mm:ssZ" to seconds since the epoch (UTC), or 0. */
static time_t time__parse_utc(const char *s)
{
	int y, mo, d, h, mi, se;
	char z = 0;
	long days;

	if(!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &se, &z) != 7 || z != 'Z') return 0;
	if(y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return 0;
	/* days from civil (Howard Hinnant's algorithm): no timegm() under strict POSIX */
	y -= mo <= 2;
	{
		long era = y / 400, yoe = y - era * 400;
		long doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
		long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
		days = era * 146097 + doe - 719468;
	}
	return (time_t)(days * 86400 + h * 3600 + mi * 60 + se);
}

static const char *json__string(const json_t *obj, const char *name)
{
	const json_t *v = json_object_get(obj, name);
	return json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) < 4096 ? json_string_value(v) : NULL;
}

const char *credentials__answer_code(const char *body, size_t len, char *shown, size_t shownlen)
{
	json_t *root = body ? json_loadb(body, len, 0, NULL) : NULL;
	const char *code = json__string(root, "Code");

	code = code ? text__escape(shown, shownlen, code) : NULL;
	json_decref(root);
	return code;
}

const char *credentials__read_role(const char *body, size_t len, char *name, size_t namelen)
{
	char raw[ROLE_NAME_MAX * 2];
	const char *role;
	size_t n = 0;

	/* the answer's first line, within its length: no terminator is trusted */
	while(n < len && body[n] != '\r' && body[n] != '\n' && body[n] != '\0') n++;
	if(n == 0 || n >= sizeof(raw)) return "the metadata service names no RAM role for this instance";
	memcpy(raw, body, n);
	raw[n] = '\0';
	role = secret__trim(raw);
	/* it goes into the next request's path: a RAM role name, or nothing */
	if(!role_name__valid(role, strlen(role)) || strlen(role) >= namelen){
		return "the metadata service named something that is not a RAM role name";
	}
	memcpy(name, role, strlen(role) + 1);
	return NULL;
}

/* STS nests them under "Credentials"; the metadata service and credential URIs give them flat,
 * with "Code":"Success". */
int credentials__read_answer(const char *body, size_t len, time_t now_s, struct bootstrap_credentials *out,
		time_t *expires_s, char *why, size_t whylen)
{
	json_t *root = json_loadb(body, len, 0, NULL), *c;
	const char *code, *id, *secret, *token, *expiration;
	struct bootstrap_credentials fresh = {0};
	time_t expires;
	int rc = -1;

	if(!json_is_object(root)){
		snprintf(why, whylen, "an unreadable answer");
		goto done;
	}
	c = json_object_get(root, "Credentials");
	if(!json_is_object(c)) c = root;
	code = json__string(root, "Code");
	if(code && strcmp(code, "Success")){
		char shown[64];
		snprintf(why, whylen, "answered %s", text__escape(shown, sizeof(shown), code));
		goto done;
	}
	id = json__string(c, "AccessKeyId");
	secret = json__string(c, "AccessKeySecret");
	token = json__string(c, "SecurityToken");
	expiration = json__string(c, "Expiration");
	expires = time__parse_utc(expiration);
	if(!id || !secret || !token || !expires){
		snprintf(why, whylen, "an answer without AccessKeyId, AccessKeySecret, SecurityToken and Expiration");
		goto done;
	}
	if(expires <= now_s + CREDENTIALS_EXPIRY_MARGIN_S){
		snprintf(why, whylen, "credentials that are already expired (Expiration %.24s)", expiration);
		goto done;
	}
	if(!(fresh.access_key_id = strdup(id)) || !(fresh.access_key_secret = strdup(secret)) || !(fresh.security_token = strdup(token))){
		credentials__cleanup(&fresh);
		snprintf(why, whylen, "out of memory");
		goto done;
	}
	*out = fresh;
	*expires_s = expires;
	rc = 0;
done:
	if(root){
		/* jansson frees without wiping: the secret and token copies in the tree first */
		const json_t *ct = json_is_object(json_object_get(root, "Credentials")) ? json_object_get(root, "Credentials") : root;
		const char *names[] = {"AccessKeySecret", "SecurityToken"};
		for(int i = 0; i < 2; i++){
			json_t *v = json_object_get(ct, names[i]);
			if(json_is_string(v)) OPENSSL_cleanse((void *)json_string_value(v), json_string_length(v));
		}
		json_decref(root);
	}
	return rc;
}

/* The credentials provider: fetches and renews temporary credentials (ECS RAM role, STS
 * AssumeRole and AssumeRoleWithOIDC, a credentials URI) as a state machine without I/O. It says
 * which request it wants sent and is fed the answer; it moves on along the chain (sources.c)
 * past a source that fails before it ever delivered. Worker thread only. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "bootstrap_credentials.h"
#include "bootstrap_platform.h"
#include "bootstrap_secret.h"

#define STS_API_VERSION "2015-04-01"
#define DEFAULT_SESSION_NAME "mosquitto-bootstrap"
#define IMDS_TOKEN_TTL_S 21600
#define IMDS_TIMEOUT_MS 1000

enum provider_stage {
	STAGE_IDLE = 0,
	STAGE_IMDS_TOKEN,  /* PUT /latest/api/token */
	STAGE_IMDS_ROLE,   /* GET .../security-credentials/ (the role's name) */
	STAGE_CREDENTIALS, /* the request that answers with credentials */
};

const char *credentials__state_name(enum credentials_state state)
{
	switch(state){
		case CREDENTIALS_FETCHING: return "fetching";
		case CREDENTIALS_FOUND: return "found";
		case CREDENTIALS_RENEWING: return "renewing";
		case CREDENTIALS_FAILING: return "failing";
		case CREDENTIALS_EXPIRED: return "expired";
	}
	return "?";
}

int credentials__provider_init(struct credentials_provider *cp, const struct credentials_source *source,
		const char *sts_endpoint, const char *metadata_endpoint)
{
	memset(cp, 0, sizeof(*cp));
	if((sts_endpoint && !(cp->sts_endpoint = strdup(sts_endpoint)))
			|| (metadata_endpoint && !(cp->metadata_endpoint = strdup(metadata_endpoint)))
			|| credentials__provider_reset(cp, source)){
		credentials__provider_cleanup(cp);
		return -1;
	}
	return 0;
}

const struct credentials_source *credentials__provider_source(const struct credentials_provider *cp)
{
	return cp->active ? cp->active : &cp->source;
}

/* New credentials: found, and nothing the platform said of the old ones holds for them. */
static void provider__changed(struct credentials_provider *cp)
{
	cp->generation++;
	cp->verdict = CREDENTIALS_UNTRIED;
	cp->refusal[0] = '\0';
}

void credentials__platform_answered(struct credentials_provider *cp, unsigned generation, bool accepted, const char *code)
{
	if(generation != cp->generation || !cp->current.access_key_id) return;
	cp->verdict = accepted ? CREDENTIALS_ACCEPTED : CREDENTIALS_REFUSED;
	snprintf(cp->refusal, sizeof(cp->refusal), "%s", accepted || !code ? "" : code);
}

/* The chain settles on the active source: the one line that says which, and why the ones
 * before it were passed over. */
static void provider__settle(struct credentials_provider *cp)
{
	const struct credentials_source *a = cp->active;

	cp->settled = true;
	snprintf(cp->chain, sizeof(cp->chain), "using %s (%s)%s%s", a->origin, credentials__kind_name(a->kind),
			cp->notes[0] ? "; skipped: " : "", cp->notes);
}

/* The chain starts over from its head: the notes of the sources left out at start-up. */
static void provider__restart(struct credentials_provider *cp)
{
	cp->active = &cp->source;
	cp->settled = false;
	snprintf(cp->notes, sizeof(cp->notes), "%s", cp->source.skipped ? cp->source.skipped : "");
}

/* Makes the active source's work start: an AccessKey is current at once. 0 or -1. */
static int provider__activate(struct credentials_provider *cp)
{
	const struct credentials_source *a = cp->active;

	cp->stage = STAGE_IDLE;
	secret__free(&cp->imds_token);
	free(cp->discovered_role);
	cp->discovered_role = NULL;
	if(a->kind == CREDENTIALS_STATIC){
		credentials__cleanup(&cp->current);
		if(credentials__copy(&cp->current, &a->key)) return -1;
		cp->expires_s = 0;
		cp->state = CREDENTIALS_FOUND;
		provider__changed(cp);
		cp->detail[0] = '\0';
		cp->attempt = 0;
		cp->next_attempt_ms = 0;
		provider__settle(cp);
	}else{
		/* what we have stays in use until the new source delivers; now is when it is due */
		cp->obtained_s = 0;
		cp->state = cp->current.access_key_id ? CREDENTIALS_RENEWING : CREDENTIALS_FETCHING;
	}
	return 0;
}

int credentials__provider_reset(struct credentials_provider *cp, const struct credentials_source *source)
{
	struct credentials_source copy;

	if(credentials__source_copy(&copy, source)) return -1;
	credentials__source_cleanup(&cp->source);
	cp->source = copy;
	cp->attempt = 0;
	cp->next_attempt_ms = 0;
	cp->chain[0] = '\0';
	provider__restart(cp);
	return provider__activate(cp);
}

void credentials__provider_cleanup(struct credentials_provider *cp)
{
	credentials__source_cleanup(&cp->source);
	credentials__cleanup(&cp->current);
	secret__free(&cp->imds_token);
	free(cp->discovered_role);
	free(cp->sts_endpoint);
	free(cp->metadata_endpoint);
	memset(cp, 0, sizeof(*cp));
}

const struct bootstrap_credentials *credentials__current(const struct credentials_provider *cp, time_t now_s)
{
	if(!cp->current.access_key_id) return NULL;
	if(cp->expires_s && now_s >= cp->expires_s - CREDENTIALS_EXPIRY_MARGIN_S) return NULL;
	return &cp->current;
}

bool credentials__renewable(const struct credentials_provider *cp)
{
	return credentials__provider_source(cp)->kind != CREDENTIALS_STATIC;
}

void credentials__refused_expired(struct credentials_provider *cp, time_t now_s)
{
	if(!cp->current.access_key_id || cp->expires_s == 0) return;
	if(cp->expires_s - CREDENTIALS_EXPIRY_MARGIN_S <= now_s) return; /* already expired for us */
	cp->expires_s = now_s + CREDENTIALS_EXPIRY_MARGIN_S;
}

/* When the current credentials are due for renewal: min(180 s, a third of their life) ahead.
 * A new source (obtained_s 0) is due at once. */
static time_t provider__renew_at(const struct credentials_provider *cp)
{
	time_t life, ahead;

	if(!cp->current.access_key_id || cp->obtained_s == 0) return 0;
	life = cp->expires_s - cp->obtained_s;
	ahead = life / 3 < CREDENTIALS_RENEW_AHEAD_S ? life / 3 : CREDENTIALS_RENEW_AHEAD_S;
	return cp->expires_s - ahead;
}

int64_t credentials__wait_ms(const struct credentials_provider *cp, time_t now_s, int64_t now_ms)
{
	int64_t wait;

	if(credentials__provider_source(cp)->kind == CREDENTIALS_STATIC || cp->in_flight) return -1;
	wait = cp->next_attempt_ms - now_ms;
	if(cp->stage == STAGE_IDLE){
		int64_t renew = ((int64_t)provider__renew_at(cp) - (int64_t)now_s) * 1000;
		if(renew > wait) wait = renew;
	}
	return wait < 0 ? 0 : wait;
}

static char *url__join(const char *base, const char *path)
{
	size_t blen = strlen(base);
	char *url;

	while(blen > 0 && base[blen - 1] == '/') blen--;
	url = malloc(blen + strlen(path) + 1);
	if(url){
		memcpy(url, base, blen);
		strcpy(url + blen, path);
	}
	return url;
}

static char *header__make(const char *name, const char *value)
{
	size_t len = strlen(name) + 2 + strlen(value) + 1;
	char *h = malloc(len);

	if(h) snprintf(h, len, "%s: %s", name, value);
	return h;
}

/* The STS call of the source: AssumeRole signed with its key, or AssumeRoleWithOIDC with the
 * token file read now (Kubernetes rotates it). */
static int request__sts(struct credentials_provider *cp, time_t now_s, struct credentials_http *req)
{
	const struct credentials_source *s = credentials__provider_source(cp);
	struct platform_param params[PLATFORM_MAX_PARAMS];
	char nonce[37], stamp[21], duration[24];
	char *token = NULL, *body;
	size_t n = 0;
	int rc = -1;

	if(platform__nonce(nonce)) return -1;
	platform__timestamp(now_s, stamp);
	snprintf(duration, sizeof(duration), "%ld", s->duration_s > 0 ? s->duration_s : (long)CREDENTIALS_DEFAULT_DURATION_S);
	params[n++] = (struct platform_param){"Format", "JSON"};
	params[n++] = (struct platform_param){"Version", STS_API_VERSION};
	params[n++] = (struct platform_param){"Timestamp", stamp};
	params[n++] = (struct platform_param){"SignatureNonce", nonce};
	params[n++] = (struct platform_param){"RoleArn", s->role_arn};
	params[n++] = (struct platform_param){"RoleSessionName", s->role_session_name ? s->role_session_name : DEFAULT_SESSION_NAME};
	params[n++] = (struct platform_param){"DurationSeconds", duration};
	if(s->policy) params[n++] = (struct platform_param){"Policy", s->policy};
	if(s->kind == CREDENTIALS_OIDC){
		if(secret__read_file("OIDC token file", s->oidc_token_file, false, &token, cp->detail, sizeof(cp->detail))) return -1;
		params[n++] = (struct platform_param){"Action", "AssumeRoleWithOIDC"};
		params[n++] = (struct platform_param){"OIDCProviderArn", s->oidc_provider_arn};
		params[n++] = (struct platform_param){"OIDCToken", secret__trim(token)};
	}else{
		params[n++] = (struct platform_param){"Action", "AssumeRole"};
		params[n++] = (struct platform_param){"AccessKeyId", s->key.access_key_id};
		params[n++] = (struct platform_param){"SignatureMethod", "HMAC-SHA1"};
		params[n++] = (struct platform_param){"SignatureVersion", "1.0"};
		if(s->key.security_token) params[n++] = (struct platform_param){"SecurityToken", s->key.security_token};
		if(s->external_id) params[n++] = (struct platform_param){"ExternalId", s->external_id};
	}
	/* AssumeRoleWithOIDC is anonymous: the OIDC token is the proof */
	body = platform__rpc_body(params, n, s->kind == CREDENTIALS_OIDC ? NULL : s->key.access_key_secret);
	if(!body) goto done;
	req->method = "POST";
	req->body = body;
	req->url = strdup(cp->sts_endpoint);
	rc = req->url ? 0 : -1;
done:
	if(token){
		OPENSSL_cleanse(token, strlen(token));
		free(token);
	}
	return rc;
}

bool credentials__want_request(struct credentials_provider *cp, time_t now_s, int64_t now_ms, struct credentials_http *req)
{
	const struct credentials_source *src = credentials__provider_source(cp);
	const char *role = src->role_name ? src->role_name : cp->discovered_role;
	char path[320];
	int rc = -1;

	memset(req, 0, sizeof(*req));
	if(src->kind == CREDENTIALS_STATIC || cp->in_flight || now_ms < cp->next_attempt_ms) return false;
	if(cp->stage == STAGE_IDLE){
		/* a source still being tried fetches now, whatever the current ones (a reload's) say */
		if(cp->settled && credentials__current(cp, now_s) && now_s < provider__renew_at(cp)) return false;
		cp->stage = src->kind == CREDENTIALS_ECS_RAM_ROLE ? STAGE_IMDS_TOKEN : STAGE_CREDENTIALS;
		if(cp->state == CREDENTIALS_FOUND) cp->state = CREDENTIALS_RENEWING;
		/* a session token and, unless named, the role's name per fetch, as the official
		 * libraries ask each time (a role attached anew is seen at the next renewal) */
		secret__free(&cp->imds_token);
		free(cp->discovered_role);
		cp->discovered_role = NULL;
		role = src->role_name;
	}
	switch(src->kind){
		case CREDENTIALS_STATIC:
			return false;
		case CREDENTIALS_RAM_ROLE_ARN:
		case CREDENTIALS_OIDC:
			rc = request__sts(cp, now_s, req);
			break;
		case CREDENTIALS_URI:
			req->method = "GET";
			rc = (req->url = strdup(src->uri)) ? 0 : -1;
			break;
		case CREDENTIALS_ECS_RAM_ROLE:
			if(cp->stage == STAGE_IMDS_TOKEN){
				char ttl[16];
				snprintf(ttl, sizeof(ttl), "%d", IMDS_TOKEN_TTL_S);
				req->method = "PUT";
				req->url = url__join(cp->metadata_endpoint, "/latest/api/token");
				req->headers[0] = header__make("X-aliyun-ecs-metadata-token-ttl-seconds", ttl);
				req->timeout_ms = IMDS_TIMEOUT_MS;
				rc = req->url && req->headers[0] ? 0 : -1;
				break;
			}
			if(cp->stage == STAGE_IMDS_ROLE || !role){
				cp->stage = STAGE_IMDS_ROLE;
				snprintf(path, sizeof(path), "/latest/meta-data/ram/security-credentials/");
			}else{
				snprintf(path, sizeof(path), "/latest/meta-data/ram/security-credentials/%s", role);
			}
			req->method = "GET";
			req->url = url__join(cp->metadata_endpoint, path);
			req->timeout_ms = IMDS_TIMEOUT_MS;
			/* no session token: IMDSv1, as the official libraries fall back unless it is disabled */
			if(cp->imds_token) req->headers[0] = header__make("X-aliyun-ecs-metadata-token", cp->imds_token);
			rc = req->url && (!cp->imds_token || req->headers[0]) ? 0 : -1;
			break;
	}
	if(rc){
		credentials__http_free(req);
		credentials__on_answer(cp, 0, NULL, 0, cp->detail[0] ? cp->detail : "the request could not be built", now_s, now_ms);
		return false;
	}
	cp->in_flight = true;
	return true;
}

void credentials__http_free(struct credentials_http *req)
{
	free(req->url);
	if(req->body){
		OPENSSL_cleanse(req->body, strlen(req->body)); /* a signed body or an OIDC token */
		free(req->body);
	}
	for(size_t i = 0; req->headers[i]; i++) secret__free(&req->headers[i]);
	memset(req, 0, sizeof(*req));
}

/* A failed step. A source the chain has not settled on is passed over for the next one at
 * once, as the official chain moves on; when none is left (or the chain has settled) the whole
 * fetch starts over after a backoff (1 s, 2 s, 4 s ... at most 60 s). True when the current
 * credentials changed (the next source is an AccessKey). */
static bool provider__failed(struct credentials_provider *cp, const char *why, time_t now_s, int64_t now_ms)
{
	int64_t delay_s;
	unsigned generation = cp->generation;
	char last[160];

	snprintf(last, sizeof(last), "%s", why);
	snprintf(cp->detail, sizeof(cp->detail), "%s", last);
	cp->stage = STAGE_IDLE;
	if(!cp->settled){
		const struct credentials_source *a = cp->active;
		char name[96];
		snprintf(name, sizeof(name), "%s (%s)", a->origin, credentials__kind_name(a->kind));
		credentials__note(cp->notes, sizeof(cp->notes), name, cp->detail);
		if(a->next){
			if(a->next->skipped) credentials__note(cp->notes, sizeof(cp->notes), "", a->next->skipped);
			cp->active = a->next;
			cp->next_attempt_ms = now_ms;
			/* out of memory installing a key: the backoff below tries the chain again */
			if(provider__activate(cp) == 0) return cp->generation != generation;
		}
		if(cp->source.next){
			/* every source failed: all of them are named, once per round */
			snprintf(cp->chain, sizeof(cp->chain), "no source of the chain delivered: %s", cp->notes);
			snprintf(cp->detail, sizeof(cp->detail), "no source of the chain delivered (last: %.50s: %.60s)", name, last);
		}
		provider__restart(cp);
	}
	cp->attempt++;
	delay_s = cp->attempt >= 7 ? CREDENTIALS_RETRY_MAX_S : (int64_t)1 << (cp->attempt - 1);
	if(delay_s > CREDENTIALS_RETRY_MAX_S) delay_s = CREDENTIALS_RETRY_MAX_S;
	cp->next_attempt_ms = now_ms + delay_s * 1000;
	if(credentials__current(cp, now_s)) cp->state = CREDENTIALS_FAILING;
	else cp->state = cp->generation > 0 ? CREDENTIALS_EXPIRED : CREDENTIALS_FETCHING;
	return false;
}

/* A session token as it goes into a header: printable, no white space. */
static bool imds_token__valid(const char *t, size_t len)
{
	if(len == 0 || len > 512) return false;
	for(size_t i = 0; i < len; i++){
		if(t[i] <= ' ' || t[i] > '~') return false;
	}
	return true;
}

bool credentials__on_answer(struct credentials_provider *cp, long status, const char *body, size_t len,
		const char *error, time_t now_s, int64_t now_ms)
{
	const struct credentials_source *src = credentials__provider_source(cp);
	struct bootstrap_credentials fresh = {0};
	time_t expires;
	char why[160];

	cp->in_flight = false;
	if(error || status != 200 || !body){
		if(cp->stage == STAGE_IMDS_TOKEN && !src->imdsv1_disabled){
			/* no session token: on without one (IMDSv1), as the official libraries do unless
			 * ALIBABA_CLOUD_IMDSV1_DISABLED=true */
			secret__free(&cp->imds_token);
			cp->stage = (src->role_name || cp->discovered_role) ? STAGE_CREDENTIALS : STAGE_IMDS_ROLE;
			return false;
		}
		if(error){
			snprintf(why, sizeof(why), "%s", error);
		}else{
			/* an STS refusal names its Code: worth seeing in the log */
			char shown[64];
			const char *code = credentials__answer_code(body, len, shown, sizeof(shown));
			snprintf(why, sizeof(why), "HTTP %ld%s%s", status, code ? " " : "", code ? code : "");
		}
		return provider__failed(cp, why, now_s, now_ms);
	}
	switch(cp->stage){
		case STAGE_IMDS_TOKEN: {
			size_t n = len;
			secret__free(&cp->imds_token);
			/* it goes into a header: nothing that could end the line */
			while(n > 0 && (body[n-1] == '\n' || body[n-1] == '\r' || body[n-1] == ' ')) n--;
			if(!imds_token__valid(body, n) || !(cp->imds_token = strndup(body, n))){
				return provider__failed(cp, "the metadata service gave no usable session token", now_s, now_ms);
			}
			cp->stage = (src->role_name || cp->discovered_role) ? STAGE_CREDENTIALS : STAGE_IMDS_ROLE;
			return false;
		}
		case STAGE_IMDS_ROLE: {
			char name[128];
			const char *bad = credentials__read_role(body, len, name, sizeof(name));
			if(bad) return provider__failed(cp, bad, now_s, now_ms);
			free(cp->discovered_role);
			if(!(cp->discovered_role = strdup(name))){
				return provider__failed(cp, "out of memory", now_s, now_ms);
			}
			cp->stage = STAGE_CREDENTIALS;
			return false;
		}
		default:
			break;
	}
	if(credentials__read_answer(body, len, now_s, &fresh, &expires, cp->detail, sizeof(cp->detail))){
		return provider__failed(cp, cp->detail, now_s, now_ms);
	}
	credentials__cleanup(&cp->current);
	cp->current = fresh;
	cp->obtained_s = now_s;
	cp->expires_s = expires;
	if(!cp->settled) provider__settle(cp);
	cp->stage = STAGE_IDLE;
	cp->attempt = 0;
	cp->next_attempt_ms = 0;
	cp->state = CREDENTIALS_FOUND;
	cp->detail[0] = '\0';
	provider__changed(cp);
	return true;
}

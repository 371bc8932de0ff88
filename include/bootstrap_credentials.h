#ifndef BOOTSTRAP_CREDENTIALS_H
#define BOOTSTRAP_CREDENTIALS_H
/* Platform credentials, found and kept fresh the way Alibaba's credentials libraries do.
 *
 * Where they come from (credentials__resolve, pure: environment and files only, on the broker
 * thread at start-up and SIGHUP): plugin_opt_credentials_file alone when set; else the default
 * chain, in the official order: environment AccessKey, OIDC (RRSA), the INI file, the ECS
 * instance RAM role (unless ALIBABA_CLOUD_ECS_METADATA_DISABLED=true), a credentials URI. The
 * chain is a list of sources: the provider tries them in turn at run time, moves on past one
 * that fails before it ever delivered, and keeps the first that works.
 *
 * Keeping them fresh (struct credentials_provider, the worker thread only): temporary
 * credentials are fetched and renewed ahead of expiry over HTTP. The provider is a state
 * machine without I/O: it says which request to send, the worker sends it with its HTTP client
 * and feeds the answer back. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct bootstrap_credentials {
	char *access_key_id;
	char *access_key_secret;
	char *security_token; /* NULL unless temporary (STS) credentials */
};

void credentials__cleanup(struct bootstrap_credentials *creds);
/* Deep copy. 0 or -1 (dst left empty). */
int credentials__copy(struct bootstrap_credentials *dst, const struct bootstrap_credentials *src);

enum credentials_kind {
	CREDENTIALS_STATIC = 0,   /* an AccessKey (with an STS token if given): never renewed */
	CREDENTIALS_RAM_ROLE_ARN, /* STS AssumeRole, signed with the AccessKey in key */
	CREDENTIALS_OIDC,         /* STS AssumeRoleWithOIDC with the token in oidc_token_file (RRSA) */
	CREDENTIALS_ECS_RAM_ROLE, /* the ECS metadata service (IMDSv2) */
	CREDENTIALS_URI,          /* GET uri */
};

struct credentials_source {
	enum credentials_kind kind;
	const char *origin;              /* for logs: "environment", "credentials file", ... (static text) */
	struct bootstrap_credentials key; /* STATIC: the credentials; RAM_ROLE_ARN: who assumes the role */
	char *role_arn;                  /* RAM_ROLE_ARN, OIDC */
	char *role_session_name;         /* RAM_ROLE_ARN, OIDC */
	char *oidc_provider_arn;         /* OIDC */
	char *oidc_token_file;           /* OIDC: re-read at every renewal (Kubernetes rotates it) */
	char *role_name;                 /* ECS_RAM_ROLE; NULL: ask the metadata service */
	char *uri;                       /* URI */
	long duration_s;                 /* STS DurationSeconds: 0 (3600) or CREDENTIALS_DURATION_MIN..MAX */
	char *policy;                    /* RAM_ROLE_ARN, OIDC: STS Policy (INI `policy`), or NULL */
	char *external_id;               /* RAM_ROLE_ARN: STS ExternalId (INI `external_id`), or NULL */
	bool imdsv1_disabled;            /* ECS_RAM_ROLE: ALIBABA_CLOUD_IMDSV1_DISABLED=true */
	bool role_from_env;              /* ECS_RAM_ROLE: role_name came from ALIBABA_CLOUD_ECS_METADATA */
	struct credentials_source *next; /* the chain: tried when this one fails before delivering */
	char *skipped;                   /* the sources left out at start-up just before this one, and why (no secret) */
};

typedef const char *(*credentials_getenv_fn)(const char *name);

/* Where the credentials come from. credentials_file (plugin_opt_credentials_file) is used
 * alone when set; else the default chain (out is its head, the rest hang from next). A source
 * that is incomplete or unreadable is left out with a note in out->skipped, as the official
 * chain moves on past it (each source's skipped names those left out just before it); a
 * credentials URI that fails credentials__endpoint_allowed is an error (credentials go only where the operator said). 0, or -1 with err naming what is
 * missing or wrong (never a secret). */
int credentials__resolve(const char *credentials_file, credentials_getenv_fn get_env,
		struct credentials_source *out, char *err, size_t errlen);
/* The STS endpoint when plugin_opt_sts_endpoint is not set, as the official libraries pick it:
 * https://sts.aliyuncs.com/; ALIBABA_CLOUD_STS_REGION gives sts.<region>.aliyuncs.com, with
 * ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED=true sts-vpc.<region>.aliyuncs.com. 0, or -1 (a region
 * that is not a region id) with err naming the variable. */
int credentials__sts_endpoint(credentials_getenv_fn get_env, char *out, size_t outlen, char *err, size_t errlen);
/* Where a credential may be sent (the platform endpoint, STS, the metadata service, a
 * credentials URI: one rule for all): https anywhere; http only to a loopback host
 * (127.0.0.0/8, ::1, localhost) or the ECS metadata service's documented address
 * 100.100.100.200; never with user info. False with why (never the URL's user info). */
bool credentials__endpoint_allowed(const char *url, char *why, size_t whylen);
bool credentials__host_is_loopback(const char *host);
/* One profile of an Alibaba Cloud credentials INI file (mode 0600): type access_key (or sts),
 * ram_role_arn, oidc_role_arn, ecs_ram_role, credentials_uri. label names the file's origin
 * in errors. 0 or -1. */
int credentials__load_ini(struct credentials_source *out, const char *label, const char *path,
		const char *profile, credentials_getenv_fn get_env, char *err, size_t errlen);
void credentials__source_cleanup(struct credentials_source *source);
int credentials__source_copy(struct credentials_source *dst, const struct credentials_source *src);
const char *credentials__kind_name(enum credentials_kind kind);
/* "; name: why" at the end of notes (just why when name is ""), cut to fit len. */
void credentials__note(char *notes, size_t len, const char *name, const char *why);

/* ---- what a source answers (sources.c): pure, read for the provider ---- */

/* Temporary credentials from an answer's body: 0 with *out (malloc'd strings) and *expires_s
 * set, or -1 with why (never a secret) when it is unreadable, incomplete or already expired at
 * now_s. The secrets in the parsed tree are wiped before it is freed. */
int credentials__read_answer(const char *body, size_t len, time_t now_s, struct bootstrap_credentials *out,
		time_t *expires_s, char *why, size_t whylen);
/* The Code of a refusal's JSON body, escaped into shown; NULL when there is none. */
const char *credentials__answer_code(const char *body, size_t len, char *shown, size_t shownlen);
/* The RAM role the metadata service names (its answer's first line, trimmed) into name: NULL,
 * or the sentence saying why there is none (it goes into a URL path: a role name or nothing). */
const char *credentials__read_role(const char *body, size_t len, char *name, size_t namelen);

/* ---- the provider (credentials.c): worker thread only ---- */

enum credentials_state {
	CREDENTIALS_FETCHING = 0, /* none yet: the first fetch is under way or retried */
	CREDENTIALS_FOUND,        /* current, renewal not due (whether the platform takes them: verdict) */
	CREDENTIALS_RENEWING,     /* current, a renewal under way */
	CREDENTIALS_FAILING,      /* still current, but renewing them fails: retried with backoff */
	CREDENTIALS_EXPIRED,      /* none valid, and fetching fails: platform calls wait */
};

/* What the platform said of the current credentials: found ones are only found until a call
 * signed with them is answered (credentials__platform_answered). */
enum credentials_verdict {
	CREDENTIALS_UNTRIED = 0, /* no call signed with them answered yet */
	CREDENTIALS_ACCEPTED,    /* the platform authenticated a call signed with them */
	CREDENTIALS_REFUSED,     /* it refused their signature, AccessKey id or STS token: refusal has its code */
};

/* One HTTP request the provider wants sent; free with credentials__http_free(). */
struct credentials_http {
	const char *method;
	char *url;
	char *body;          /* NULL: none (form-urlencoded when set) */
	char *headers[3];    /* "Name: value" lines, NULL-terminated */
	long timeout_ms;     /* the metadata service answers within 1 s, as the official libraries wait */
};

struct credentials_provider {
	struct credentials_source source;
	char *sts_endpoint;      /* plugin_opt_sts_endpoint, else credentials__sts_endpoint() */
	char *metadata_endpoint; /* http://100.100.100.200 or plugin_opt_ecs_metadata_endpoint */
	struct bootstrap_credentials current;
	time_t expires_s;        /* 0: never (static) */
	time_t obtained_s;
	enum credentials_state state;
	int stage;               /* within a fetch: the metadata service takes two or three requests */
	char *imds_token;        /* IMDSv2 session token */
	char *discovered_role;
	const struct credentials_source *active; /* in source's chain: the one in use or being tried */
	bool settled;            /* active delivered once: the chain no longer moves on (as credentials-go's lastUsedProvider) */
	char chain[512];         /* which source won and why the ones before it were skipped (no secret) */
	char notes[400];         /* while the chain moves: the sources skipped so far and why */
	bool in_flight;
	int64_t next_attempt_ms; /* monotonic; when the next fetch or retry may start */
	int attempt;             /* failed attempts in a row */
	unsigned generation;     /* bumped whenever current changes */
	char detail[160];        /* why the last fetch failed (no secret), for logs and metrics */
	enum credentials_verdict verdict; /* the platform's, on current: UNTRIED again at every change */
	char refusal[64];        /* the platform's code when it refused them */
};

/* Starts with source (copied). Static credentials are current at once. 0 or -1. */
int credentials__provider_init(struct credentials_provider *cp, const struct credentials_source *source,
		const char *sts_endpoint, const char *metadata_endpoint);
/* The source of the chain in use, or being tried. cp->chain says, once one delivered (or every
 * one failed), which and why the ones before it were skipped. For logs; no secret. */
const struct credentials_source *credentials__provider_source(const struct credentials_provider *cp);
/* Takes a new source (SIGHUP): the current credentials stay in use until the new ones come,
 * unless the new source is static. 0 or -1 (the old source stays). */
int credentials__provider_reset(struct credentials_provider *cp, const struct credentials_source *source);
void credentials__provider_cleanup(struct credentials_provider *cp);

/* Whether a request should go out now; fills req. */
bool credentials__want_request(struct credentials_provider *cp, time_t now_s, int64_t now_ms, struct credentials_http *req);
void credentials__http_free(struct credentials_http *req);
/* The answer to the last request (status 0 and error set: the transfer failed). True when
 * the current credentials changed. */
bool credentials__on_answer(struct credentials_provider *cp, long status, const char *body, size_t len,
		const char *error, time_t now_s, int64_t now_ms);
/* The platform answered that the current STS token has expired (InvalidSecurityToken.Expired)
 * although our clock gave it time left: it is treated as expired at now_s, so no call is signed
 * with it and a renewal starts at once. Static credentials do not expire: nothing changes. */
void credentials__refused_expired(struct credentials_provider *cp, time_t now_s);
/* Whether the provider renews its credentials by itself (an STS source, not a static key). */
bool credentials__renewable(const struct credentials_provider *cp);
/* The credentials to sign with at now, or NULL when none are valid. */
const struct bootstrap_credentials *credentials__current(const struct credentials_provider *cp, time_t now_s);
/* Milliseconds until the provider wants to send something (renewal or retry); -1 never. */
int64_t credentials__wait_ms(const struct credentials_provider *cp, time_t now_s, int64_t now_ms);
const char *credentials__state_name(enum credentials_state state);
/* The platform answered a call signed with the credentials of generation: it accepted them, or
 * refused them with code. An answer about credentials since replaced says nothing. */
void credentials__platform_answered(struct credentials_provider *cp, unsigned generation, bool accepted, const char *code);

/* Renewal starts when this much of the lifetime is left: min(180 s, a third of it), as
 * credentials-go renews at 180 s. Credentials are not used in their last seconds. */
#define CREDENTIALS_RENEW_AHEAD_S 180
#define CREDENTIALS_EXPIRY_MARGIN_S 2
#define CREDENTIALS_DEFAULT_DURATION_S 3600
#define CREDENTIALS_RETRY_MAX_S 60
#define CREDENTIALS_HTTP_TIMEOUT_MS 5000
#define CREDENTIALS_DEFAULT_METADATA "http://100.100.100.200"
#define CREDENTIALS_METADATA_HOST "100.100.100.200"
#define CREDENTIALS_DEFAULT_STS "https://sts.aliyuncs.com/"
/* STS DurationSeconds: at least 15 minutes (the official libraries refuse less), at most the
 * 12 hours a role's MaxSessionDuration can allow */
#define CREDENTIALS_DURATION_MIN_S 900
#define CREDENTIALS_DURATION_MAX_S 43200

#endif

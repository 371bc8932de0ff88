#ifndef BOOTSTRAP_CONFIG_H
#define BOOTSTRAP_CONFIG_H
/* Plugin configuration: plugin_opt_* options and the platform credentials.
 *
 * Use: config__init(), config__set() for every option, then config__finish(), which checks
 * what is required and loads the credentials. Every failing call writes one sentence that
 * names the option and why into err. Nothing here logs, and no secret is ever copied into err.
 *
 * Ownership: the plugin's struct bootstrap_config belongs to the broker thread, which reads
 * options there and rewrites the credentials, the ProductSecret and the products on SIGHUP.
 * The worker never sees it: it works from its own config__snapshot(), handed over whole,
 * which holds no ProductSecret and no products (jobs carry their own ProductKey).
 */
#include <stdbool.h>
#include <stddef.h>

#include "bootstrap_actions.h"
#include "bootstrap_auth.h"
#include "bootstrap_credentials.h"
#include "bootstrap_identity.h"
#include "bootstrap_products.h"

#define CONFIG_ERR_LEN 256

/* How a request proves it may bootstrap its deviceId. */
enum request_auth {
	REQUEST_AUTH_SIGN = 0, /* HMAC with the ProductSecret, as Alibaba's dynamic registration */
	REQUEST_AUTH_IDENTITY, /* the deviceId is what the verified client certificate names (never a bare username) */
	REQUEST_AUTH_NONE,     /* anyone: only when configured explicitly */
};

/* Which call a new request starts with. */
enum flow_strategy {
	STRATEGY_AUTO = 0,        /* by the recent share of devices that already exist */
	STRATEGY_REGISTER_FIRST,  /* RegisterDevice, QueryDeviceDetail when the name is taken */
	STRATEGY_QUERY_FIRST,     /* QueryDeviceDetail, RegisterDevice when there is no such device */
};

/* Whose triple a device that already exists on the platform gets. */
enum existing_devices {
	EXISTING_UNACTIVE = 0, /* only while it has never connected (Status UNACTIVE) */
	EXISTING_ALWAYS,
	EXISTING_NEVER,
};

/* Whether a success reply carries the triple sealed with a key derived from the ProductSecret. */
enum reply_encryption {
	REPLY_ENCRYPTION_DEFAULT = 0, /* not set: config__finish makes it ON with sign, else OFF */
	REPLY_ENCRYPTION_ON,
	REPLY_ENCRYPTION_OFF,         /* in the clear: for listeners where every device uses TLS */
};

/* Which devices may bootstrap. */
enum registration_mode {
	REGISTRATION_OPEN = 0,      /* any deviceId: new ones are registered */
	REGISTRATION_PREREGISTERED, /* only devices created on the platform in advance */
};

/* Link SDK MQTT dynamic registration (docs/link-sdk.md): off unless asked for. */
enum dynreg_mode {
	DYNREG_OFF = 0,
	DYNREG_ON,
};
#define DYNREG_PORTS_MAX 8

/* Whether waiting requests are coalesced into the platform's batch actions. */
enum batching_mode {
	BATCHING_AUTO = 0, /* whenever that beats single calls */
	BATCHING_OFF,
};

/* How platform requests are signed. */
enum signature_version {
	SIGNATURE_V3 = 0, /* ACS3-HMAC-SHA256: Authorization and x-acs-* headers, as Alibaba's current SDKs */
	SIGNATURE_V1,     /* RPC signature 1.0 (HMAC-SHA1) in the form body, for gateways that need it */
};


struct bootstrap_config {
	/* the one product, or with products_file the default one for requests that name none
	 * (NULL: they must name one) */
	char *product_key;
	char *region;
	char *endpoint;          /* after config__finish: the URL requests go to */
	char *iot_instance_id;   /* NULL: not sent */
	enum signature_version signature_version;
	char *credentials_file;  /* NULL: environment */
	char *ca_file;           /* extra CA bundle for the platform's certificate, or NULL */
	char *https_proxy;       /* https:// requests through this CONNECT proxy, or NULL: never a proxy */
	char *https_proxy_ca_file; /* CA bundle for an https:// proxy's certificate, or NULL */
	char *audit_file;        /* JSON lines, one per decision, or NULL */
	char *batch_state_file;  /* batch registrations under way, kept across a restart, or NULL */
	int metrics_interval;    /* seconds between $SYS/broker/bootstrap/ updates; 0 off */
	char *operator_username; /* may read $SYS/broker/bootstrap/# under acl strict */
	enum request_auth request_auth;
	enum identity_field identity_field; /* identity: the certificate field naming the device; set by config__finish */
	char *product_secret_file;
	char *product_secret;    /* loaded by config__finish for REQUEST_AUTH_SIGN without products_file */
	char *products_file;     /* several products: lines "ProductKey /path/to/secret-file" */
	struct products *products; /* loaded from products_file by config__finish; broker thread only */
	/* the product the start-up check asks about: product_key, else the products file's first */
	char *check_product_key;
	enum reply_encryption reply_encryption; /* ON or OFF after config__finish */
	enum existing_devices existing_devices;
	enum registration_mode registration;
	char *device_allowlist;  /* a file of deviceIds and patterns that may bootstrap, or NULL: all */
	enum flow_strategy strategy;
	enum acl_mode acl;
	char *request_topic;
	char *reply_topic;       /* template, see request__reply_topic() */
	char *response_topic_prefix; /* an MQTT 5 Response Topic must start with it */
	int max_inflight;
	int max_queue;
	long http_timeout_ms;
	long request_deadline_ms; /* retries of one device's flow stop after this long */
	/* calls/s this broker may make, per action (platform_actions[]: register_qps, query_qps,
	 * batch_query_qps, ...), and how many may go at once after a quiet spell */
	double qps[PLATFORM_ACTIONS];
	double burst[PLATFORM_ACTIONS];
	enum batching_mode batching;
	int wakeup_port;          /* loopback listener the worker pokes when results are ready; 0 off */
	/* multi-broker mode (bootstrap_shared.h): NULL redis_url, one broker alone */
	char *redis_url;
	char *redis_password_file;
	char *redis_prefix;       /* after config__finish: set */
	long redis_timeout_ms;
	double redis_fallback_share; /* the share of each quota while Redis is down; 0: 1/brokers seen */
	/* from redis_password_file, by config__finish; the broker thread's alone (never in a
	 * snapshot), handed to the Redis thread and then wiped */
	char *redis_username;
	char *redis_password;
	/* Link SDK dynregmq CONNECTs (plugin/broker/dynreg.c): served only on the listeners whose
	 * ports dynreg_tls_ports names (parsed by config__finish into dynreg_ports) */
	enum dynreg_mode dynreg_mqtt;
	char *dynreg_tls_ports;
	int dynreg_ports[DYNREG_PORTS_MAX];
	int dynreg_port_count;
	long dynreg_window_ms;   /* the answer is given within this, else the connection is closed */
	char *sts_endpoint;          /* after config__finish: STS for AssumeRole(WithOIDC) */
	char *ecs_metadata_endpoint; /* after config__finish: the ECS metadata service */
	struct credentials_source creds_source; /* where the credentials come from */
	/* the credentials to sign with: the AccessKey of a static source at once; in the worker's
	 * snapshot, whatever its provider fetched last */
	struct bootstrap_credentials creds;
};

/* Where environment variables come from; tests pass their own. */
typedef credentials_getenv_fn config_getenv_fn;

/* The i-th plugin_opt_ name config__set() accepts, NULL past the last; it refuses any other
 * (the README's option table is checked against them). */
const char *config__option_name(size_t i);

void config__init(struct bootstrap_config *cfg);
/* 0 on success, -1 with err set. Unknown keys and bad values are errors. */
int config__set(struct bootstrap_config *cfg, const char *key, const char *value, char *err, size_t errlen);
/* Checks required options, resolves the endpoint and loads credentials. 0 or -1 with err set. */
int config__finish(struct bootstrap_config *cfg, config_getenv_fn get_env, char *err, size_t errlen);
/* Frees everything; secrets are wiped first. */
void config__cleanup(struct bootstrap_config *cfg);

/* A deep copy for another thread (the worker's snapshot): every string and the platform
 * credentials, not the ProductSecret nor the products. NULL on failure. Free with config__snapshot_free(). */
struct bootstrap_config *config__snapshot(const struct bootstrap_config *cfg);
void config__snapshot_free(struct bootstrap_config *snapshot);

/* Finds the credentials source again (start-up, SIGHUP) into cfg->creds_source, and cfg->creds
 * for a static one. 0 or -1 with err set; cfg unchanged on failure. */
int config__load_credentials(struct bootstrap_config *cfg, config_getenv_fn get_env, char *err, size_t errlen);

/* (Re)reads cfg->product_secret from cfg->product_secret_file into cfg->product_secret (NULL before). */
int config__load_product_secret(struct bootstrap_config *cfg, char *err, size_t errlen);
/* (Re)reads cfg->products_file and every secret it names into cfg->products, replacing the
 * current set only when the whole file is good and names product_key (when set); then
 * check_product_key follows. 0, or -1 with err set and cfg unchanged. */
int config__load_products(struct bootstrap_config *cfg, char *err, size_t errlen);

#endif

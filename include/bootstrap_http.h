#ifndef BOOTSTRAP_HTTP_H
#define BOOTSTRAP_HTTP_H
/* HTTP transport: many concurrent requests over libcurl's multi interface, connections reused,
 * TLS always verified. Used by a single thread (the worker), except http__wakeup(). */
#include <stddef.h>

struct call;

/* an answer larger than this is not the platform's; a request may allow more (max_body) */
#define HTTP_MAX_BODY (64 * 1024)
/* a batch registration's status lists up to 10 000 names */
#define HTTP_MAX_BODY_LARGE (2 * 1024 * 1024)

struct http_client;

struct http_options {
	const char *ca_file;   /* extra CA bundle, or NULL for the system's */
	const char *proxy;     /* https:// requests through this proxy (CONNECT); NULL: none, whatever
	                        * the environment says */
	const char *proxy_ca_file; /* CA bundle for an https:// proxy's own certificate, or NULL */
};

struct http_result {
	long status;           /* HTTP status, 0 if none arrived */
	const char *body;      /* NUL-terminated; valid during the callback only */
	size_t body_len;
	const char *error;     /* NULL on a complete answer, else why the transfer failed (generic) */
	const char *detail;    /* curl's own words on the failure (may name hosts): for logs */
	int permanent;         /* retrying cannot help: the server's certificate or the URL is wrong */
};

/* call: the request's completion (bootstrap_call.h), handed back as given */
typedef void (*http_done_fn)(struct call *call, const struct http_result *result, void *userdata);

struct http_client *http__new(const struct http_options *opts);
struct http_request {
	const char *method;         /* "GET", "POST" or "PUT" */
	const char *url;
	const char *body;           /* copied; NULL: none */
	const char *content_type;   /* of body; NULL: application/x-www-form-urlencoded */
	/* "Name: value" lines (copied, wiped after use), NULL-terminated; or NULL. Sent exactly: one
	 * line per name (a repeat fails the request), no Accept/Expect/Content-Type of curl's own */
	const char *const *headers;
	long timeout_ms;
	size_t max_body;            /* the largest answer accepted; 0: HTTP_MAX_BODY */
};

/* Starts req, to complete within req->timeout_ms; done gets call back. 0 or -1. */
int http__request(struct http_client *hc, const struct http_request *req, struct call *call);
/* Waits up to max_wait_ms for activity, drives transfers, calls done once per finished one. */
int http__perform(struct http_client *hc, int max_wait_ms, http_done_fn done, void *userdata);
/* Interrupts http__perform's wait; safe from any thread. */
void http__wakeup(struct http_client *hc);
/* Aborts every transfer without reporting it (each call's owner frees it) and frees hc. */
void http__free(struct http_client *hc);

#endif

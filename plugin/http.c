/* HTTP transport on libcurl's multi interface: one thread drives every transfer, the multi
 * handle keeps connections alive between requests, certificates are always verified. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "bootstrap_http.h"

struct http_transfer {
	struct http_transfer *prev, *next;
	CURL *easy;
	void *tag;
	char *resp;
	size_t resp_len;
	size_t resp_cap;
	bool too_large;
	char errbuf[CURL_ERROR_SIZE];
};

/* Finished transfers kept for reuse: curl_easy_init/cleanup per request is measurable CPU. */
#define TRANSFER_POOL_MAX 256

struct http_client {
	CURLM *multi;
	struct http_transfer *pool; /* idle transfers, linked by next */
	int pooled;
	struct curl_slist *headers;
	char *ca_file;
	struct http_transfer *transfers; /* every transfer not yet reported, to abort on free */
	int active;
};

static void transfer__link(struct http_client *hc, struct http_transfer *t)
{
	t->prev = NULL;
	t->next = hc->transfers;
	if(hc->transfers) hc->transfers->prev = t;
	hc->transfers = t;
	hc->active++;
}

static void transfer__unlink(struct http_client *hc, struct http_transfer *t)
{
	if(t->prev) t->prev->next = t->next;
	else hc->transfers = t->next;
	if(t->next) t->next->prev = t->prev;
	hc->active--;
}

struct http_client *http__new(const struct http_options *opts)
{
	struct http_client *hc = calloc(1, sizeof(*hc));

	if(!hc) return NULL;
	hc->multi = curl_multi_init();
	hc->headers = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded");
	if(hc->headers){
		/* no "Expect: 100-continue" round trip for small bodies */
		struct curl_slist *h = curl_slist_append(hc->headers, "Expect:");
		if(h) hc->headers = h;
	}
	if(opts->ca_file) hc->ca_file = strdup(opts->ca_file);
	if(!hc->multi || !hc->headers || (opts->ca_file && !hc->ca_file)){
		http__free(hc, NULL);
		return NULL;
	}
	return hc;
}

static size_t transfer__write(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct http_transfer *t = userdata;
	size_t len = size * nmemb;

	if(t->resp_len + len > HTTP_MAX_BODY){
		t->too_large = true;
		return 0; /* aborts the transfer: an answer this large is not the platform's */
	}
	if(t->resp_len + len + 1 > t->resp_cap){
		size_t cap = (t->resp_len + len + 1) * 2;
		char *grown;
		if(cap > HTTP_MAX_BODY + 1) cap = HTTP_MAX_BODY + 1;
		grown = realloc(t->resp, cap);
		if(!grown) return 0;
		t->resp = grown;
		t->resp_cap = cap;
	}
	memcpy(t->resp + t->resp_len, data, len);
	t->resp_len += len;
	t->resp[t->resp_len] = '\0';
	return len;
}

static void transfer__free(struct http_transfer *t)
{
	if(!t) return;
	if(t->easy) curl_easy_cleanup(t->easy);
	if(t->resp) OPENSSL_cleanse(t->resp, t->resp_cap); /* an answer carries a DeviceSecret */
	free(t->resp);
	free(t);
}

/* A transfer from the pool (its easy handle reset) or a new one. */
static struct http_transfer *transfer__get(struct http_client *hc)
{
	struct http_transfer *t = hc->pool;

	if(t){
		hc->pool = t->next;
		hc->pooled--;
		curl_easy_reset(t->easy);
		t->resp_len = 0;
		t->too_large = false;
		t->errbuf[0] = '\0';
		t->prev = t->next = NULL;
		return t;
	}
	t = calloc(1, sizeof(*t));
	if(t && !(t->easy = curl_easy_init())){
		free(t);
		t = NULL;
	}
	return t;
}

static void transfer__put(struct http_client *hc, struct http_transfer *t)
{
	if(hc->pooled >= TRANSFER_POOL_MAX){
		transfer__free(t);
		return;
	}
	if(t->resp) OPENSSL_cleanse(t->resp, t->resp_cap); /* an answer carries a DeviceSecret */
	t->tag = NULL;
	t->next = hc->pool;
	hc->pool = t;
	hc->pooled++;
}

int http__post(struct http_client *hc, const char *url, const char *body, long timeout_ms, void *tag)
{
	struct http_transfer *t = transfer__get(hc);
	CURL *e;
	long connect_ms = timeout_ms < 3000 ? timeout_ms : 3000;

	if(!t) return -1;
	t->tag = tag;
	e = t->easy;
	if(curl_easy_setopt(e, CURLOPT_URL, url)
			|| curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body)
			|| curl_easy_setopt(e, CURLOPT_HTTPHEADER, hc->headers)
			|| curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, transfer__write)
			|| curl_easy_setopt(e, CURLOPT_WRITEDATA, t)
			|| curl_easy_setopt(e, CURLOPT_PRIVATE, t)
			|| curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf)
			|| curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L)
			|| curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms)
			|| curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms)
			|| curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L)
			|| curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L)
			|| curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L)
			|| curl_easy_setopt(e, CURLOPT_USERAGENT, "mosquitto-bootstrap/0.1")
			/* answers are small; curl's default 16 KiB per transfer adds up with hundreds in flight */
			|| curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L)
			|| (hc->ca_file && curl_easy_setopt(e, CURLOPT_CAINFO, hc->ca_file))){
		goto fail;
	}
#if LIBCURL_VERSION_NUM >= 0x075500
	if(curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https")) goto fail;
#else
	if(curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS))) goto fail;
#endif
	if(curl_multi_add_handle(hc->multi, e) != CURLM_OK) goto fail;
	transfer__link(hc, t);
	return 0;
fail:
	transfer__free(t);
	return -1;
}

/* Failures that another attempt cannot fix: the peer's certificate or our own setup. */
static int error__permanent(CURLcode rc)
{
	switch(rc){
		case CURLE_PEER_FAILED_VERIFICATION:
		case CURLE_SSL_CACERT_BADFILE:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		case CURLE_SSL_ISSUER_ERROR:
		case CURLE_UNSUPPORTED_PROTOCOL:
		case CURLE_URL_MALFORMAT:
			return 1;
		default:
			return 0;
	}
}

static void transfer__report(struct http_client *hc, CURLMsg *msg, http_done_fn done, void *userdata)
{
	struct http_transfer *t = NULL;
	struct http_result r;

	curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
	curl_multi_remove_handle(hc->multi, msg->easy_handle);
	transfer__unlink(hc, t);

	memset(&r, 0, sizeof(r));
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &r.status);
	r.body = t->resp ? t->resp : "";
	r.body_len = t->resp_len;
	if(t->too_large){
		r.error = "answer too large";
	}else if(msg->data.result != CURLE_OK){
		/* curl's generic text: says what failed without naming hosts or paths */
		r.error = curl_easy_strerror(msg->data.result);
		r.detail = t->errbuf[0] ? t->errbuf : r.error;
		r.permanent = error__permanent(msg->data.result);
	}
	done(t->tag, &r, userdata);
	transfer__put(hc, t);
}

int http__perform(struct http_client *hc, int max_wait_ms, http_done_fn done, void *userdata)
{
	int running = 0, queued;
	CURLMsg *msg;

	if(curl_multi_poll(hc->multi, NULL, 0, max_wait_ms, NULL) != CURLM_OK) return -1;
	if(curl_multi_perform(hc->multi, &running) != CURLM_OK) return -1;
	while((msg = curl_multi_info_read(hc->multi, &queued))){
		if(msg->msg == CURLMSG_DONE) transfer__report(hc, msg, done, userdata);
	}
	return 0;
}

int http__active(const struct http_client *hc)
{
	return hc->active;
}

void http__wakeup(struct http_client *hc)
{
	curl_multi_wakeup(hc->multi);
}

void http__free(struct http_client *hc, void (*abort_tag)(void *tag))
{
	if(!hc) return;
	while(hc->transfers){
		struct http_transfer *t = hc->transfers;
		transfer__unlink(hc, t);
		curl_multi_remove_handle(hc->multi, t->easy);
		if(abort_tag) abort_tag(t->tag);
		transfer__free(t);
	}
	while(hc->pool){
		struct http_transfer *t = hc->pool;
		hc->pool = t->next;
		transfer__free(t);
	}
	if(hc->multi) curl_multi_cleanup(hc->multi);
	curl_slist_free_all(hc->headers);
	free(hc->ca_file);
	free(hc);
}

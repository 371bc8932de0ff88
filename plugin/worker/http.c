/* HTTP transport on libcurl's multi interface: one thread drives every transfer, the multi
 * handle keeps connections alive between requests, certificates are always verified.
 * curl's socket API with an epoll set: a wake-up costs the sockets that have something to do,
 * not a poll() over every connection in flight. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "bootstrap_clock.h"
#include "bootstrap_http.h"

struct http_transfer {
	struct http_transfer *prev, *next;
	CURL *easy;
	struct call *call;
	char *resp;
	size_t resp_len;
	size_t resp_cap;
	size_t max_body;
	bool too_large;
	struct curl_slist *headers; /* this request's own (signatures, tokens); NULL: the client's */
	char errbuf[CURL_ERROR_SIZE];
};

/* Finished transfers kept for reuse: curl_easy_init/cleanup per request is measurable CPU. */
#define TRANSFER_POOL_MAX 256

struct http_client {
	CURLM *multi;
	int epfd;
	int wakefd;       /* eventfd: http__wakeup() from any thread */
	int64_t timer_due_ms; /* when curl wants its timers run (monotonic); -1 none */
	struct http_transfer *pool; /* idle transfers, linked by next */
	int pooled;
	char *ca_file;
	char *proxy;          /* https:// requests through this CONNECT proxy; NULL: never a proxy */
	char *proxy_ca_file;
	struct http_transfer *transfers; /* every transfer not yet reported, to abort on free */
};

static void transfer__link(struct http_client *hc, struct http_transfer *t)
{
	t->prev = NULL;
	t->next = hc->transfers;
	if(hc->transfers) hc->transfers->prev = t;
	hc->transfers = t;
}

static void transfer__unlink(struct http_client *hc, struct http_transfer *t)
{
	if(t->prev) t->prev->next = t->next;
	else hc->transfers = t->next;
	if(t->next) t->next->prev = t->prev;
}

/* curl tells which sockets to watch for what */
static int multi__socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct http_client *hc = userp;
	struct epoll_event ev = { .data.fd = s };

	(void)easy;
	if(what == CURL_POLL_REMOVE){
		epoll_ctl(hc->epfd, EPOLL_CTL_DEL, s, NULL);
		curl_multi_assign(hc->multi, s, NULL);
		return 0;
	}
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if(socketp){
		epoll_ctl(hc->epfd, EPOLL_CTL_MOD, s, &ev);
		return 0;
	}
	if(epoll_ctl(hc->epfd, EPOLL_CTL_ADD, s, &ev) && errno == EEXIST) epoll_ctl(hc->epfd, EPOLL_CTL_MOD, s, &ev);
	curl_multi_assign(hc->multi, s, hc); /* any non-NULL marks it as watched */
	return 0;
}


static int multi__timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct http_client *hc = userp;

	(void)multi;
	hc->timer_due_ms = timeout_ms < 0 ? -1 : clock__ms() + timeout_ms;
	return 0;
}

struct http_client *http__new(const struct http_options *opts)
{
	struct http_client *hc = calloc(1, sizeof(*hc));
	struct epoll_event ev = { .events = EPOLLIN };

	if(!hc) return NULL;
	hc->timer_due_ms = -1;
	hc->epfd = epoll_create1(EPOLL_CLOEXEC);
	hc->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ev.data.fd = hc->wakefd;
	if(hc->epfd < 0 || hc->wakefd < 0 || epoll_ctl(hc->epfd, EPOLL_CTL_ADD, hc->wakefd, &ev)){
		if(hc->epfd >= 0) close(hc->epfd);
		if(hc->wakefd >= 0) close(hc->wakefd);
		free(hc);
		return NULL;
	}
	hc->multi = curl_multi_init();
	if(hc->multi){
		curl_multi_setopt(hc->multi, CURLMOPT_SOCKETFUNCTION, multi__socket);
		curl_multi_setopt(hc->multi, CURLMOPT_SOCKETDATA, hc);
		curl_multi_setopt(hc->multi, CURLMOPT_TIMERFUNCTION, multi__timer);
		curl_multi_setopt(hc->multi, CURLMOPT_TIMERDATA, hc);
	}
	if(opts->ca_file) hc->ca_file = strdup(opts->ca_file);
	if(opts->proxy) hc->proxy = strdup(opts->proxy);
	if(opts->proxy_ca_file) hc->proxy_ca_file = strdup(opts->proxy_ca_file);
	if(!hc->multi || (opts->ca_file && !hc->ca_file) || (opts->proxy && !hc->proxy)
			|| (opts->proxy_ca_file && !hc->proxy_ca_file)){
		http__free(hc);
		return NULL;
	}
	return hc;
}

static size_t transfer__write(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct http_transfer *t = userdata;
	size_t len = size * nmemb;

	if(t->resp_len + len > t->max_body){
		t->too_large = true;
		return 0; /* aborts the transfer: an answer this large is not the platform's */
	}
	if(t->resp_len + len + 1 > t->resp_cap){
		size_t cap = (t->resp_len + len + 1) * 2;
		char *grown;
		if(cap > t->max_body + 1) cap = t->max_body + 1;
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

/* A request's own headers can carry a token or a signature: wiped before they are freed. */
static void headers__free(struct curl_slist **headers)
{
	for(struct curl_slist *h = *headers; h; h = h->next) OPENSSL_cleanse(h->data, strlen(h->data));
	curl_slist_free_all(*headers);
	*headers = NULL;
}

static void transfer__free(struct http_transfer *t)
{
	if(!t) return;
	headers__free(&t->headers);
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
	if(t->resp){
		/* an answer carries a DeviceSecret: what was written is wiped (the rest was before) */
		OPENSSL_cleanse(t->resp, t->resp_len < t->resp_cap ? t->resp_len + 1 : t->resp_cap);
		if(t->resp_cap > HTTP_MAX_BODY + 1){
			/* a batch status answer's buffer is not kept for every later small answer */
			free(t->resp);
			t->resp = NULL;
			t->resp_cap = 0;
		}
	}
	headers__free(&t->headers);
	t->call = NULL;
	t->next = hc->pool;
	hc->pool = t;
	hc->pooled++;
}

/* The length of a header line's name ("Name: value" or curl's "Name:" / "Name;"). */
static size_t header__name_len(const char *line)
{
	return strcspn(line, ":;");
}

static bool header__named(const char *line, const char *name)
{
	size_t n = header__name_len(line);

	return n == strlen(name) && !strncasecmp(line, name, n);
}

/* The request's header lines exactly: what a signer signed goes out once and alone. curl adds
 * Accept, Expect and (with a body) Content-Type of its own: each is switched off ("Name:")
 * unless the request sends its own; a body without a Content-Type line gets content_type. One
 * line per name, or -1: a repeated header is joined with "," by the gateway's signer, and the
 * signature no longer matches. */
static int headers__build(const struct http_request *req, struct curl_slist **out)
{
	bool accept = false, content_type = false;
	char line[128];
	size_t n = 0;

	*out = NULL;
	for(; req->headers && req->headers[n]; n++){
		for(size_t i = 0; i < n; i++){
			size_t len = header__name_len(req->headers[i]);
			if(len == header__name_len(req->headers[n]) && !strncasecmp(req->headers[i], req->headers[n], len)) return -1;
		}
		if(header__named(req->headers[n], "Expect") || header__named(req->headers[n], "Transfer-Encoding")
				|| header__named(req->headers[n], "Content-Length")){
			return -1; /* curl's to write, from the body it sends */
		}
		accept = accept || header__named(req->headers[n], "Accept");
		content_type = content_type || header__named(req->headers[n], "Content-Type");
	}
	if(!(*out = curl_slist_append(NULL, "Expect:"))) return -1;
	if(!accept && !curl_slist_append(*out, "Accept:")) return -1;
	if(!content_type){
		if(req->body) snprintf(line, sizeof(line), "Content-Type: %s", req->content_type ? req->content_type : "application/x-www-form-urlencoded");
		else snprintf(line, sizeof(line), "Content-Type:"); /* an empty POST: none, not curl's form type */
		if(!curl_slist_append(*out, line)) return -1;
	}
	for(size_t i = 0; i < n; i++){
		if(!curl_slist_append(*out, req->headers[i])) return -1;
	}
	return 0;
}

/* Never a proxy from the environment (http_proxy, https_proxy, all_proxy): it would see every
 * signed call and the credential services' answers. An https:// request goes through the
 * configured proxy, if any, as a CONNECT tunnel: the proxy carries TLS it cannot read. */
static int transfer__proxy(struct http_client *hc, CURL *e, const char *url)
{
	if(!hc->proxy || strncasecmp(url, "https://", strlen("https://"))){
		return curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK;
	}
	return curl_easy_setopt(e, CURLOPT_PROXY, hc->proxy)
			|| curl_easy_setopt(e, CURLOPT_NOPROXY, "") /* no_proxy from the environment neither */
			|| curl_easy_setopt(e, CURLOPT_HTTPPROXYTUNNEL, 1L)
			|| (hc->proxy_ca_file && curl_easy_setopt(e, CURLOPT_PROXY_CAINFO, hc->proxy_ca_file));
}

int http__request(struct http_client *hc, const struct http_request *req, struct call *call)
{
	struct http_transfer *t = transfer__get(hc);
	long connect_ms = req->timeout_ms < 3000 ? req->timeout_ms : 3000;
	CURL *e;

	if(!t) return -1;
	t->call = call;
	t->max_body = req->max_body ? req->max_body : HTTP_MAX_BODY;
	e = t->easy;
	if(headers__build(req, &t->headers)) goto fail;
	/* the URL as given, byte for byte: curl 7.88 sends CURLOPT_URL's query unchanged (its URL
	 * API would rewrite escapes in lower case, and the signed query would no longer match) */
	if(curl_easy_setopt(e, CURLOPT_URL, req->url)
			|| curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers)
			|| curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, transfer__write)
			|| curl_easy_setopt(e, CURLOPT_WRITEDATA, t)
			|| curl_easy_setopt(e, CURLOPT_PRIVATE, t)
			|| curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf)
			|| curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L)
			|| curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms)
			|| curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms)
			|| curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L)
			|| curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L)
			|| curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L)
			|| curl_easy_setopt(e, CURLOPT_USERAGENT, "mosquitto-bootstrap/0.1")
			/* answers are small; curl's default 16 KiB per transfer adds up with hundreds in flight */
			|| curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L)
			|| (hc->ca_file && curl_easy_setopt(e, CURLOPT_CAINFO, hc->ca_file))
			|| transfer__proxy(hc, e, req->url)){
		goto fail;
	}
	if(req->body){
		if(curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body)) goto fail;
		if(strcmp(req->method, "POST") && curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method)) goto fail;
	}else if(!strcmp(req->method, "PUT") || !strcmp(req->method, "POST")){
		/* an empty body, sent as such (IMDSv2's token PUT has none) */
		if(curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L) || curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, "")
				|| (strcmp(req->method, "POST") && curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method))){
			goto fail;
		}
	}else if(strcmp(req->method, "GET")){
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
	done(t->call, &r, userdata);
	transfer__put(hc, t);
}

int http__perform(struct http_client *hc, int max_wait_ms, http_done_fn done, void *userdata)
{
	struct epoll_event evs[64];
	int running = 0, queued, n, wait = max_wait_ms;
	int64_t now = clock__ms();
	CURLMsg *msg;

	if(hc->timer_due_ms >= 0 && hc->timer_due_ms - now < wait) wait = hc->timer_due_ms <= now ? 0 : (int)(hc->timer_due_ms - now);
	n = epoll_wait(hc->epfd, evs, 64, wait);
	if(n < 0 && errno != EINTR) return -1;
	for(int i = 0; i < n; i++){
		int flags = 0;
		if(evs[i].data.fd == hc->wakefd){
			uint64_t v;
			if(read(hc->wakefd, &v, sizeof(v)) < 0){ /* another wake got it first */ }
			continue;
		}
		if(evs[i].events & EPOLLIN) flags |= CURL_CSELECT_IN;
		if(evs[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
		if(evs[i].events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
		curl_multi_socket_action(hc->multi, evs[i].data.fd, flags, &running);
	}
	/* curl's own timers: new transfers (due at once), connect and transfer timeouts */
	if(hc->timer_due_ms >= 0 && clock__ms() >= hc->timer_due_ms){
		hc->timer_due_ms = -1;
		curl_multi_socket_action(hc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	while((msg = curl_multi_info_read(hc->multi, &queued))){
		if(msg->msg == CURLMSG_DONE) transfer__report(hc, msg, done, userdata);
	}
	return 0;
}

void http__wakeup(struct http_client *hc)
{
	uint64_t one = 1;

	if(write(hc->wakefd, &one, sizeof(one)) < 0){ /* the counter is already non-zero: awake anyway */ }
}

void http__free(struct http_client *hc)
{
	if(!hc) return;
	while(hc->transfers){
		struct http_transfer *t = hc->transfers;
		transfer__unlink(hc, t);
		curl_multi_remove_handle(hc->multi, t->easy);
		transfer__free(t);
	}
	while(hc->pool){
		struct http_transfer *t = hc->pool;
		hc->pool = t->next;
		transfer__free(t);
	}
	if(hc->multi) curl_multi_cleanup(hc->multi);
	close(hc->epfd);
	close(hc->wakefd);
	free(hc->ca_file);
	free(hc->proxy);
	free(hc->proxy_ca_file);
	free(hc);
}

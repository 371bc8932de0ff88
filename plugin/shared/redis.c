/* Shared state on Redis: one thread, one hiredis connection, every queued operation sent as
 * one pipeline of Lua scripts (atomic on the server, one round trip for all of them). Runs on
 * the Redis thread; shared__new and shared__free on the broker thread; submit, cork and take
 * from any thread, under the module's lock, never waiting on I/O. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "bootstrap_clock.h"
#include "bootstrap_scripts.h"
#include "bootstrap_shared.h"
#include "bootstrap_text.h"

/* one pipeline carries at most this many operations: a round trip stays short */
#define PIPELINE_MAX 512
/* flow-lock releases kept while Redis is down, sent when it is back */
#define DEFERRED_MAX 16384
#define RECONNECT_MIN_MS 250
#define RECONNECT_MAX_MS 2000
/* a connection that lasted this long starts the reconnect backoff afresh */
#define STABLE_MS 10000

struct shared {
	pthread_t thread;
	bool started;

	pthread_mutex_t lock;  /* guards what follows up to the Redis thread's; never held across I/O */
	pthread_cond_t cond;
	struct shared_op *queue_head, *queue_tail;
	size_t queued;
	struct shared_op *done_head[SHARED_CONSUMERS], *done_tail[SHARED_CONSUMERS];
	void (*notify)(void *ud);
	void *notify_ud;
	bool stop;
	bool corked;
	struct shared_stats stats;

	/* the Redis thread's (and the broker thread's before it starts and after it stops) */
	struct shared_endpoint ep;
	char *username, *password;
	char prefix[SHARED_PREFIX_MAX + 1];
	long timeout_ms;
	redisContext *c;
	char sha[SCRIPTS][41];
	struct shared_op *deferred_head, *deferred_tail;
	size_t ndeferred;
	int64_t next_heartbeat_ms, reconnect_ms, reconnect_delay_ms, up_since_ms;
	char id[17];
};

/* ---- the Redis thread ---- */

/* What the commands name: the key prefix, this broker, the scripts as this connection loaded them. */
static struct script_ids shared__ids(const struct shared *s)
{
	struct script_ids ids = { .prefix = s->prefix, .id = s->id };

	for(int i = 0; i < SCRIPTS; i++) ids.sha[i] = s->sha[i];
	return ids;
}

static enum shared_consumer op__consumer(const struct shared_op *op)
{
	return op->kind == SHARED_ADMIT || op->kind == SHARED_LEASE ? SHARED_FOR_WORKER : SHARED_FOR_BROKER;
}

/* Finished operations to whoever takes them; a release needs nobody. */
static void shared__deliver(struct shared *s, struct shared_op *list)
{
	bool worker = false;

	pthread_mutex_lock(&s->lock);
	while(list){
		struct shared_op *op = list;
		enum shared_consumer c;
		list = op->next;
		op->next = NULL;
		if(op->kind == SHARED_RELEASE){
			free(op);
			continue;
		}
		if(!op->ok) s->stats.refused++;
		c = op__consumer(op);
		if(s->done_tail[c]) s->done_tail[c]->next = op;
		else s->done_head[c] = op;
		s->done_tail[c] = op;
		worker = worker || c == SHARED_FOR_WORKER;
	}
	/* under the lock: shared__set_notify(NULL) guarantees no call after it returns */
	if(worker && s->notify) s->notify(s->notify_ud);
	pthread_mutex_unlock(&s->lock);
}

static void shared__defer(struct shared *s, struct shared_op *op)
{
	if(s->ndeferred >= DEFERRED_MAX){
		/* the lock then lives until its time-out, as if this broker had died */
		free(op);
		pthread_mutex_lock(&s->lock);
		s->stats.refused++;
		pthread_mutex_unlock(&s->lock);
		return;
	}
	op->next = NULL;
	if(s->deferred_tail) s->deferred_tail->next = op;
	else s->deferred_head = op;
	s->deferred_tail = op;
	s->ndeferred++;
}

/* Operations Redis will not answer: releases wait for it, the others go back unanswered. */
static void shared__fail(struct shared *s, struct shared_op *list)
{
	struct shared_op *failed = NULL, **tail = &failed;

	while(list){
		struct shared_op *op = list;
		list = op->next;
		op->next = NULL;
		if(op->kind == SHARED_RELEASE){
			shared__defer(s, op);
			continue;
		}
		op->ok = false;
		*tail = op;
		tail = &op->next;
	}
	/* cppcheck-suppress knownConditionTrueFalse ; set through tail, which cppcheck does not follow */
	if(failed) shared__deliver(s, failed);
}

static void shared__set_state(struct shared *s, enum shared_state state, const char *detail)
{
	pthread_mutex_lock(&s->lock);
	if(state != s->stats.state){
		if(state == SHARED_UP) s->stats.ups++;
		if(state == SHARED_DOWN) s->stats.downs++;
		s->stats.state = state;
	}
	text__escape(s->stats.detail, sizeof(s->stats.detail), detail ? detail : "");
	pthread_mutex_unlock(&s->lock);
}

/* The connection is given up: down, and a new one after a backoff. */
static void shared__down(struct shared *s, const char *why)
{
	int64_t now = clock__ms();

	if(s->c){
		redisFree(s->c);
		s->c = NULL;
	}
	if(s->up_since_ms && now - s->up_since_ms >= STABLE_MS) s->reconnect_delay_ms = RECONNECT_MIN_MS;
	s->up_since_ms = 0;
	s->reconnect_ms = now + s->reconnect_delay_ms;
	s->reconnect_delay_ms *= 2;
	if(s->reconnect_delay_ms > RECONNECT_MAX_MS) s->reconnect_delay_ms = RECONNECT_MAX_MS;
	shared__set_state(s, SHARED_DOWN, why);
}

/* After an I/O error the context says why; a write to a closed socket also left a SIGPIPE
 * pending on this thread (blocked here), taken so that it never fires elsewhere. */
static void shared__io_failed(struct shared *s, const char *what)
{
	char why[160];
	sigset_t pipe;
	struct timespec zero = {0, 0};

	if(s->c && s->c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)){
		snprintf(why, sizeof(why), "%s: no answer within %ld ms (plugin_opt_redis_timeout_ms)", what, s->timeout_ms);
	}else{
		snprintf(why, sizeof(why), "%s: %s", what, s->c && s->c->errstr[0] ? s->c->errstr : "connection lost");
	}
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	while(sigtimedwait(&pipe, NULL, &zero) > 0);
	shared__down(s, why);
}

/* Sends the commands (one pipeline) and reads every answer. 0, or -1 when the connection
 * failed (the caller gives it up). replies[i] gets the i-th answer (freed by the caller). */
static int shared__pipeline(struct shared *s, struct command *cmds, int n, redisReply **replies)
{
	for(int i = 0; i < n; i++){
		replies[i] = NULL;
		if(redisAppendCommandArgv(s->c, cmds[i].argc, cmds[i].argv, cmds[i].len) != REDIS_OK) return -1;
	}
	for(int i = 0; i < n; i++){
		void *r = NULL;
		if(redisGetReply(s->c, &r) != REDIS_OK || !r) return -1;
		replies[i] = r;
	}
	pthread_mutex_lock(&s->lock);
	s->stats.round_trips++;
	s->stats.commands += (unsigned long long)n;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static void replies__free(redisReply **replies, int n)
{
	for(int i = 0; i < n; i++){
		if(replies[i]) freeReplyObject(replies[i]);
		replies[i] = NULL;
	}
}

/* "redis 7.0.15" or "valkey 8.0.1" from INFO server. */
static void server__name(struct shared *s, const redisReply *r)
{
	const char *v, *name = "redis", *key = "redis_version:";
	char version[24], shown_version[TEXT_ESCAPED_LEN(24)];
	size_t n;

	if(!r || r->type != REDIS_REPLY_STRING || !r->str) return;
	if(strstr(r->str, "server_name:valkey") && strstr(r->str, "valkey_version:")){
		name = "valkey";
		key = "valkey_version:";
	}
	v = strstr(r->str, key);
	if(!v) return;
	v += strlen(key);
	n = strcspn(v, "\r\n");
	if(n >= sizeof(version)) n = sizeof(version) - 1;
	memcpy(version, v, n);
	version[n] = '\0';
	pthread_mutex_lock(&s->lock);
	snprintf(s->stats.server, sizeof(s->stats.server), "%s %s", name, text__escape(shown_version, sizeof(shown_version), version));
	pthread_mutex_unlock(&s->lock);
}

/* Connects, authenticates, selects the database, loads the scripts and beats once: only then
 * is Redis up. False (down, with why) otherwise. */
static bool shared__connect(struct shared *s)
{
	struct timeval tv = { .tv_sec = s->timeout_ms / 1000, .tv_usec = (s->timeout_ms % 1000) * 1000 };
	const struct script_ids ids = shared__ids(s);
	struct command cmds[SCRIPTS + 3];
	redisReply *replies[SCRIPTS + 3];
	int n = 0, auth = -1, select = -1, info, first_script;
	char why[160];

	s->c = s->ep.path[0] ? redisConnectUnixWithTimeout(s->ep.path, tv) : redisConnectWithTimeout(s->ep.host, s->ep.port, tv);
	if(!s->c || s->c->err){
		snprintf(why, sizeof(why), "cannot connect: %s", s->c ? s->c->errstr : "out of memory");
		shared__down(s, why);
		return false;
	}
	/* every read and write from here on gives up after the timeout: a slow Redis is a down one */
	if(redisSetTimeout(s->c, tv) != REDIS_OK || (!s->ep.path[0] && redisEnableKeepAlive(s->c) != REDIS_OK)){
		shared__io_failed(s, "cannot set the timeout");
		return false;
	}
	memset(cmds, 0, sizeof(cmds));
	if(s->password){
		auth = n;
		scripts__arg(&cmds[n], "AUTH");
		if(s->username) scripts__arg(&cmds[n], s->username);
		scripts__arg(&cmds[n], s->password);
		n++;
	}
	if(s->ep.db){
		select = n;
		scripts__arg(&cmds[n], "SELECT");
		snprintf(cmds[n].nums[0], sizeof(cmds[n].nums[0]), "%d", s->ep.db);
		scripts__arg(&cmds[n], cmds[n].nums[0]);
		n++;
	}
	first_script = n;
	for(int i = 0; i < SCRIPTS; i++, n++){
		scripts__arg(&cmds[n], "SCRIPT");
		scripts__arg(&cmds[n], "LOAD");
		scripts__arg(&cmds[n], scripts__lua[i]);
	}
	info = n;
	scripts__arg(&cmds[n], "INFO");
	scripts__arg(&cmds[n], "server");
	n++;
	if(shared__pipeline(s, cmds, n, replies)){
		replies__free(replies, n);
		shared__io_failed(s, "no answer from Redis");
		return false;
	}
	for(int i = 0; i < n; i++){
		redisReply *r = replies[i];
		if(r->type == REDIS_REPLY_ERROR){
			/* Redis's own words never repeat a password */
			snprintf(why, sizeof(why), "Redis refused %s: %.100s", i == auth ? "the password (plugin_opt_redis_password_file)"
					: i == select ? "SELECT (the database in plugin_opt_redis_url)" : i == info ? "INFO" : "SCRIPT LOAD",
					r->str ? r->str : "");
			replies__free(replies, n);
			shared__down(s, why);
			return false;
		}
		if(i >= first_script && i < first_script + SCRIPTS){
			if(r->type != REDIS_REPLY_STRING || r->len != 40){
				replies__free(replies, n);
				shared__down(s, "SCRIPT LOAD gave no script id");
				return false;
			}
			memcpy(s->sha[i - first_script], r->str, 40);
			s->sha[i - first_script][40] = '\0';
		}
	}
	server__name(s, replies[info]);
	replies__free(replies, n);

	/* the first heartbeat: this broker is alive from now on, and Redis takes writes */
	memset(cmds, 0, sizeof(cmds[0]));
	scripts__heartbeat(&cmds[0], &ids);
	if(shared__pipeline(s, cmds, 1, replies)){
		replies__free(replies, 1);
		shared__io_failed(s, "no answer from Redis");
		return false;
	}
	if(replies[0]->type != REDIS_REPLY_INTEGER){
		snprintf(why, sizeof(why), "Redis refused the heartbeat: %.100s", replies[0]->type == REDIS_REPLY_ERROR && replies[0]->str ? replies[0]->str : "an unexpected answer");
		replies__free(replies, 1);
		shared__down(s, why);
		return false;
	}
	pthread_mutex_lock(&s->lock);
	s->stats.brokers = replies[0]->integer > 0 && replies[0]->integer < INT_MAX ? (int)replies[0]->integer : 1;
	pthread_mutex_unlock(&s->lock);
	replies__free(replies, 1);
	s->next_heartbeat_ms = clock__ms() + SHARED_HEARTBEAT_MS;
	s->up_since_ms = clock__ms();
	shared__set_state(s, SHARED_UP, NULL);
	return true;
}

/* One round trip: the deferred releases, ops (a list of at most PIPELINE_MAX), and the
 * heartbeat when it is due. */
static void shared__round(struct shared *s, struct shared_op *ops)
{
	/* per round, never static: the same .so loaded twice shares its static variables */
	struct command *cmds = NULL;
	redisReply **replies = NULL;
	struct shared_op *vec[2 * PIPELINE_MAX];
	struct shared_op *done = NULL, **done_tail = &done, *again = NULL, **again_tail = &again;
	int n = 0, ncmd;
	int64_t now = clock__ms();
	bool beat = now >= s->next_heartbeat_ms, noscript = false;
	const struct script_ids ids = shared__ids(s);

	/* releases that waited for Redis go first: another broker may be waiting for those locks */
	while(s->deferred_head && n < PIPELINE_MAX){
		vec[n++] = s->deferred_head;
		s->deferred_head = s->deferred_head->next;
		s->ndeferred--;
	}
	if(!s->deferred_head) s->deferred_tail = NULL;
	for(; ops; ops = ops->next) vec[n++] = ops;
	if(n + (beat ? 1 : 0) == 0) return;
	cmds = calloc((size_t)n + 1, sizeof(*cmds));
	replies = calloc((size_t)n + 1, sizeof(*replies));
	if(!cmds || !replies){
		free(cmds);
		free(replies);
		for(int i = 0; i < n; i++) vec[i]->next = i + 1 < n ? vec[i + 1] : NULL;
		shared__fail(s, n ? vec[0] : NULL);
		return;
	}
	for(int i = 0; i < n; i++){
		cmds[i].argc = 0;
		scripts__command(&cmds[i], &ids, vec[i]);
	}
	ncmd = n;
	if(beat){
		cmds[ncmd].argc = 0;
		scripts__heartbeat(&cmds[ncmd++], &ids);
	}
	if(shared__pipeline(s, cmds, ncmd, replies)){
		replies__free(replies, ncmd);
		free(replies);
		free(cmds);
		shared__io_failed(s, "lost Redis");
		for(int i = 0; i < n; i++) vec[i]->next = i + 1 < n ? vec[i + 1] : NULL;
		shared__fail(s, n ? vec[0] : NULL);
		return;
	}
	free(cmds);
	now = clock__ms();
	for(int i = 0; i < n; i++){
		struct shared_op *op = vec[i];
		op->next = NULL;
		switch(scripts__read(op, replies[i], now)){
			case SCRIPT_REPLY_USED:
				*done_tail = op;
				done_tail = &op->next;
				break;
			case SCRIPT_REPLY_NOSCRIPT:
				/* SCRIPT FLUSH, or a restarted Redis behind a proxy: load them and send it again */
				noscript = true;
				*again_tail = op;
				again_tail = &op->next;
				break;
			case SCRIPT_REPLY_REFUSED:
				/* an error for this operation alone (a foreign value under one key): it goes on
				 * locally; a Redis that refuses writes fails the heartbeat below and is down */
				op->ok = false;
				*done_tail = op;
				done_tail = &op->next;
				break;
		}
	}
	if(beat){
		redisReply *r = replies[n];
		if(r->type == REDIS_REPLY_INTEGER){
			pthread_mutex_lock(&s->lock);
			s->stats.brokers = r->integer > 0 && r->integer < INT_MAX ? (int)r->integer : 1;
			pthread_mutex_unlock(&s->lock);
			s->next_heartbeat_ms = now + SHARED_HEARTBEAT_MS;
		}else if(r->type == REDIS_REPLY_ERROR && r->str && !strncmp(r->str, "NOSCRIPT", 8)){
			noscript = true;
		}else{
			/* a Redis that takes no writes (a replica, out of memory) cannot share anything */
			char why[160];
			snprintf(why, sizeof(why), "Redis refused the heartbeat: %.100s", r->type == REDIS_REPLY_ERROR && r->str ? r->str : "an unexpected answer");
			replies__free(replies, ncmd);
			free(replies);
			shared__down(s, why);
			shared__fail(s, again);
			/* the answered ones stand */
			if(done) shared__deliver(s, done);
			return;
		}
	}
	replies__free(replies, ncmd);
	free(replies);
	if(done) shared__deliver(s, done);
	if(noscript){
		/* a new connection loads the scripts again; what found them missing goes on locally */
		shared__down(s, "Redis lost the scripts (SCRIPT FLUSH): reconnecting");
		s->reconnect_ms = clock__ms();
		shared__fail(s, again);
	}
}

static void cond__wait_until(struct shared *s, int64_t until_ms)
{
	struct timespec ts;
	int64_t now = clock__ms(), wait = until_ms - now;

	if(wait <= 0) return;
	if(wait > 1000) wait = 1000;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += wait / 1000;
	ts.tv_nsec += (wait % 1000) * 1000000L;
	if(ts.tv_nsec >= 1000000000L){
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&s->cond, &s->lock, &ts);
}

static void *shared__run(void *arg)
{
	struct shared *s = arg;
	sigset_t pipe;

	/* a write to a Redis that went away raises SIGPIPE in the writing thread: blocked here, the
	 * write fails with EPIPE instead (the broker ignores SIGPIPE too; this does not rely on it) */
	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, NULL);
	for(;;){
		struct shared_op *batch = NULL, **tail = &batch;
		int64_t now;

		pthread_mutex_lock(&s->lock);
		for(;;){
			int64_t due;
			if(s->stop) break;
			now = clock__ms();
			due = s->c ? s->next_heartbeat_ms : s->reconnect_ms;
			if((s->queue_head && !s->corked) || now >= due || (s->c && s->deferred_head)) break;
			cond__wait_until(s, due);
		}
		if(s->stop){
			pthread_mutex_unlock(&s->lock);
			break;
		}
		for(int i = 0; i < PIPELINE_MAX && s->queue_head; i++){
			struct shared_op *op = s->queue_head;
			s->queue_head = op->next;
			op->next = NULL;
			*tail = op;
			tail = &op->next;
			s->queued--;
		}
		if(!s->queue_head) s->queue_tail = NULL;
		s->stats.queued = s->queued;
		pthread_mutex_unlock(&s->lock);

		now = clock__ms();
		if(!s->c && now >= s->reconnect_ms) shared__connect(s);
		if(!s->c){
			shared__fail(s, batch);
			continue;
		}
		shared__round(s, batch);
	}
	if(s->c){
		/* this broker is gone: the flow locks it held may be taken over at once */
		char key[SCRIPTS_KEY_MAX];
		redisReply *r;
		snprintf(key, sizeof(key), "%s:brokers", s->prefix);
		r = redisCommand(s->c, "ZREM %s %s", key, s->id);
		if(r) freeReplyObject(r);
		redisFree(s->c);
		s->c = NULL;
	}
	return NULL;
}

/* ---- any thread ---- */

struct shared *shared__new(const struct shared_options *opts, char *err, size_t errlen)
{
	struct shared *s = calloc(1, sizeof(*s));
	pthread_condattr_t attr;
	unsigned char id[8];
	bool lock_ok = false, cond_ok = false;

	if(!s){
		text__error(err, errlen, "out of memory");
		return NULL;
	}
	if(shared__parse_url(opts->url, &s->ep, err, errlen)) goto fail;
	if(!shared__prefix_valid(opts->prefix)){
		text__error(err, errlen, "plugin_opt_redis_prefix: '%s' is not 1 to %d letters, digits, - _ . : { }", opts->prefix, SHARED_PREFIX_MAX);
		goto fail;
	}
	snprintf(s->prefix, sizeof(s->prefix), "%s", opts->prefix);
	s->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 200;
	if((opts->password && !(s->password = strdup(opts->password))) || (opts->username && !(s->username = strdup(opts->username)))){
		text__error(err, errlen, "out of memory");
		goto fail;
	}
	if(RAND_bytes(id, sizeof(id)) != 1){
		text__error(err, errlen, "no random numbers for the broker id");
		goto fail;
	}
	for(size_t i = 0; i < sizeof(id); i++) snprintf(s->id + 2 * i, 3, "%02x", id[i]);
	memcpy(s->stats.broker_id, s->id, sizeof(s->id));
	s->stats.state = SHARED_CONNECTING;
	s->reconnect_delay_ms = RECONNECT_MIN_MS;
	lock_ok = pthread_mutex_init(&s->lock, NULL) == 0;
	cond_ok = pthread_condattr_init(&attr) == 0;
	if(cond_ok){
		cond_ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&s->cond, &attr) == 0;
		pthread_condattr_destroy(&attr);
	}
	if(!lock_ok || !cond_ok || pthread_create(&s->thread, NULL, shared__run, s)){
		text__error(err, errlen, "could not start the Redis thread");
		if(cond_ok) pthread_cond_destroy(&s->cond);
		if(lock_ok) pthread_mutex_destroy(&s->lock);
		goto fail;
	}
	s->started = true;
	return s;
fail:
	if(s->password){
		OPENSSL_cleanse(s->password, strlen(s->password));
		free(s->password);
	}
	free(s->username);
	free(s);
	return NULL;
}

void shared__set_notify(struct shared *s, void (*fn)(void *ud), void *ud)
{
	pthread_mutex_lock(&s->lock);
	s->notify = fn;
	s->notify_ud = ud;
	pthread_mutex_unlock(&s->lock);
}

int shared__submit(struct shared *s, struct shared_op *op)
{
	pthread_mutex_lock(&s->lock);
	if(s->stop || s->queued >= SHARED_QUEUE_MAX || (s->stats.state == SHARED_DOWN && op->kind != SHARED_RELEASE)){
		s->stats.refused++;
		pthread_mutex_unlock(&s->lock);
		free(op);
		return -1;
	}
	op->next = NULL;
	op->ok = false;
	if(s->queue_tail) s->queue_tail->next = op;
	else s->queue_head = op;
	s->queue_tail = op;
	s->queued++;
	if(!s->corked) pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void shared__cork(struct shared *s, bool corked)
{
	pthread_mutex_lock(&s->lock);
	s->corked = corked;
	if(!corked && s->queue_head) pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

struct shared_op *shared__take(struct shared *s, enum shared_consumer consumer)
{
	struct shared_op *list;

	pthread_mutex_lock(&s->lock);
	list = s->done_head[consumer];
	s->done_head[consumer] = s->done_tail[consumer] = NULL;
	pthread_mutex_unlock(&s->lock);
	return list;
}

void shared__stats(struct shared *s, struct shared_stats *st)
{
	pthread_mutex_lock(&s->lock);
	*st = s->stats;
	pthread_mutex_unlock(&s->lock);
}

static void ops__free(struct shared_op *list)
{
	while(list){
		struct shared_op *next = list->next;
		free(list);
		list = next;
	}
}

void shared__free(struct shared *s)
{
	if(!s) return;
	if(s->started){
		pthread_mutex_lock(&s->lock);
		s->stop = true;
		s->notify = NULL;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
		pthread_cond_destroy(&s->cond);
		pthread_mutex_destroy(&s->lock);
	}
	ops__free(s->queue_head);
	ops__free(s->deferred_head);
	for(int c = 0; c < SHARED_CONSUMERS; c++) ops__free(s->done_head[c]);
	if(s->password){
		OPENSSL_cleanse(s->password, strlen(s->password));
		free(s->password);
	}
	free(s->username);
	free(s);
}

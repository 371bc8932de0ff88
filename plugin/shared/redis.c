/* Shared state on Redis: one thread, one hiredis connection, every queued operation sent as
 * one pipeline of Lua scripts (atomic on the server, one round trip for all of them). */
#include <ctype.h>
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

#include "bootstrap_actions.h"
#include "bootstrap_clock.h"
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
#define KEY_MAX 256
#define ARGS_MAX 12

/* The scripts, loaded with SCRIPT LOAD on every connection and called with EVALSHA. Each runs
 * atomically on the server: no read-modify-write round trips between brokers. TIME is called
 * before writing; redis.replicate_commands() lets Redis 5 and 6 allow that (7 always does). */
enum { SCRIPT_ADMIT, SCRIPT_RELEASE, SCRIPT_LEASE, SCRIPT_REFUSAL, SCRIPT_HEARTBEAT, SCRIPTS };

static const char *const scripts[SCRIPTS] = {
	/* ADMIT. KEYS: replay, flow, brokers. ARGV: check replay (1/0), replay ttl s, my id, lock
	 * ms, alive ms. {0, hint}: the lock is ours (hint 1: a finished flow left the device
	 * existing); {1, 0}: the random was used; {2, pttl}: a live broker holds the lock. A lock
	 * whose holder's heartbeat stopped (a broker that died) is taken over. */
	[SCRIPT_ADMIT] =
		"if redis.replicate_commands then redis.replicate_commands() end\n"
		"if ARGV[1] == '1' and not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then return {1, 0} end\n"
		"local t = redis.call('TIME')\n"
		"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
		"local owner = redis.call('GET', KEYS[2])\n"
		"local hint = 0\n"
		"if owner == 'done' then hint = 1\n"
		"elseif owner and owner ~= ARGV[3] then\n"
		"  local seen = redis.call('ZSCORE', KEYS[3], owner)\n"
		"  if seen and tonumber(seen) > now - tonumber(ARGV[5]) then return {2, redis.call('PTTL', KEYS[2])} end\n"
		"end\n"
		"redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])\n"
		"return {0, hint}\n",
	/* RELEASE. KEYS: flow. ARGV: my id, exists (1/0), mark ms. Compare and delete: a lock
	 * another broker took over stays its own. */
	[SCRIPT_RELEASE] =
		"if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
		"if ARGV[2] == '1' then redis.call('SET', KEYS[1], 'done', 'PX', ARGV[3]) else redis.call('DEL', KEYS[1]) end\n"
		"return 1\n",
	/* LEASE: GCRA. KEYS: quota. ARGV: interval µs, want, horizon µs. The key holds the
	 * theoretical arrival time of the next call; slots are handed out interval apart from
	 * first = max(it, now), as many as wanted within a horizon from first: brokers that compete
	 * take turns in blocks of a tenth of a second, each lease worth a round trip, and a broker
	 * asks again only when its block is used, so none reserves far ahead.
	 * {n, first slot - now, interval}. */
	[SCRIPT_LEASE] =
		"if redis.replicate_commands then redis.replicate_commands() end\n"
		"local t = redis.call('TIME')\n"
		"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
		"local interval = tonumber(ARGV[1])\n"
		"local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0\n"
		"if tat < now then tat = now end\n"
		"local first = tat\n"
		"local n = 0\n"
		"local want = tonumber(ARGV[2])\n"
		"local last = first + tonumber(ARGV[3])\n"
		"while n < want and tat <= last do tat = tat + interval; n = n + 1 end\n"
		"if n > 0 then redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 2000) end\n"
		"return {n, first - now, interval}\n",
	/* REFUSAL. KEYS: counter. ARGV: max, window ms, block ms. The count of refusals in a window
	 * that starts with the first; reaching max blocks the key ('b') for block ms. Returns the
	 * ms the key stays blocked, 0 when it is not. */
	[SCRIPT_REFUSAL] =
		"local v = redis.call('GET', KEYS[1])\n"
		"if v == 'b' then return redis.call('PTTL', KEYS[1]) end\n"
		"local n = redis.call('INCR', KEYS[1])\n"
		"if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end\n"
		"if n >= tonumber(ARGV[1]) then redis.call('SET', KEYS[1], 'b', 'PX', ARGV[3]) return tonumber(ARGV[3]) end\n"
		"return 0\n",
	/* HEARTBEAT. KEYS: brokers. ARGV: my id, alive ms, fresh ms. Those not seen for alive ms
	 * are gone (their flow locks may be taken over); returns the brokers that beat within the
	 * last fresh ms: connected now (one that lost Redis a moment ago is not counted). */
	[SCRIPT_HEARTBEAT] =
		"if redis.replicate_commands then redis.replicate_commands() end\n"
		"local t = redis.call('TIME')\n"
		"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
		"redis.call('ZADD', KEYS[1], now, ARGV[1])\n"
		"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))\n"
		"redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)\n"
		"return redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[3]), '+inf')\n",
};

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
	char product_key[65];
	long timeout_ms;
	redisContext *c;
	char sha[SCRIPTS][41];
	struct shared_op *deferred_head, *deferred_tail;
	size_t ndeferred;
	int64_t next_heartbeat_ms, reconnect_ms, reconnect_delay_ms, up_since_ms;
	char id[17];
};

/* ---- pure parts ---- */

static bool port__parse(const char *s, size_t len, int *port)
{
	long v = 0;

	if(len == 0 || len > 5) return false;
	for(size_t i = 0; i < len; i++){
		if(!isdigit((unsigned char)s[i])) return false;
		v = v * 10 + (s[i] - '0');
	}
	if(v < 1 || v > 65535) return false;
	*port = (int)v;
	return true;
}

static bool db__parse(const char *s, int *db)
{
	long v = 0;
	size_t len = strlen(s);

	if(len == 0 || len > 5) return false;
	for(size_t i = 0; i < len; i++){
		if(!isdigit((unsigned char)s[i])) return false;
		v = v * 10 + (s[i] - '0');
	}
	if(v > 65535) return false;
	*db = (int)v;
	return true;
}

int shared__parse_url(const char *url, struct shared_endpoint *ep, char *err, size_t errlen)
{
	const char *rest, *host_end, *p;
	size_t hostlen;

	memset(ep, 0, sizeof(*ep));
	ep->port = 6379;
	if(!strncmp(url, "rediss://", 9)){
		text__error(err, errlen, "plugin_opt_redis_url: rediss:// (TLS) is not supported: Debian's hiredis 0.14 has no TLS. "
				"Reach a remote Redis privately instead: a local TLS tunnel (stunnel, spiped, ssh) listening on a unix "
				"socket or a loopback port (unix:///run/bootstrap/redis.sock, redis://127.0.0.1:6380), or a private network");
		return -1;
	}
	if(!strncmp(url, "unix://", 7)){
		const char *path = url + 7, *query = strchr(path, '?');
		size_t len = query ? (size_t)(query - path) : strlen(path);
		if(path[0] != '/' || len >= sizeof(ep->path) || len < 2){
			text__error(err, errlen, "plugin_opt_redis_url: '%s' is not unix:///absolute/path/of/the/socket[?db=N]", url);
			return -1;
		}
		for(size_t i = 0; i < len; i++){
			if((unsigned char)path[i] <= 0x20 || path[i] == 0x7f){
				text__error(err, errlen, "plugin_opt_redis_url: the socket path has white space or control characters in it");
				return -1;
			}
		}
		if(query && (strncmp(query, "?db=", 4) || !db__parse(query + 4, &ep->db))){
			text__error(err, errlen, "plugin_opt_redis_url: '%s': the only query is ?db=N (0 to 65535)", url);
			return -1;
		}
		memcpy(ep->path, path, len);
		ep->path[len] = '\0';
		return 0;
	}
	if(strncmp(url, "redis://", 8)){
		/* not echoed: whatever it is, it may hold a password */
		text__error(err, errlen, "plugin_opt_redis_url: must be redis://host[:port][/db] or unix:///path[?db=N]");
		return -1;
	}
	rest = url + 8;
	if(strchr(rest, '@')){
		/* never echoed: user:password@ */
		text__error(err, errlen, "plugin_opt_redis_url: no user or password in the URL; put them in "
				"plugin_opt_redis_password_file (mode 0600)");
		return -1;
	}
	if(rest[0] == '['){
		host_end = strchr(rest, ']');
		if(!host_end){
			text__error(err, errlen, "plugin_opt_redis_url: '%s' has a '[' without its ']'", url);
			return -1;
		}
		hostlen = (size_t)(host_end - rest - 1);
		p = host_end + 1;
		rest++;
	}else{
		hostlen = strcspn(rest, ":/");
		p = rest + hostlen;
	}
	if(hostlen == 0 || hostlen >= sizeof(ep->host)){
		text__error(err, errlen, "plugin_opt_redis_url: '%s' names no host", url);
		return -1;
	}
	for(size_t i = 0; i < hostlen; i++){
		char ch = rest[i];
		if(!isalnum((unsigned char)ch) && ch != '-' && ch != '.' && ch != ':' && ch != '_'){
			text__error(err, errlen, "plugin_opt_redis_url: '%s': the host has a character a host name or address does not", url);
			return -1;
		}
	}
	memcpy(ep->host, rest, hostlen);
	ep->host[hostlen] = '\0';
	if(*p == ':'){
		size_t n = strcspn(p + 1, "/");
		if(!port__parse(p + 1, n, &ep->port)){
			text__error(err, errlen, "plugin_opt_redis_url: '%s': the port is not a number from 1 to 65535", url);
			return -1;
		}
		p += 1 + n;
	}
	if(*p == '/' && p[1] != '\0'){
		if(!db__parse(p + 1, &ep->db)){
			text__error(err, errlen, "plugin_opt_redis_url: '%s': the database is not a number from 0 to 65535", url);
			return -1;
		}
	}else if(*p != '\0' && strcmp(p, "/")){
		text__error(err, errlen, "plugin_opt_redis_url: '%s' is not redis://host[:port][/db]", url);
		return -1;
	}
	return 0;
}

bool shared__prefix_valid(const char *prefix)
{
	size_t len = strlen(prefix);

	if(len == 0 || len > SHARED_PREFIX_MAX) return false;
	for(size_t i = 0; i < len; i++){
		char ch = prefix[i];
		if(!isalnum((unsigned char)ch) && !strchr("-_.:{}", ch)) return false;
	}
	return true;
}

double shared__fallback_share(double configured, int brokers)
{
	if(configured > 0.0) return configured;
	return brokers > 0 ? 1.0 / brokers : SHARED_FALLBACK_SHARE_UNKNOWN;
}

/* ---- the Redis thread ---- */

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

struct command {
	const char *argv[ARGS_MAX];
	size_t len[ARGS_MAX];
	int argc;
	char keys[3][KEY_MAX];
	char nums[5][32];
};

static void command__arg(struct command *cmd, const char *arg)
{
	cmd->argv[cmd->argc] = arg;
	cmd->len[cmd->argc] = strlen(arg);
	cmd->argc++;
}

static void command__evalsha(struct command *cmd, const struct shared *s, int script, int nkeys)
{
	cmd->argc = 0;
	command__arg(cmd, "EVALSHA");
	command__arg(cmd, s->sha[script]);
	snprintf(cmd->nums[4], sizeof(cmd->nums[4]), "%d", nkeys);
	command__arg(cmd, cmd->nums[4]);
	for(int k = 0; k < nkeys; k++) command__arg(cmd, cmd->keys[k]);
}

static long long interval__us(double qps)
{
	double us = 1e6 / (qps * SHARED_PACING);

	return us < 1.0 ? 1 : (long long)(us + 0.999);
}

/* The command that carries op. */
static void command__build(struct command *cmd, const struct shared *s, const struct shared_op *op)
{
	switch(op->kind){
		case SHARED_ADMIT:
			snprintf(cmd->keys[0], KEY_MAX, "%s:replay:%s:%s:%s", s->prefix, op->product_key, op->device_id, op->random);
			snprintf(cmd->keys[1], KEY_MAX, "%s:flow:%s:%s", s->prefix, op->product_key, op->device_id);
			snprintf(cmd->keys[2], KEY_MAX, "%s:brokers", s->prefix);
			command__evalsha(cmd, s, SCRIPT_ADMIT, 3);
			command__arg(cmd, op->random[0] ? "1" : "0");
			snprintf(cmd->nums[0], sizeof(cmd->nums[0]), "%d", SHARED_REPLAY_TTL_S);
			command__arg(cmd, cmd->nums[0]);
			command__arg(cmd, s->id);
			snprintf(cmd->nums[1], sizeof(cmd->nums[1]), "%lld", op->lock_ms > 0 ? op->lock_ms : 1);
			command__arg(cmd, cmd->nums[1]);
			snprintf(cmd->nums[2], sizeof(cmd->nums[2]), "%d", SHARED_ALIVE_MS);
			command__arg(cmd, cmd->nums[2]);
			return;
		case SHARED_RELEASE:
			snprintf(cmd->keys[0], KEY_MAX, "%s:flow:%s:%s", s->prefix, op->product_key, op->device_id);
			command__evalsha(cmd, s, SCRIPT_RELEASE, 1);
			command__arg(cmd, s->id);
			command__arg(cmd, op->exists ? "1" : "0");
			snprintf(cmd->nums[0], sizeof(cmd->nums[0]), "%d", SHARED_DONE_MARK_MS);
			command__arg(cmd, cmd->nums[0]);
			return;
		case SHARED_LEASE:
			snprintf(cmd->keys[0], KEY_MAX, "%s:quota:%s", s->prefix, op->action >= 0 && op->action < PLATFORM_ACTIONS
					? platform_actions[op->action].name : "unknown");
			command__evalsha(cmd, s, SCRIPT_LEASE, 1);
			snprintf(cmd->nums[0], sizeof(cmd->nums[0]), "%lld", interval__us(op->qps));
			command__arg(cmd, cmd->nums[0]);
			snprintf(cmd->nums[1], sizeof(cmd->nums[1]), "%d", op->want < 1 ? 1 : op->want);
			command__arg(cmd, cmd->nums[1]);
			snprintf(cmd->nums[2], sizeof(cmd->nums[2]), "%d", SHARED_LEASE_HORIZON_MS * 1000);
			command__arg(cmd, cmd->nums[2]);
			return;
		case SHARED_REFUSAL:
			snprintf(cmd->keys[0], KEY_MAX, "%s:refuse:%s:%s", s->prefix, op->by_address ? "addr" : "client", op->key);
			command__evalsha(cmd, s, SCRIPT_REFUSAL, 1);
			snprintf(cmd->nums[0], sizeof(cmd->nums[0]), "%d", op->max);
			command__arg(cmd, cmd->nums[0]);
			snprintf(cmd->nums[1], sizeof(cmd->nums[1]), "%ld", op->window_ms);
			command__arg(cmd, cmd->nums[1]);
			snprintf(cmd->nums[2], sizeof(cmd->nums[2]), "%ld", op->block_ms);
			command__arg(cmd, cmd->nums[2]);
			return;
		case SHARED_REPLAY:
			snprintf(cmd->keys[0], KEY_MAX, "%s:replay:%s:%s:%s", s->prefix, op->product_key, op->device_id, op->random);
			cmd->argc = 0;
			command__arg(cmd, "SET");
			command__arg(cmd, cmd->keys[0]);
			command__arg(cmd, "1");
			command__arg(cmd, "NX");
			command__arg(cmd, "EX");
			snprintf(cmd->nums[0], sizeof(cmd->nums[0]), "%d", SHARED_REPLAY_TTL_S);
			command__arg(cmd, cmd->nums[0]);
			return;
	}
}

static void command__heartbeat(struct command *cmd, const struct shared *s)
{
	snprintf(cmd->keys[0], KEY_MAX, "%s:brokers", s->prefix);
	command__evalsha(cmd, s, SCRIPT_HEARTBEAT, 1);
	command__arg(cmd, s->id);
	snprintf(cmd->nums[0], sizeof(cmd->nums[0]), "%d", SHARED_ALIVE_MS);
	command__arg(cmd, cmd->nums[0]);
	snprintf(cmd->nums[1], sizeof(cmd->nums[1]), "%d", SHARED_FRESH_MS);
	command__arg(cmd, cmd->nums[1]);
}

static bool reply__ints(const redisReply *r, size_t n)
{
	if(!r || r->type != REDIS_REPLY_ARRAY || r->elements < n) return false;
	for(size_t i = 0; i < n; i++){
		if(!r->element[i] || r->element[i]->type != REDIS_REPLY_INTEGER) return false;
	}
	return true;
}

enum reply_use { REPLY_USED, REPLY_NOSCRIPT, REPLY_REFUSED };

/* Reads op's answer, checked for type and range (Redis is a peer on the network too). */
static enum reply_use reply__read(struct shared_op *op, const redisReply *r, int64_t now)
{
	if(r->type == REDIS_REPLY_ERROR){
		return r->str && !strncmp(r->str, "NOSCRIPT", 8) ? REPLY_NOSCRIPT : REPLY_REFUSED;
	}
	switch(op->kind){
		case SHARED_ADMIT:
			if(!reply__ints(r, 2) || r->element[0]->integer < 0 || r->element[0]->integer > 2) return REPLY_REFUSED;
			op->verdict = (enum shared_verdict)r->element[0]->integer;
			op->exists_hint = op->verdict == SHARED_ADMITTED && r->element[1]->integer == 1;
			op->busy_ms = op->verdict == SHARED_BUSY ? r->element[1]->integer : 0;
			break;
		case SHARED_LEASE:
			if(!reply__ints(r, 3) || r->element[0]->integer < 0 || r->element[0]->integer > op->want
					|| r->element[1]->integer < 0 || r->element[1]->integer > 60LL * 1000000
					|| r->element[2]->integer < 1 || r->element[2]->integer > 3600LL * 1000000) return REPLY_REFUSED;
			op->slots = (int)r->element[0]->integer;
			op->first_us = r->element[1]->integer;
			op->interval_us = r->element[2]->integer;
			op->received_ms = now;
			break;
		case SHARED_REFUSAL:
			if(r->type != REDIS_REPLY_INTEGER) return REPLY_REFUSED;
			op->blocked_ms = r->integer > 0 && r->integer <= 86400000LL ? r->integer : 0;
			break;
		case SHARED_REPLAY:
			if(r->type == REDIS_REPLY_NIL) op->replayed = true;
			else if(r->type == REDIS_REPLY_STATUS) op->replayed = false;
			else return REPLY_REFUSED;
			break;
		case SHARED_RELEASE:
			break;
	}
	op->ok = true;
	return REPLY_USED;
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
		command__arg(&cmds[n], "AUTH");
		if(s->username) command__arg(&cmds[n], s->username);
		command__arg(&cmds[n], s->password);
		n++;
	}
	if(s->ep.db){
		select = n;
		command__arg(&cmds[n], "SELECT");
		snprintf(cmds[n].nums[0], sizeof(cmds[n].nums[0]), "%d", s->ep.db);
		command__arg(&cmds[n], cmds[n].nums[0]);
		n++;
	}
	first_script = n;
	for(int i = 0; i < SCRIPTS; i++, n++){
		command__arg(&cmds[n], "SCRIPT");
		command__arg(&cmds[n], "LOAD");
		command__arg(&cmds[n], scripts[i]);
	}
	info = n;
	command__arg(&cmds[n], "INFO");
	command__arg(&cmds[n], "server");
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
	command__heartbeat(&cmds[0], s);
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
		command__build(&cmds[i], s, vec[i]);
	}
	ncmd = n;
	if(beat){
		cmds[ncmd].argc = 0;
		command__heartbeat(&cmds[ncmd++], s);
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
		switch(reply__read(op, replies[i], now)){
			case REPLY_USED:
				*done_tail = op;
				done_tail = &op->next;
				break;
			case REPLY_NOSCRIPT:
				/* SCRIPT FLUSH, or a restarted Redis behind a proxy: load them and send it again */
				noscript = true;
				*again_tail = op;
				again_tail = &op->next;
				break;
			case REPLY_REFUSED:
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
		char key[KEY_MAX];
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
	snprintf(s->product_key, sizeof(s->product_key), "%s", opts->product_key ? opts->product_key : "");
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

enum shared_state shared__state(struct shared *s)
{
	enum shared_state state;

	pthread_mutex_lock(&s->lock);
	state = s->stats.state;
	pthread_mutex_unlock(&s->lock);
	return state;
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

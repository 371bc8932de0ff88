/* The pure half of the Redis module: what plugin_opt_redis_url and _prefix may say, the Lua
 * scripts, the command that carries each operation and the checks on each reply. No I/O, no
 * lock, no clock: the Redis thread (redis.c) calls it, and tests/unit/test_shared.c drives it. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "bootstrap_actions.h"
#include "bootstrap_scripts.h"
#include "bootstrap_text.h"

/* The scripts, loaded with SCRIPT LOAD on every connection and called with EVALSHA. Each runs
 * atomically on the server: no read-modify-write round trips between brokers. TIME is called
 * before writing; redis.replicate_commands() lets Redis 5 and 6 allow that (7 always does). */
const char *const scripts__lua[SCRIPTS] = {
	/* ADMIT. KEYS: replay, flow, brokers. ARGV: check replay (1/0), replay ttl s, my id, lock
	 * ms, alive ms. {0, hint}: the lock is ours (hint 1: a finished flow left the device
	 * existing); {1, 0}: the random was used; {2, pttl}: a live broker holds the lock; {3, ms
	 * to its expected end}: the name is in a live broker's batch registration ("b:<id>:<end>").
	 * A lock whose holder's heartbeat stopped (a broker that died) is taken over. */
	[SCRIPT_ADMIT] =
		"if redis.replicate_commands then redis.replicate_commands() end\n"
		"if ARGV[1] == '1' and not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then return {1, 0} end\n"
		"local t = redis.call('TIME')\n"
		"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
		"local owner = redis.call('GET', KEYS[2])\n"
		"local hint = 0\n"
		"if owner == 'done' then hint = 1\n"
		"elseif owner and string.sub(owner, 1, 2) == 'b:' then\n"
		"  local id, e = string.match(owner, '^b:(.*):(%d+)$')\n"
		"  local seen = id and redis.call('ZSCORE', KEYS[3], id)\n"
		"  if id == ARGV[3] then return {0, 0} end\n"
		"  if seen and tonumber(seen) > now - tonumber(ARGV[5]) then return {3, math.max(tonumber(e) - now, 0)} end\n"
		"elseif owner and owner ~= ARGV[3] then\n"
		"  local seen = redis.call('ZSCORE', KEYS[3], owner)\n"
		"  if seen and tonumber(seen) > now - tonumber(ARGV[5]) then return {2, redis.call('PTTL', KEYS[2])} end\n"
		"end\n"
		"redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])\n"
		"return {0, hint}\n",
	/* RELEASE. KEYS: flow. ARGV: my id, exists (1/0), mark ms, hold ms, left ms. Compare and
	 * delete: a lock another broker took over stays its own. With hold ms, the name stays this
	 * broker's that long, marked as in its batch registration until now + left ms. */
	[SCRIPT_RELEASE] =
		"if redis.replicate_commands then redis.replicate_commands() end\n"
		"local owner = redis.call('GET', KEYS[1])\n"
		"if owner ~= ARGV[1] and (not owner or not string.match(owner, '^b:(.*):%d+$') or string.match(owner, '^b:(.*):%d+$') ~= ARGV[1]) then return 0 end\n"
		"if tonumber(ARGV[4]) > 0 then\n"
		"  local t = redis.call('TIME')\n"
		"  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
		"  redis.call('SET', KEYS[1], 'b:' .. ARGV[1] .. ':' .. (now + tonumber(ARGV[5])), 'PX', ARGV[4])\n"
		"elseif ARGV[2] == '1' then redis.call('SET', KEYS[1], 'done', 'PX', ARGV[3]) else redis.call('DEL', KEYS[1]) end\n"
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

/* ---- the options ---- */

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

/* ---- commands and replies ---- */

void scripts__arg(struct command *cmd, const char *arg)
{
	cmd->argv[cmd->argc] = arg;
	cmd->len[cmd->argc] = strlen(arg);
	cmd->argc++;
}

static void command__evalsha(struct command *cmd, const struct script_ids *s, int script, int nkeys)
{
	cmd->argc = 0;
	scripts__arg(cmd, "EVALSHA");
	scripts__arg(cmd, s->sha[script]);
	snprintf(cmd->nums[4], sizeof(cmd->nums[4]), "%d", nkeys);
	scripts__arg(cmd, cmd->nums[4]);
	for(int k = 0; k < nkeys; k++) scripts__arg(cmd, cmd->keys[k]);
}

static long long interval__us(double qps)
{
	double us = 1e6 / (qps * SHARED_PACING);

	return us < 1.0 ? 1 : (long long)(us + 0.999);
}

void scripts__command(struct command *cmd, const struct script_ids *s, const struct shared_op *op)
{
	switch(op->kind){
		case SHARED_ADMIT:
			snprintf(cmd->keys[0], SCRIPTS_KEY_MAX, "%s:replay:%s:%s:%s", s->prefix, op->product_key, op->device_id, op->random);
			snprintf(cmd->keys[1], SCRIPTS_KEY_MAX, "%s:flow:%s:%s", s->prefix, op->product_key, op->device_id);
			snprintf(cmd->keys[2], SCRIPTS_KEY_MAX, "%s:brokers", s->prefix);
			command__evalsha(cmd, s, SCRIPT_ADMIT, 3);
			scripts__arg(cmd, op->random[0] ? "1" : "0");
			snprintf(cmd->nums[0], sizeof(cmd->nums[0]), "%d", SHARED_REPLAY_TTL_S);
			scripts__arg(cmd, cmd->nums[0]);
			scripts__arg(cmd, s->id);
			snprintf(cmd->nums[1], sizeof(cmd->nums[1]), "%lld", op->lock_ms > 0 ? op->lock_ms : 1);
			scripts__arg(cmd, cmd->nums[1]);
			snprintf(cmd->nums[2], sizeof(cmd->nums[2]), "%d", SHARED_ALIVE_MS);
			scripts__arg(cmd, cmd->nums[2]);
			return;
		case SHARED_RELEASE:
			snprintf(cmd->keys[0], SCRIPTS_KEY_MAX, "%s:flow:%s:%s", s->prefix, op->product_key, op->device_id);
			command__evalsha(cmd, s, SCRIPT_RELEASE, 1);
			scripts__arg(cmd, s->id);
			scripts__arg(cmd, op->exists ? "1" : "0");
			snprintf(cmd->nums[0], sizeof(cmd->nums[0]), "%d", SHARED_DONE_MARK_MS);
			scripts__arg(cmd, cmd->nums[0]);
			snprintf(cmd->nums[1], sizeof(cmd->nums[1]), "%lld", op->hold_ms > 0 ? op->hold_ms : 0);
			scripts__arg(cmd, cmd->nums[1]);
			snprintf(cmd->nums[2], sizeof(cmd->nums[2]), "%lld", op->left_ms > 0 ? op->left_ms : 0);
			scripts__arg(cmd, cmd->nums[2]);
			return;
		case SHARED_LEASE:
			snprintf(cmd->keys[0], SCRIPTS_KEY_MAX, "%s:quota:%s", s->prefix, op->action >= 0 && op->action < PLATFORM_ACTIONS
					? platform_actions[op->action].name : "unknown");
			command__evalsha(cmd, s, SCRIPT_LEASE, 1);
			snprintf(cmd->nums[0], sizeof(cmd->nums[0]), "%lld", interval__us(op->qps));
			scripts__arg(cmd, cmd->nums[0]);
			snprintf(cmd->nums[1], sizeof(cmd->nums[1]), "%d", op->want < 1 ? 1 : op->want);
			scripts__arg(cmd, cmd->nums[1]);
			snprintf(cmd->nums[2], sizeof(cmd->nums[2]), "%d", SHARED_LEASE_HORIZON_MS * 1000);
			scripts__arg(cmd, cmd->nums[2]);
			return;
		case SHARED_REFUSAL:
			snprintf(cmd->keys[0], SCRIPTS_KEY_MAX, "%s:refuse:%s:%s", s->prefix, op->by_address ? "addr" : "client", op->key);
			command__evalsha(cmd, s, SCRIPT_REFUSAL, 1);
			snprintf(cmd->nums[0], sizeof(cmd->nums[0]), "%d", op->max);
			scripts__arg(cmd, cmd->nums[0]);
			snprintf(cmd->nums[1], sizeof(cmd->nums[1]), "%ld", op->window_ms);
			scripts__arg(cmd, cmd->nums[1]);
			snprintf(cmd->nums[2], sizeof(cmd->nums[2]), "%ld", op->block_ms);
			scripts__arg(cmd, cmd->nums[2]);
			return;
		case SHARED_REPLAY:
			snprintf(cmd->keys[0], SCRIPTS_KEY_MAX, "%s:replay:%s:%s:%s", s->prefix, op->product_key, op->device_id, op->random);
			cmd->argc = 0;
			scripts__arg(cmd, "SET");
			scripts__arg(cmd, cmd->keys[0]);
			scripts__arg(cmd, "1");
			scripts__arg(cmd, "NX");
			scripts__arg(cmd, "EX");
			snprintf(cmd->nums[0], sizeof(cmd->nums[0]), "%d", SHARED_REPLAY_TTL_S);
			scripts__arg(cmd, cmd->nums[0]);
			return;
	}
}

void scripts__heartbeat(struct command *cmd, const struct script_ids *s)
{
	snprintf(cmd->keys[0], SCRIPTS_KEY_MAX, "%s:brokers", s->prefix);
	command__evalsha(cmd, s, SCRIPT_HEARTBEAT, 1);
	scripts__arg(cmd, s->id);
	snprintf(cmd->nums[0], sizeof(cmd->nums[0]), "%d", SHARED_ALIVE_MS);
	scripts__arg(cmd, cmd->nums[0]);
	snprintf(cmd->nums[1], sizeof(cmd->nums[1]), "%d", SHARED_FRESH_MS);
	scripts__arg(cmd, cmd->nums[1]);
}

static bool reply__ints(const redisReply *r, size_t n)
{
	if(!r || r->type != REDIS_REPLY_ARRAY || r->elements < n) return false;
	for(size_t i = 0; i < n; i++){
		if(!r->element[i] || r->element[i]->type != REDIS_REPLY_INTEGER) return false;
	}
	return true;
}

enum script_reply scripts__read(struct shared_op *op, const redisReply *r, int64_t now)
{
	if(r->type == REDIS_REPLY_ERROR){
		return r->str && !strncmp(r->str, "NOSCRIPT", 8) ? SCRIPT_REPLY_NOSCRIPT : SCRIPT_REPLY_REFUSED;
	}
	switch(op->kind){
		case SHARED_ADMIT:
			if(!reply__ints(r, 2) || r->element[0]->integer < 0 || r->element[0]->integer > 3) return SCRIPT_REPLY_REFUSED;
			op->verdict = (enum shared_verdict)r->element[0]->integer;
			op->exists_hint = op->verdict == SHARED_ADMITTED && r->element[1]->integer == 1;
			op->busy_ms = op->verdict == SHARED_BUSY || op->verdict == SHARED_IN_BATCH ? r->element[1]->integer : 0;
			break;
		case SHARED_LEASE:
			if(!reply__ints(r, 3) || r->element[0]->integer < 0 || r->element[0]->integer > op->want
					|| r->element[1]->integer < 0 || r->element[1]->integer > 60LL * 1000000
					|| r->element[2]->integer < 1 || r->element[2]->integer > 3600LL * 1000000) return SCRIPT_REPLY_REFUSED;
			op->slots = (int)r->element[0]->integer;
			op->first_us = r->element[1]->integer;
			op->interval_us = r->element[2]->integer;
			op->received_ms = now;
			break;
		case SHARED_REFUSAL:
			if(r->type != REDIS_REPLY_INTEGER) return SCRIPT_REPLY_REFUSED;
			op->blocked_ms = r->integer > 0 && r->integer <= 86400000LL ? r->integer : 0;
			break;
		case SHARED_REPLAY:
			if(r->type == REDIS_REPLY_NIL) op->replayed = true;
			else if(r->type == REDIS_REPLY_STATUS) op->replayed = false;
			else return SCRIPT_REPLY_REFUSED;
			break;
		case SHARED_RELEASE:
			break;
	}
	op->ok = true;
	return SCRIPT_REPLY_USED;
}

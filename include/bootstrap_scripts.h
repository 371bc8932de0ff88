#ifndef BOOTSTRAP_SCRIPTS_H
#define BOOTSTRAP_SCRIPTS_H
/* What the Redis thread says to Redis, and what Redis's answers may mean: the Lua scripts, the
 * command that carries each shared operation, and the type and range checks on each reply.
 * Pure (no I/O, no lock, no clock): plugin/shared/scripts.c, called by the Redis thread. */
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "bootstrap_shared.h"

#define SCRIPTS_KEY_MAX 256
#define SCRIPTS_ARGS_MAX 12

/* The scripts, loaded with SCRIPT LOAD on every connection and called with EVALSHA. */
enum { SCRIPT_ADMIT, SCRIPT_RELEASE, SCRIPT_LEASE, SCRIPT_REFUSAL, SCRIPT_HEARTBEAT, SCRIPTS };
extern const char *const scripts__lua[SCRIPTS];

/* What a command names: the key prefix, this broker's id, and the scripts' SHA-1 ids as the
 * connection loaded them. */
struct script_ids {
	const char *prefix;
	const char *id;
	const char *sha[SCRIPTS];
};

/* One command as hiredis sends it; argv points into keys, nums or constants. */
struct command {
	const char *argv[SCRIPTS_ARGS_MAX];
	size_t len[SCRIPTS_ARGS_MAX];
	int argc;
	char keys[3][SCRIPTS_KEY_MAX];
	char nums[5][32];
};

/* Appends arg, which must outlive the command. */
void scripts__arg(struct command *cmd, const char *arg);
/* The command that carries op (cmd->argc 0 before). */
void scripts__command(struct command *cmd, const struct script_ids *ids, const struct shared_op *op);
/* The heartbeat: this broker is alive; its answer counts the brokers connected now. */
void scripts__heartbeat(struct command *cmd, const struct script_ids *ids);

enum script_reply {
	SCRIPT_REPLY_USED,     /* op holds its answer, ok set */
	SCRIPT_REPLY_NOSCRIPT, /* Redis lost the scripts: load them again and resend */
	SCRIPT_REPLY_REFUSED,  /* an error, or an answer out of type or range: op goes on locally */
};
/* Reads op's answer r (received at now, monotonic ms), checked for type and range: Redis is a
 * peer on the network too. */
enum script_reply scripts__read(struct shared_op *op, const redisReply *r, int64_t now);

#endif

#ifndef BOOTSTRAP_ACTIONS_H
#define BOOTSTRAP_ACTIONS_H
/* The IoT Platform OpenAPI actions the plugin calls, described once: name, the account's
 * quota, how many devices one call carries, how its answer's Data is read, which metric it
 * moves. Adding an action is one row in openapi.c plus its parser. Read-only; any thread. */
#include <stdbool.h>
#include <stddef.h>

enum platform_action {
	ACTION_REGISTER = 0,   /* RegisterDevice */
	ACTION_QUERY,          /* QueryDeviceDetail */
	ACTION_BATCH_QUERY,    /* BatchQueryDeviceDetail: up to 100 existing devices' details */
	ACTION_BATCH_CHECK,    /* BatchCheckDeviceNames: starts a batch registration (an ApplyId) */
	ACTION_BATCH_STATUS,   /* QueryBatchRegisterDeviceStatus: where the ApplyId stands */
	ACTION_BATCH_REGISTER, /* BatchRegisterDeviceWithApplyId: creates the checked names */
	ACTION_BATCH_PAGE,     /* QueryPageByApplyId: the created devices, 50 a page */
	PLATFORM_ACTIONS
};

struct platform_answer;
struct json_t;

struct platform_action_info {
	const char *name;       /* the OpenAPI Action, and its level in the metric topics */
	const char *qps_option; /* the plugin_opt_ that sets this broker's share of the quota */
	double quota_qps;       /* the account's documented quota: the option's default */
	int per_call;           /* devices (names) one call carries at most; 1: a single device */
	bool product_key;       /* takes ProductKey (QueryPageByApplyId does not) */
	/* V3: parameters in a form body (signed Content-Type and body hash), not the query the SDK
	 * uses: 10 000 names in a query make a ~490 KB URL, beyond any HTTP front end's limit.
	 * Only BatchCheckDeviceNames; its API metadata names formData as its body type. */
	bool form_body;
	/* Reads a successful answer's payload (the whole JSON object) into answer; false when
	 * it is incomplete. Never trusts it: bounded, type-checked. */
	bool (*parse)(struct json_t *root, struct platform_answer *answer);
};

extern const struct platform_action_info platform_actions[PLATFORM_ACTIONS];

#endif

/* The reasons a request ends as it does (bootstrap_reason.h): the one table of their names and
 * codes. Pure; any thread. */
#include "bootstrap_reason.h"
#include "bootstrap_reply.h"

#define REASON_ROW(e, token, code) [e] = { token, code },
static const struct {
	const char *name;
	int code; /* enum bootstrap_code, or AUDIT_ONLY */
} reasons[REASON_COUNT] = { BOOTSTRAP_REASONS(REASON_ROW) };
#undef REASON_ROW

const char *reason__name(enum bootstrap_reason reason)
{
	if((int)reason <= REASON_NONE || reason >= REASON_COUNT) return NULL;
	return reasons[reason].name;
}

int reason__code(enum bootstrap_reason reason)
{
	if((int)reason <= REASON_NONE || reason >= REASON_COUNT) return BOOTSTRAP_INTERNAL;
	return reasons[reason].code;
}

/* The batch registrations under way, kept across a restart (plugin_opt_batch_state_file): each
 * apply's ApplyId, product, names, stage and times, and the stage estimates, as JSON. No
 * secret: an apply holds none. Once restarted, an ApplyId the platform still knows is resumed
 * (its status asked again), not repeated; one it forgot fails its names as any lost apply does.
 * The scheduler's side (dump, restore: no I/O) and the file's (read, atomic write: the worker
 * thread's). Runs on the worker thread. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "bootstrap_scheduler_internal.h"

#define STATE_VERSION 1
/* bounds on what a file may hold: the applies at once, the names of one, the file itself */
#define STATE_APPLIES_MAX 64
#define STATE_NAMES_MAX 10000
#define STATE_FILE_MAX (16 * 1024 * 1024)
/* What a file may say, whoever wrote it: a stage estimate of an hour at most (beyond it the
 * stall bound gives the batch up anyway), times within a day of the clock, counts below a
 * million. Anything else is not restored: no overflow, no absurd retryAfter. */
#define STATE_STAGE_MAX_MS 3600000.0
#define STATE_SKEW_MAX_MS (24LL * 3600 * 1000)
#define STATE_COUNT_MAX 1000000

/* What a restart would have to resume changed: a digest of every apply's state. */
uint64_t scheduler__batch_version(const struct scheduler *s)
{
	uint64_t h = 1469598103934665603ULL;

#define MIX(v) (h = (h ^ (uint64_t)(v)) * 1099511628211ULL)
	MIX(s->napplies);
	MIX(s->stages_seen[0]);
	MIX(s->stages_seen[1]);
	for(const struct batch *b = s->applies; b; b = b->next){
		MIX(b->state);
		MIX(b->live);
		MIX(b->rounds);
		MIX(b->register_sent);
		for(const char *c = b->apply_id; *c; c++) MIX(*c);
	}
#undef MIX
	return h;
}

/* An apply worth resuming: its ApplyId known, its stage running. */
static const char *state__name(const struct batch *b)
{
	if(!b->apply_id[0] || b->live == 0) return NULL;
	switch(b->state){
		case APPLY_CHECKING:
		case APPLY_REGISTER: return "checking"; /* the status tells whether the register call went */
		case APPLY_CREATING: return "creating";
		case APPLY_CHECK:
		case APPLY_OVER: break;
	}
	return NULL;
}

char *scheduler__batch_dump(const struct scheduler *s, int64_t now)
{
	int64_t wall_ms = (int64_t)scheduler__wall((struct scheduler *)s) * 1000;
	json_t *root = json_object(), *applies = json_array(), *est = json_object();
	char *text = NULL;

	if(!root || !applies || !est) goto done;
	json_object_set_new(est, "checkMs", json_real(s->stage_ms[0]));
	json_object_set_new(est, "checkDevMs", json_real(s->stage_dev_ms[0]));
	json_object_set_new(est, "checks", json_integer((json_int_t)s->stages_seen[0]));
	json_object_set_new(est, "createMs", json_real(s->stage_ms[1]));
	json_object_set_new(est, "createDevMs", json_real(s->stage_dev_ms[1]));
	json_object_set_new(est, "creates", json_integer((json_int_t)s->stages_seen[1]));
	for(const struct batch *b = s->applies; b; b = b->next){
		const char *state = state__name(b);
		json_t *a, *names;
		if(!state || !(a = json_object())) continue;
		names = json_array();
		for(size_t i = 0; names && i < b->nnames; i++){
			if(b->names[i]) json_array_append_new(names, json_string(b->names[i]->name));
		}
		json_object_set_new(a, "applyId", json_string(b->apply_id));
		json_object_set_new(a, "productKey", json_string(b->product_key));
		json_object_set_new(a, "state", json_string(state));
		json_object_set_new(a, "rounds", json_integer(b->rounds));
		json_object_set_new(a, "registerSent", json_boolean(b->register_sent));
		json_object_set_new(a, "startedAt", json_integer((json_int_t)(wall_ms - (now - b->started_ms))));
		json_object_set_new(a, "stageAt", json_integer((json_int_t)(wall_ms - (now - b->stage_ms))));
		json_object_set_new(a, "giveUpAt", json_integer((json_int_t)(wall_ms + (b->give_up_ms - now))));
		json_object_set_new(a, "names", names ? names : json_array());
		json_array_append_new(applies, a);
	}
	json_object_set_new(root, "version", json_integer(STATE_VERSION));
	json_object_set_new(root, "estimate", est);
	est = NULL;
	json_object_set_new(root, "applies", applies);
	applies = NULL;
	text = json_dumps(root, JSON_COMPACT);
done:
	json_decref(est);
	json_decref(applies);
	json_decref(root);
	return text;
}

static bool state__text(const char *v, size_t max)
{
	size_t n = v ? strnlen(v, max + 1) : 0;

	if(n == 0 || n > max) return false;
	for(size_t i = 0; i < n; i++){
		if((unsigned char)v[i] <= ' ' || (unsigned char)v[i] >= 0x7f) return false;
	}
	return true;
}

/* A wall-clock time from the file, or wall_ms when it is not within a day of it. */
static int64_t state__time(json_t *v, int64_t wall_ms)
{
	json_int_t t = json_integer_value(v);

	return json_is_integer(v) && t >= wall_ms - STATE_SKEW_MAX_MS && t <= wall_ms + STATE_SKEW_MAX_MS ? (int64_t)t : wall_ms;
}

/* A stage estimate (ms) or count from the file, or -1 when it is out of bounds. */
static double state__bounded(json_t *v, double max)
{
	double x = json_number_value(v);

	return json_is_number(v) && x >= 0.0 && x <= max ? x : -1.0;
}

/* One saved apply back in the list, its names busy again; false when unusable. */
static bool state__apply(struct scheduler *s, json_t *a, int64_t wall_ms, int64_t now)
{
	const char *id = json_string_value(json_object_get(a, "applyId"));
	const char *pk = json_string_value(json_object_get(a, "productKey"));
	const char *state = json_string_value(json_object_get(a, "state"));
	json_t *names = json_object_get(a, "names"), *v;
	struct batch *b;
	size_t i;

	if(!state__text(id, 23) || !state__text(pk, PRODUCT_KEY_MAX) || !state || !json_is_array(names)
			|| json_array_size(names) == 0 || json_array_size(names) > STATE_NAMES_MAX) return false;
	if(strcmp(state, "checking") && strcmp(state, "creating")) return false;
	if(!(b = calloc(1, sizeof(*b))) || !(b->names = calloc(json_array_size(names), sizeof(*b->names)))){
		free(b);
		return false;
	}
	snprintf(b->apply_id, sizeof(b->apply_id), "%s", id);
	snprintf(b->product_key, sizeof(b->product_key), "%s", pk);
	b->state = strcmp(state, "creating") ? APPLY_CHECKING : APPLY_CREATING;
	b->due_ms = now;
	b->rounds = (int)state__bounded(json_object_get(a, "rounds"), STATE_COUNT_MAX);
	if(b->rounds < 1) b->rounds = 1;
	b->register_sent = json_is_true(json_object_get(a, "registerSent")) || b->state == APPLY_CREATING;
	b->started_ms = now - (wall_ms - state__time(json_object_get(a, "startedAt"), wall_ms));
	b->stage_ms = now - (wall_ms - state__time(json_object_get(a, "stageAt"), wall_ms));
	b->give_up_ms = now + (state__time(json_object_get(a, "giveUpAt"), wall_ms) - wall_ms);
	if(b->stage_ms > now) b->stage_ms = now;
	if(b->started_ms > b->stage_ms) b->started_ms = b->stage_ms;
	json_array_foreach(names, i, v){
		const char *name = json_string_value(v);
		struct batch_name *n;
		if(!state__text(name, DEVICE_NAME_MAX)) continue;
		if((n = names__join(s, b, pk, name, now))) b->names[b->nnames++] = n;
	}
	apply__link(s, b);
	return true;
}

int scheduler__batch_restore(struct scheduler *s, const char *text, size_t len, int64_t now)
{
	int64_t wall_ms = (int64_t)scheduler__wall(s) * 1000;
	json_t *root = json_loadb(text, len, 0, NULL), *est, *applies, *a;
	int resumed = 0;
	size_t i;

	if(!json_is_object(root) || json_integer_value(json_object_get(root, "version")) != STATE_VERSION){
		json_decref(root);
		return -1;
	}
	est = json_object_get(root, "estimate");
	if(json_is_object(est) && state__bounded(json_object_get(est, "checkMs"), STATE_STAGE_MAX_MS) > 0
			&& state__bounded(json_object_get(est, "createMs"), STATE_STAGE_MAX_MS) > 0
			&& state__bounded(json_object_get(est, "checks"), STATE_COUNT_MAX) >= 0
			&& state__bounded(json_object_get(est, "creates"), STATE_COUNT_MAX) >= 0){
		/* what the platform's stages have taken is worth keeping: the first devices told after
		 * a restart are told right */
		s->stage_ms[0] = json_number_value(json_object_get(est, "checkMs"));
		s->stage_dev_ms[0] = state__bounded(json_object_get(est, "checkDevMs"), STATE_STAGE_MAX_MS);
		s->stages_seen[0] = (unsigned long long)json_integer_value(json_object_get(est, "checks"));
		s->stage_ms[1] = json_number_value(json_object_get(est, "createMs"));
		s->stage_dev_ms[1] = state__bounded(json_object_get(est, "createDevMs"), STATE_STAGE_MAX_MS);
		s->stages_seen[1] = (unsigned long long)json_integer_value(json_object_get(est, "creates"));
		for(int k = 0; k < 2; k++){
			if(s->stage_dev_ms[k] < 0 || s->stage_dev_ms[k] > s->stage_ms[k]) s->stage_dev_ms[k] = 0;
		}
		s->apply_estimate_ms = s->stage_ms[0] + s->stage_ms[1] + 2.0 * (s->stage_dev_ms[0] + s->stage_dev_ms[1]);
	}
	applies = json_object_get(root, "applies");
	json_array_foreach(applies, i, a){
		if(resumed >= STATE_APPLIES_MAX) break;
		resumed += state__apply(s, a, wall_ms, now);
	}
	json_decref(root);
	return resumed;
}

/* ---- the file ---- */

char *batch_state__read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *text;

	*len = 0;
	if(!f) return NULL;
	text = malloc(STATE_FILE_MAX);
	if(text) *len = fread(text, 1, STATE_FILE_MAX, f);
	fclose(f);
	if(text && (*len == 0 || *len >= STATE_FILE_MAX)){
		free(text);
		text = NULL;
	}
	return text;
}

/* Written whole to path.tmp, mode 0600, synced, then renamed over path: a crash leaves the
 * old file or the new one, never half of one. 0 or -1 (errno). */
int batch_state__write(const char *path, const char *text)
{
	char tmp[4096];
	size_t len = strlen(text), done = 0;
	int fd, err = 0;

	if(snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)){
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if(fd < 0) return -1;
	if(fchmod(fd, 0600)) err = errno;
	while(!err && done < len){
		ssize_t n = write(fd, text + done, len - done);
		if(n < 0 && errno == EINTR) continue;
		if(n <= 0) err = n < 0 ? errno : EIO;
		else done += (size_t)n;
	}
	if(!err && fsync(fd)) err = errno;
	if(close(fd) && !err) err = errno;
	if(!err && rename(tmp, path)) err = errno;
	if(err){
		unlink(tmp);
		errno = err;
		return -1;
	}
	return 0;
}

/* The platform actions, one row each, and how each one's successful answer is read.
 * Shapes are those of Alibaba's SDK models (@alicloud/iot20180120). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "bootstrap_actions.h"
#include "bootstrap_platform.h"
#include "bootstrap_text.h"

/* A string field that fits dst whole (no NUL inside), else false. */
static bool field__copy(json_t *obj, const char *name, char *dst, size_t dstlen)
{
	json_t *v = json_object_get(obj, name);
	size_t len;

	if(!json_is_string(v)) return false;
	len = json_string_length(v);
	if(len == 0 || len >= dstlen || strlen(json_string_value(v)) != len) return false;
	memcpy(dst, json_string_value(v), len + 1);
	return true;
}

/* jansson frees strings without wiping: wipe a DeviceSecret in the parsed tree first. */
static void secret__wipe(json_t *obj)
{
	json_t *v = json_object_get(obj, "DeviceSecret");

	if(json_is_string(v)) OPENSSL_cleanse((void *)json_string_value(v), json_string_length(v));
}

/* A device's details: ProductKey (unless product_key is false: a page does not carry it),
 * DeviceName, DeviceSecret, IotId, and Status when there is one. The secret is wiped from obj. */
static bool device__read(json_t *obj, bool product_key, struct device_triple *t, char *status, size_t statuslen)
{
	bool ok = json_is_object(obj)
			&& (!product_key || field__copy(obj, "ProductKey", t->product_key, sizeof(t->product_key)))
			&& field__copy(obj, "DeviceName", t->device_name, sizeof(t->device_name))
			&& field__copy(obj, "DeviceSecret", t->device_secret, sizeof(t->device_secret))
			&& field__copy(obj, "IotId", t->iot_id, sizeof(t->iot_id));

	if(ok && status) text__escape(status, statuslen, json_string_value(json_object_get(obj, "Status")));
	if(json_is_object(obj)) secret__wipe(obj);
	if(!ok) OPENSSL_cleanse(t, sizeof(*t));
	return ok;
}

/* Room for more devices in the answer's list; false beyond the bound or out of memory. */
static bool answer__grow(struct platform_answer *a, size_t more)
{
	struct platform_device *grown;

	if(more == 0) return true;
	if(more > PLATFORM_MAX_ANSWER_DEVICES || a->ndevices > PLATFORM_MAX_ANSWER_DEVICES - more) return false;
	grown = realloc(a->devices, (a->ndevices + more) * sizeof(*grown));
	if(!grown) return false;
	memset(grown + a->ndevices, 0, more * sizeof(*grown));
	a->devices = grown;
	return true;
}

/* RegisterDevice, QueryDeviceDetail: Data holds one device. */
static bool parse__single(json_t *root, struct platform_answer *a)
{
	return device__read(json_object_get(root, "Data"), true, &a->triple, a->status, sizeof(a->status));
}

/* A list of devices with their details (BatchQueryDeviceDetail's Data.Data[], a page's
 * ApplyDeviceList.ApplyDeviceInfo[]). An unreadable entry is left out and counted: the
 * devices of the readable ones need not wait for it (the caller asks about the rest singly). */
static bool parse__devices(json_t *list, bool product_key, struct platform_answer *a)
{
	size_t i;
	json_t *item;

	if(!json_is_array(list) || !answer__grow(a, json_array_size(list))) return false;
	json_array_foreach(list, i, item){
		struct platform_device *d = &a->devices[a->ndevices];
		if(!device__read(item, product_key, &d->triple, d->status, sizeof(d->status))){
			a->unreadable++;
			continue;
		}
		d->kind = DEVICE_FOUND;
		memcpy(d->name, d->triple.device_name, sizeof(d->name));
		a->ndevices++;
	}
	return true;
}

static bool parse__batch_query(json_t *root, struct platform_answer *a)
{
	json_t *data = json_object_get(root, "Data");

	/* nothing found: the platform may leave the list out */
	if(json_is_object(data) && !json_object_get(data, "Data")) return true;
	return parse__devices(json_object_get(data, "Data"), true, a);
}

/* Data.ApplyId: a number (or its digits as a string). */
static bool parse__apply_id(json_t *root, struct platform_answer *a)
{
	json_t *v = json_object_get(json_object_get(root, "Data"), "ApplyId");

	if(json_is_integer(v) && json_integer_value(v) > 0){
		snprintf(a->apply_id, sizeof(a->apply_id), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return true;
	}
	if(!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= sizeof(a->apply_id)) return false;
	for(const char *c = json_string_value(v); *c; c++){
		if(*c < '0' || *c > '9') return false;
	}
	memcpy(a->apply_id, json_string_value(v), json_string_length(v) + 1);
	return true;
}

/* Names in list.Name[] as kind; a name that is not a string is skipped. */
static bool names__add(json_t *list, enum platform_device_kind kind, struct platform_answer *a)
{
	size_t i;
	json_t *item;

	if(!list) return true;
	if(!json_is_array(list) || !answer__grow(a, json_array_size(list))) return false;
	json_array_foreach(list, i, item){
		struct platform_device *d = &a->devices[a->ndevices];
		if(!json_is_string(item) || json_string_length(item) == 0 || json_string_length(item) >= sizeof(d->name)) continue;
		memcpy(d->name, json_string_value(item), json_string_length(item) + 1);
		d->kind = kind;
		a->ndevices++;
	}
	return true;
}

static int device__name_cmp(const void *x, const void *y)
{
	return strcmp(((const struct platform_device *)x)->name, ((const struct platform_device *)y)->name);
}

/* A name refused by a check because a device of that name exists. InvalidDetailList's entries
 * carry no code, only ErrorMsg (documented as messages joined by "|", e.g. "The device name
 * already exists."): the message is all there is, so a reason part that says "already exist"
 * counts ("does not exist" must not). A miss costs nothing but a call: an invalid name goes to
 * RegisterDevice, whose documented code iot.device.AlreadyExistedDeviceName tells it exists. */
static bool reason__exists(const char *why)
{
	for(const char *part = why; *part; ){
		size_t len = strcspn(part, "|");
		for(size_t i = 0; i + strlen("already exist") <= len; i++){
			if(!strncasecmp(part + i, "already exist", strlen("already exist"))) return true;
		}
		part += len + (part[len] == '|');
	}
	return false;
}

/* Data.Status, and the verdict on each name: ValidList.Name[], InvalidList.Name[], with the
 * reason from InvalidDetailList.invalidDetailList[] {DeviceName, ErrorMsg} where given. The
 * invalid names are sorted and looked up, and details beyond their number are not read: a
 * hostile answer costs n log n, not n squared. */
static bool parse__batch_status(json_t *root, struct platform_answer *a)
{
	json_t *data = json_object_get(root, "Data"), *details, *item;
	size_t i, invalid_from, invalid, read = 0;

	if(!json_is_object(data) || !field__copy(data, "Status", a->stage, sizeof(a->stage))) return false;
	/* it reaches logs only as one of the stages it is compared with, but keep it printable like
	 * every other text from the platform (found by fuzz_answer) */
	{
		char raw[sizeof(a->stage)];
		memcpy(raw, a->stage, sizeof(raw));
		text__escape(a->stage, sizeof(a->stage), raw);
	}
	if(!names__add(json_object_get(json_object_get(data, "ValidList"), "Name"), DEVICE_VALID, a)) return false;
	invalid_from = a->ndevices;
	if(!names__add(json_object_get(json_object_get(data, "InvalidList"), "Name"), DEVICE_INVALID, a)) return false;
	invalid = a->ndevices - invalid_from;
	if(invalid == 0) return true;
	qsort(a->devices + invalid_from, invalid, sizeof(*a->devices), device__name_cmp);
	details = json_object_get(json_object_get(data, "InvalidDetailList"), "invalidDetailList");
	if(!json_is_array(details)) return true;
	json_array_foreach(details, i, item){
		struct platform_device key, *d;
		const char *name = json_string_value(json_object_get(item, "DeviceName"));
		const char *why = json_string_value(json_object_get(item, "ErrorMsg"));
		if(read++ >= invalid) break;
		if(!name || !why || strlen(name) >= sizeof(key.name)) continue;
		memcpy(key.name, name, strlen(name) + 1);
		d = bsearch(&key, a->devices + invalid_from, invalid, sizeof(*a->devices), device__name_cmp);
		if(!d) continue;
		text__escape(d->reason, sizeof(d->reason), why);
		if(reason__exists(why)) d->kind = DEVICE_EXISTS;
	}
	return true;
}

/* Top level (no Data): Page, PageCount, Total, ApplyDeviceList.ApplyDeviceInfo[]. */
static bool parse__page(json_t *root, struct platform_answer *a)
{
	json_t *count = json_object_get(root, "PageCount"), *total = json_object_get(root, "Total");

	if(!json_is_integer(count) || !json_is_integer(total) || json_integer_value(count) < 0 || json_integer_value(total) < 0) return false;
	a->page_count = (long)(json_integer_value(count) < 1000000 ? json_integer_value(count) : 1000000);
	a->total = (long)(json_integer_value(total) < 1000000 ? json_integer_value(total) : 1000000);
	return parse__devices(json_object_get(json_object_get(root, "ApplyDeviceList"), "ApplyDeviceInfo"), false, a);
}

const struct platform_action_info platform_actions[PLATFORM_ACTIONS] = {
	[ACTION_REGISTER] = {"RegisterDevice", "register_qps", 30, 1, true, false, parse__single},
	[ACTION_QUERY] = {"QueryDeviceDetail", "query_qps", 50, 1, true, false, parse__single},
	[ACTION_BATCH_QUERY] = {"BatchQueryDeviceDetail", "batch_query_qps", 5, 100, true, false, parse__batch_query},
	[ACTION_BATCH_CHECK] = {"BatchCheckDeviceNames", "batch_check_qps", 10, 10000, true, true, parse__apply_id},
	[ACTION_BATCH_STATUS] = {"QueryBatchRegisterDeviceStatus", "batch_status_qps", 30, 10000, true, false, parse__batch_status},
	[ACTION_BATCH_REGISTER] = {"BatchRegisterDeviceWithApplyId", "batch_register_qps", 500, 10000, true, false, parse__apply_id},
	[ACTION_BATCH_PAGE] = {"QueryPageByApplyId", "batch_page_qps", 50, 50, false, false, parse__page},
};

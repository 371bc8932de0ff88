/* An example device: gets its IoT Platform identity from a mosquitto-bootstrap broker, keeps
 * it in a file only its owner can read, and prints how to connect to the platform with it.
 *
 *   bootstrap_device -h HOST -p PORT -k PRODUCT_KEY -s PRODUCT_SECRET_FILE -d DEVICE_ID
 *                    -o TRIPLE_FILE [-r REGION] [-w SECONDS]
 *
 * The request is signed exactly like Alibaba's own dynamic registration, and names its product
 * (productKey) as that request does, so device code written for that can be reused and one
 * broker can serve several products. The triple arrives sealed with a key only a holder of the
 * ProductSecret can derive for this very request (README "Sealed replies"): a success reply
 * that is not sealed, or does not open, is a forgery and is ignored. On busy/throttled/
 * unavailable it waits retryAfter and asks again. */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <mosquitto.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "aliyun_mqtt.h"
#include "bootstrap_seal.h"

#define MAX_TRIES 10
/* a retryAfter beyond this is not believed: on plain TCP anyone on the path can forge an error */
#define RETRY_MAX_S 300

static struct {
	const char *host, *product_key, *device_id, *out, *region;
	int port;
	int wait_s; /* how long to wait for the genuine answer to one request */
	char product_secret[257];
} opt = { "127.0.0.1", NULL, NULL, NULL, "cn-shanghai", 1883, 60, "" };

static json_t *answer;     /* the accepted reply: an error, or a success whose triple opened */
static json_t *triple;     /* the opened triple of a success reply */
static unsigned char reply_key[SEAL_KEY_LEN]; /* for the request asked last */
static bool subscribed;

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
	(void)m; (void)ud; (void)mid; (void)n; (void)granted;
	subscribed = true;
}

static bool member__is(const json_t *obj, const char *name, const char *want)
{
	const json_t *v = json_object_get(obj, name);
	return json_is_string(v) && !strcmp(json_string_value(v), want);
}

/* The triple sealed in reply for the request asked last, or NULL (with why) when the reply is
 * not the genuine answer to it. */
static json_t *triple__open(const json_t *reply, const char **why)
{
	char *plain = NULL;
	size_t len = 0;
	json_t *t;

	switch(seal__open(reply_key, reply, &plain, &len)){
		case SEAL_OPENED: break;
		case SEAL_NOT_SEALED: *why = "not sealed"; return NULL;
		case SEAL_MALFORMED: *why = "malformed seal"; return NULL;
		case SEAL_FORGED: *why = "does not open with this request's key"; return NULL;
	}
	t = json_loadb(plain, len, JSON_REJECT_DUPLICATES, NULL);
	OPENSSL_cleanse(plain, len);
	free(plain);
	if(!json_is_object(t) || !member__is(t, "DeviceName", opt.device_id) || !member__is(t, "ProductKey", opt.product_key)
			|| !json_is_string(json_object_get(t, "DeviceSecret")) || !json_is_string(json_object_get(t, "IotId"))){
		json_decref(t);
		*why = "sealed for another device or product";
		return NULL;
	}
	return t;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
	json_t *reply;
	const char *why = NULL;

	(void)m; (void)ud;
	if(answer) return; /* the first genuine answer counts */
	reply = json_loadb(msg->payload, (size_t)msg->payloadlen, 0, NULL);
	if(!json_is_object(reply)){
		json_decref(reply);
		return;
	}
	if(!json_is_true(json_object_get(reply, "success"))){
		/* an error names its code; anything else is not a reply of the service's */
		if(!json_is_false(json_object_get(reply, "success")) || !json_is_string(json_object_get(reply, "code"))){
			fprintf(stderr, "ignored a malformed reply\n");
			json_decref(reply);
			return;
		}
	}else{
		/* anyone able to publish here could send a "success": only the seal tells */
		triple = triple__open(reply, &why);
		if(!triple){
			fprintf(stderr, "ignored a success reply that is not the genuine answer (%s)\n", why);
			json_decref(reply);
			return;
		}
	}
	answer = reply;
}

/* {"productKey","deviceId","random","signMethod":"hmacsha256","sign"} with a fresh random; the
 * key its answer is sealed with goes to reply_key. */
static char *signed_request(void)
{
	unsigned char r[8], mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char random[17], content[256], sign[65];
	json_t *req;
	char *text;

	if(RAND_bytes(r, sizeof(r)) != 1) return NULL;
	for(int i = 0; i < 8; i++) snprintf(random + 2 * i, 3, "%02x", r[i]);
	snprintf(content, sizeof(content), "deviceName%sproductKey%srandom%s", opt.device_id, opt.product_key, random);
	HMAC(EVP_sha256(), opt.product_secret, (int)strlen(opt.product_secret), (unsigned char *)content, strlen(content), mac, &maclen);
	for(unsigned int i = 0; i < maclen; i++) snprintf(sign + 2 * i, 3, "%02x", mac[i]);
	if(seal__derive_key(opt.product_secret, random, opt.product_key, opt.device_id, reply_key)) return NULL;
	req = json_pack("{s:s, s:s, s:s, s:s, s:s}", "productKey", opt.product_key, "deviceId", opt.device_id, "random", random,
			"signMethod", "hmacsha256", "sign", sign);
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	return text;
}

/* The triple, readable by this user only: created 0600, never widened by the umask. */
static int store_triple(json_t *data)
{
	char *text = json_dumps(data, JSON_COMPACT);
	int fd = open(opt.out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = -1;

	if(text && fd >= 0 && fchmod(fd, 0600) == 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text)) rc = 0;
	if(fd >= 0) close(fd);
	free(text);
	return rc;
}

enum wait_result { WAIT_ANSWER, WAIT_TIMEOUT, WAIT_LOST };

static enum wait_result wait_answer(struct mosquitto *m, int seconds)
{
	time_t end = time(NULL) + seconds;
	while(!answer && time(NULL) < end){
		if(mosquitto_loop(m, 100, 1) != MOSQ_ERR_SUCCESS) return WAIT_LOST;
	}
	return answer ? WAIT_ANSWER : WAIT_TIMEOUT;
}

/* (Re)connects and subscribes to the reply topic. A reply is bound to the connection that
 * asked: after losing it, the device connects again and asks again. */
static bool device__connect(struct mosquitto *m, const char *topic, bool again)
{
	time_t end = time(NULL) + 10;

	subscribed = false;
	if((again ? mosquitto_reconnect(m) : mosquitto_connect(m, opt.host, opt.port, 60)) != MOSQ_ERR_SUCCESS) return false;
	if(mosquitto_subscribe(m, NULL, topic, 1) != MOSQ_ERR_SUCCESS) return false;
	while(!subscribed && time(NULL) < end){
		if(mosquitto_loop(m, 100, 1) != MOSQ_ERR_SUCCESS) return false;
	}
	return subscribed;
}

static const char *member__text(const json_t *obj, const char *name)
{
	const char *v = json_string_value(json_object_get(obj, name));
	return v ? v : "(none)";
}

int main(int argc, char **argv)
{
	char topic[128], stamp[24];
	struct aliyun_mqtt_params p;
	struct mosquitto *m;
	int c, rc = 1;
	FILE *f;

	while((c = getopt(argc, argv, "h:p:k:s:d:o:r:w:")) != -1){
		switch(c){
			case 'h': opt.host = optarg; break;
			case 'p': opt.port = atoi(optarg); break;
			case 'k': opt.product_key = optarg; break;
			case 'd': opt.device_id = optarg; break;
			case 'o': opt.out = optarg; break;
			case 'r': opt.region = optarg; break;
			case 'w': opt.wait_s = atoi(optarg); break;
			case 's':
				if(!(f = fopen(optarg, "r")) || !fgets(opt.product_secret, sizeof(opt.product_secret), f)){
					fprintf(stderr, "cannot read the product secret from %s\n", optarg);
					return 2;
				}
				fclose(f);
				opt.product_secret[strcspn(opt.product_secret, "\r\n")] = '\0';
				break;
			default:
				fprintf(stderr, "usage: %s -h HOST -p PORT -k PRODUCT_KEY -s PRODUCT_SECRET_FILE -d DEVICE_ID -o TRIPLE_FILE [-r REGION] [-w SECONDS]\n", argv[0]);
				return 2;
		}
	}
	if(!opt.product_key || !opt.device_id || !opt.out || !opt.product_secret[0]){
		fprintf(stderr, "-k, -s, -d and -o are required\n");
		return 2;
	}

	mosquitto_lib_init();
	m = mosquitto_new(opt.device_id, true, NULL); /* the client id is the deviceId: replies go to it */
	mosquitto_subscribe_callback_set(m, on_subscribe);
	mosquitto_message_callback_set(m, on_message);
	snprintf(topic, sizeof(topic), "bootstrap/reply/%s", opt.device_id);
	if(!device__connect(m, topic, false)){
		fprintf(stderr, "cannot connect to %s:%d\n", opt.host, opt.port);
		goto done;
	}

	for(int tries = 1; tries <= MAX_TRIES; tries++){
		char *req = signed_request();
		json_int_t retry;
		if(!req) goto done;
		mosquitto_publish(m, NULL, "bootstrap/register", (int)strlen(req), req, 1, false);
		free(req);
		switch(wait_answer(m, opt.wait_s)){
			case WAIT_ANSWER:
				break;
			case WAIT_TIMEOUT:
				fprintf(stderr, "no answer from the bootstrap broker\n");
				goto done;
			case WAIT_LOST:
				/* the broker closed the connection (its client id taken over?): the answer
				 * is gone with it, so ask again on a new one */
				fprintf(stderr, "connection lost before the answer; asking again\n");
				sleep(1);
				if(tries == MAX_TRIES || !device__connect(m, topic, true)){
					fprintf(stderr, "cannot reconnect to %s:%d\n", opt.host, opt.port);
					goto done;
				}
				continue;
		}
		if(json_is_true(json_object_get(answer, "success"))) break;
		retry = json_integer_value(json_object_get(answer, "retryAfter"));
		fprintf(stderr, "bootstrap refused: %s (%s)\n", member__text(answer, "code"), member__text(answer, "message"));
		if(retry > RETRY_MAX_S) retry = RETRY_MAX_S;
		if(retry <= 0 || tries == MAX_TRIES) goto done;
		json_decref(answer);
		answer = NULL;
		sleep((unsigned)retry);
	}

	json_t *data = triple;
	if(store_triple(data)){
		fprintf(stderr, "cannot write %s\n", opt.out);
		goto done;
	}
	snprintf(stamp, sizeof(stamp), "%lld", (long long)time(NULL) * 1000);
	if(aliyun_mqtt_params(opt.region, json_string_value(json_object_get(data, "ProductKey")),
			json_string_value(json_object_get(data, "DeviceName")), json_string_value(json_object_get(data, "DeviceSecret")),
			opt.device_id, stamp, &p)){
		fprintf(stderr, "the triple does not fit the connection parameters\n");
		goto done;
	}
	printf("triple stored in %s (mode 0600)\n", opt.out);
	printf("connect to the IoT Platform with:\n  host      %s\n  port      %d\n  clientId  %s\n  username  %s\n  password  %s\n",
			p.host, p.port, p.client_id, p.username, p.password);
	rc = 0;
done:
	OPENSSL_cleanse(reply_key, sizeof(reply_key));
	if(triple){
		json_t *secret = json_object_get(triple, "DeviceSecret");
		if(secret) OPENSSL_cleanse((void *)json_string_value(secret), json_string_length(secret));
	}
	json_decref(triple);
	json_decref(answer);
	mosquitto_disconnect(m);
	mosquitto_destroy(m);
	mosquitto_lib_cleanup();
	return rc;
}

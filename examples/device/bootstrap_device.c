/* An example device: gets its IoT Platform identity from a mosquitto-bootstrap broker, keeps
 * it in a file only its owner can read, and prints how to connect to the platform with it.
 * Installed by the package as mosquitto-bootstrap-device; usage() (--help) lists its options.
 *
 *   bootstrap_device -k PRODUCT_KEY -s PRODUCT_SECRET_FILE -d DEVICE_ID -o TRIPLE_FILE
 *                    [-h HOST] [-p PORT] [-r REGION] [-w SECONDS] [--show-secrets]
 *
 * The request is signed exactly like Alibaba's own dynamic registration, and names its product
 * (productKey) as that request does, so device code written for that can be reused and one
 * broker can serve several products. The triple arrives sealed with a key only a holder of the
 * ProductSecret can derive for this very request (README "Sealed replies"): a success reply
 * that is not sealed, or does not open, is a forgery and is ignored. On busy/throttled/
 * unavailable it waits retryAfter and asks again. What it prints masks the DeviceSecret and
 * the platform password (terminals are logged and scrolled back); the file holds them. */
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
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
	bool show_secrets; /* print the DeviceSecret and the password in full */
	char product_secret[257];
} opt = { "127.0.0.1", NULL, NULL, NULL, "cn-shanghai", 1883, 60, false, "" };

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

/* In the style of mosquitto_pub's: what it does, the synopsis, every option, the exit status. */
static void usage(FILE *to, const char *name)
{
	fprintf(to, "%s is an example device: it gets its Alibaba Cloud IoT Platform identity (its device\n"
			"triple) from a Mosquitto broker running the mosquitto_bootstrap plugin, stores it in a file\n"
			"only its user can read, and prints how to connect to the IoT Platform with it.\n\n", name);
	fprintf(to, "Usage: %s -k product_key -s product_secret_file -d device_id -o triple_file\n"
			"       %*s [-h host] [-p port] [-r region] [-w seconds] [--show-secrets]\n"
			"       %s --help\n\n", name, (int)strlen(name), "", name);
	fputs(" -d : the deviceId to bootstrap: the MQTT client id it connects with, and the DeviceName\n"
			"      the platform knows it by.\n"
			" -h : the bootstrap broker's host. Defaults to 127.0.0.1.\n"
			" -k : the ProductKey of the device's product.\n"
			" -o : the triple file: created or replaced, mode 0600 (only this user can read it), holding\n"
			"      one JSON object {\"ProductKey\",\"DeviceName\",\"DeviceSecret\",\"IotId\"}. Its directory\n"
			"      must exist. It holds the DeviceSecret in full: keep it as you would a private key.\n"
			" -p : the bootstrap broker's port. Defaults to 1883.\n"
			" -r : the IoT Platform region of the connection parameters printed (an old public instance:\n"
			"      <ProductKey>.iot-as-mqtt.<region>.aliyuncs.com). Defaults to cn-shanghai.\n"
			" -s : a file whose first line is the product's ProductSecret (never an argument, which\n"
			"      any user of the machine could read in ps). It signs the request and opens the reply.\n"
			" -w : how long to wait for the answer to one request, in seconds (1 to 3600). Defaults to 60.\n"
			" --help : display this message.\n"
			" --show-secrets : print the DeviceSecret and the IoT Platform password in full. UNSAFE: they\n"
			"      stay in the terminal's scrollback and in any log of its output. Without it both are\n"
			"      masked: their first 4 characters, then \u2026; the triple file holds them in full.\n\n"
			"Exit status:\n"
			" 0 : the triple is stored in the triple file (or --help).\n"
			" 1 : no triple: the broker could not be reached or did not answer in time, it refused the\n"
			"     request (its error code is printed), or the triple file could not be written.\n"
			" 2 : wrong usage, or the ProductSecret file could not be read.\n\n"
			"The device contract: /usr/share/doc/mosquitto-bootstrap/docs/contract.md\n", to);
}

/* A whole decimal number from min to max, or -1. */
static int number__parse(const char *text, int min, int max)
{
	char *end;
	long v = strtol(text, &end, 10);

	if(end == text || *end || v < min || v > max) return -1;
	return (int)v;
}

/* A secret as the terminal shows it, after its (padded) label: in full with --show-secrets,
 * else its first 4 characters and an ellipsis (only the ellipsis for one under 16 characters,
 * of which 4 would give too much away). */
static void secret__print(const char *label, const char *value)
{
	if(opt.show_secrets) printf("%s%s\n", label, value);
	else if(strlen(value) >= 16) printf("%s%.4s\u2026\n", label, value);
	else printf("%s\u2026\n", label);
}

int main(int argc, char **argv)
{
	/* -h is the host, as in mosquitto_pub: help is --help only */
	enum { OPT_HELP = 256, OPT_SHOW_SECRETS };
	static const struct option long_opts[] = {
		{ "help", no_argument, NULL, OPT_HELP },
		{ "show-secrets", no_argument, NULL, OPT_SHOW_SECRETS },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = (argc > 0 && argv[0]) ? argv[0] : "bootstrap_device";
	char topic[128], stamp[24];
	struct aliyun_mqtt_params p;
	struct mosquitto *m;
	int c, rc = 1;
	FILE *f;

	if(strrchr(name, '/')) name = strrchr(name, '/') + 1;
	while((c = getopt_long(argc, argv, "h:p:k:s:d:o:r:w:", long_opts, NULL)) != -1){
		switch(c){
			case 'h': opt.host = optarg; break;
			case 'k': opt.product_key = optarg; break;
			case 'd': opt.device_id = optarg; break;
			case 'o': opt.out = optarg; break;
			case 'r': opt.region = optarg; break;
			case 'p':
				if((opt.port = number__parse(optarg, 1, 65535)) < 0){
					fprintf(stderr, "%s: -p %s: not a port (1 to 65535)\n", name, optarg);
					goto bad_usage;
				}
				break;
			case 'w':
				if((opt.wait_s = number__parse(optarg, 1, 3600)) < 0){
					fprintf(stderr, "%s: -w %s: not a number of seconds from 1 to 3600\n", name, optarg);
					goto bad_usage;
				}
				break;
			case 's':
				if(!(f = fopen(optarg, "r"))){
					fprintf(stderr, "%s: cannot read the product secret from %s\n", name, optarg);
					return 2;
				}
				if(!fgets(opt.product_secret, sizeof(opt.product_secret), f)) opt.product_secret[0] = '\0';
				fclose(f);
				opt.product_secret[strcspn(opt.product_secret, "\r\n")] = '\0';
				if(!opt.product_secret[0]){
					fprintf(stderr, "%s: %s: no product secret on its first line\n", name, optarg);
					return 2;
				}
				break;
			case OPT_SHOW_SECRETS: opt.show_secrets = true; break;
			case OPT_HELP:
				usage(stdout, name);
				return 0;
			default: /* getopt said what was wrong */
				goto bad_usage;
		}
	}
	if(optind < argc){
		fprintf(stderr, "%s: unexpected argument '%s'\n", name, argv[optind]);
		goto bad_usage;
	}
	if(!opt.product_key || !opt.device_id || !opt.out || !opt.product_secret[0]){
		fprintf(stderr, "%s: -k, -s, -d and -o are required\n", name);
		goto bad_usage;
	}
	if(opt.show_secrets){
		fprintf(stderr, "%s: --show-secrets: the DeviceSecret and the IoT Platform password are printed in full;\n"
				"they stay in this terminal's scrollback and in any log of its output\n", name);
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
	printf("triple stored in %s (mode 0600):\n  ProductKey    %s\n  DeviceName    %s\n", opt.out,
			member__text(data, "ProductKey"), member__text(data, "DeviceName"));
	secret__print("  DeviceSecret  ", json_string_value(json_object_get(data, "DeviceSecret")));
	printf("connect to the IoT Platform with:\n  host      %s\n  port      %d\n  clientId  %s\n  username  %s\n",
			p.host, p.port, p.client_id, p.username);
	secret__print("  password  ", p.password);
	if(!opt.show_secrets) printf("(secrets masked: the triple file holds them; --show-secrets prints them)\n");
	OPENSSL_cleanse(p.password, sizeof(p.password));
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
bad_usage:
	usage(stderr, name);
	return 2;
}

/* An example device: gets its IoT Platform identity from a mosquitto-bootstrap broker, keeps
 * it in a file only its owner can read, and prints how to connect to the platform with it.
 * Installed by the package as mosquitto-bootstrap-device; usage() (--help) lists its options.
 *
 *   bootstrap_device -k PRODUCT_KEY -s PRODUCT_SECRET_FILE -d DEVICE_ID -o TRIPLE_FILE
 *                    [-h HOST] [-p PORT] [-r REGION] [-w SECONDS] [--cbor] [--show-secrets]
 *
 * Built on the device library (device/bootstrap_device.h, docs/device-library.md) with its
 * OpenSSL port: the library makes the topics and the signed request and reads the replies;
 * libmosquitto carries them. --cbor speaks the CBOR contract instead of JSON.
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

#include "aliyun_mqtt.h"
#include "bootstrap_device.h"
#include "bootstrap_device_port.h"

#define MAX_TRIES 10
/* a retryAfter beyond this is not believed: on plain TCP anyone on the path can forge an error */
#define RETRY_MAX_S 300

static struct {
	const char *host, *product_key, *device_id, *out, *region;
	int port;
	int wait_s; /* how long to wait for the genuine answer to one request */
	bool show_secrets; /* print the DeviceSecret and the password in full */
	bool cbor;         /* the CBOR contract: topics with /cbor, CBOR payloads */
	char product_secret[257];
} opt = { "127.0.0.1", NULL, NULL, NULL, "cn-shanghai", 1883, 60, false, false, "" };

static bootdev_client client;     /* the identity, and the request asked last */
static uint8_t work[BOOTDEV_WORK_SIZE]; /* where the accepted reply's strings are */
static bootdev_reply reply;
static bootdev_status answer = BOOTDEV_ERR_ARG; /* BOOTDEV_OK or BOOTDEV_REFUSED once answered */
static bool subscribed;

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
	(void)m; (void)ud; (void)mid; (void)n; (void)granted;
	subscribed = true;
}

static bool answered(void)
{
	return answer == BOOTDEV_OK || answer == BOOTDEV_REFUSED;
}

/* Not even the start of a reply in this format: ignored without a word. */
static bool not_a_reply(const struct mosquitto_message *msg)
{
	const unsigned char *p = msg->payload;
	int i = 0;

	if(opt.cbor) return msg->payloadlen < 1 || (p[0] & 0xe0) != 0xa0; /* a map */
	while(i < msg->payloadlen && p[i] && strchr(" \t\r\n", p[i])) i++;
	return i >= msg->payloadlen || p[i] != '{';
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
	bootdev_status rc;

	(void)m; (void)ud;
	if(answered() || msg->payloadlen < 0 || not_a_reply(msg)) return; /* the first genuine answer counts */
	rc = (opt.cbor ? bootdev_reply_cbor : bootdev_reply_json)(&client, msg->payload, (size_t)msg->payloadlen, 0,
			work, sizeof(work), &reply);
	switch(rc){
		case BOOTDEV_OK:
		case BOOTDEV_REFUSED:
			answer = rc;
			return;
		case BOOTDEV_ERR_NOT_SEALED:
		case BOOTDEV_ERR_FORGED:
		case BOOTDEV_ERR_WRONG_DEVICE:
			/* anyone able to publish here could send a "success": only the seal tells */
			fprintf(stderr, "ignored a success reply that is not the genuine answer (%s)\n", bootdev_status_name(rc));
			return;
		default:
			/* an error names its code; anything else is not a reply of the service's */
			fprintf(stderr, "ignored a malformed reply\n");
			return;
	}
}

/* The triple, readable by this user only: created 0600, never widened by the umask. */
static int store_triple(const bootdev_reply *t)
{
	json_t *data = json_pack("{s:s, s:s, s:s, s:s}", "ProductKey", t->product_key, "DeviceName", t->device_name,
			"DeviceSecret", t->device_secret, "IotId", t->iot_id);
	char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
	int fd = open(opt.out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int rc = -1;

	if(text && fd >= 0 && fchmod(fd, 0600) == 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text)) rc = 0;
	if(fd >= 0) close(fd);
	if(text) OPENSSL_cleanse(text, strlen(text));
	free(text);
	if(data) OPENSSL_cleanse((void *)json_string_value(json_object_get(data, "DeviceSecret")), strlen(t->device_secret));
	json_decref(data);
	return rc;
}

enum wait_result { WAIT_ANSWER, WAIT_TIMEOUT, WAIT_LOST };

static enum wait_result wait_answer(struct mosquitto *m, int seconds)
{
	time_t end = time(NULL) + seconds;
	while(!answered() && time(NULL) < end){
		if(mosquitto_loop(m, 100, 1) != MOSQ_ERR_SUCCESS) return WAIT_LOST;
	}
	return answered() ? WAIT_ANSWER : WAIT_TIMEOUT;
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

/* In the style of mosquitto_pub's: what it does, the synopsis, every option, the exit status. */
static void usage(FILE *to, const char *name)
{
	fprintf(to, "%s is an example device: it gets its Alibaba Cloud IoT Platform identity (its device\n"
			"triple) from a Mosquitto broker running the mosquitto_bootstrap plugin, stores it in a file\n"
			"only its user can read, and prints how to connect to the IoT Platform with it.\n\n", name);
	fprintf(to, "Usage: %s -k product_key -s product_secret_file -d device_id -o triple_file\n"
			"       %*s [-h host] [-p port] [-r region] [-w seconds] [--cbor] [--show-secrets]\n"
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
			" --cbor : speak CBOR instead of JSON: the request on bootstrap/register/cbor, the reply\n"
			"      on bootstrap/reply/<device_id>/cbor (the broker answers in the request's format).\n"
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
	enum { OPT_HELP = 256, OPT_SHOW_SECRETS, OPT_CBOR };
	static const struct option long_opts[] = {
		{ "help", no_argument, NULL, OPT_HELP },
		{ "cbor", no_argument, NULL, OPT_CBOR },
		{ "show-secrets", no_argument, NULL, OPT_SHOW_SECRETS },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = (argc > 0 && argv[0]) ? argv[0] : "bootstrap_device";
	char topic[128], stamp[24];
	const char *request_topic;
	uint8_t req[BOOTDEV_REQUEST_SIZE];
	size_t req_len;
	bootdev_format fmt;
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
			case OPT_CBOR: opt.cbor = true; break;
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

	fmt = opt.cbor ? BOOTDEV_CBOR : BOOTDEV_JSON;
	request_topic = opt.cbor ? BOOTDEV_REQUEST_TOPIC_CBOR : BOOTDEV_REQUEST_TOPIC_JSON; /* the broker's defaults */
	if(bootdev_init(&client, &bootdev_port_openssl, bootdev_openssl_rng, NULL, opt.product_key, opt.device_id,
			(const uint8_t *)opt.product_secret, strlen(opt.product_secret), BOOTDEV_HMAC_SHA256) != BOOTDEV_OK
			|| bootdev_default_reply_topic(&client, fmt, topic, sizeof(topic), NULL) != BOOTDEV_OK){
		fprintf(stderr, "%s: -k %s -d %s: not a ProductKey (1 to 64 of A-Z a-z 0-9 - _) and a deviceId "
				"(4 to 32 of A-Z a-z 0-9 - _ @ . :)\n", name, opt.product_key, opt.device_id);
		goto bad_usage;
	}

	mosquitto_lib_init();
	m = mosquitto_new(opt.device_id, true, NULL); /* the client id is the deviceId: replies go to it */
	mosquitto_subscribe_callback_set(m, on_subscribe);
	mosquitto_message_callback_set(m, on_message);
	if(!device__connect(m, topic, false)){
		fprintf(stderr, "cannot connect to %s:%d\n", opt.host, opt.port);
		goto done;
	}

	for(int tries = 1; tries <= MAX_TRIES; tries++){
		long retry;
		/* a new random (and reply key) for every request, retries included */
		if((opt.cbor ? bootdev_request_cbor : bootdev_request_json)(&client, req, sizeof(req), &req_len) != BOOTDEV_OK) goto done;
		mosquitto_publish(m, NULL, request_topic, (int)req_len, req, 1, false);
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
		if(answer == BOOTDEV_OK) break;
		retry = (long)reply.retry_after;
		fprintf(stderr, "bootstrap refused: %s (%s)\n", reply.code, reply.message[0] ? reply.message : "(none)");
		if(retry > RETRY_MAX_S) retry = RETRY_MAX_S;
		if(retry <= 0 || tries == MAX_TRIES) goto done;
		answer = BOOTDEV_ERR_ARG;
		sleep((unsigned)retry);
	}

	if(store_triple(&reply)){
		fprintf(stderr, "cannot write %s\n", opt.out);
		goto done;
	}
	snprintf(stamp, sizeof(stamp), "%lld", (long long)time(NULL) * 1000);
	if(aliyun_mqtt_params(opt.region, reply.product_key, reply.device_name, reply.device_secret, opt.device_id, stamp, &p)){
		fprintf(stderr, "the triple does not fit the connection parameters\n");
		goto done;
	}
	printf("triple stored in %s (mode 0600):\n  ProductKey    %s\n  DeviceName    %s\n", opt.out,
			reply.product_key, reply.device_name);
	secret__print("  DeviceSecret  ", reply.device_secret);
	printf("connect to the IoT Platform with:\n  host      %s\n  port      %d\n  clientId  %s\n  username  %s\n",
			p.host, p.port, p.client_id, p.username);
	secret__print("  password  ", p.password);
	if(!opt.show_secrets) printf("(secrets masked: the triple file holds them; --show-secrets prints them)\n");
	OPENSSL_cleanse(p.password, sizeof(p.password));
	rc = 0;
done:
	bootdev_wipe(&client);
	OPENSSL_cleanse(work, sizeof(work));
	mosquitto_disconnect(m);
	mosquitto_destroy(m);
	mosquitto_lib_cleanup();
	return rc;
bad_usage:
	usage(stderr, name);
	return 2;
}

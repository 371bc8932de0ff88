/* Bootstrap load generator: thousands of simulated devices from one process.
 *
 * Each device connects with its deviceId as client id, subscribes to its reply topic, and at a
 * common start signal sends its (signed, with --product-secret-file) request, then waits for the
 * reply, retrying as told by retryAfter. All devices share one epoll loop over libmosquitto's
 * sockets. A probe thread meanwhile measures a fresh client's CONNACK latency and a PINGREQ round
 * trip on raw sockets. --responder instead runs the "broker ceiling" baseline's responder: one
 * client that answers every request on the device's reply topic.
 *
 * Prints one JSON object: devices/s, latency percentiles (with the number of samples they come
 * from), replies by code, probe latencies idle (before any device connects) and during the storm,
 * the broker's CPU seconds and RSS (--broker-pid, from /proc), the CPU seconds of a second process
 * over the same window (--responder-pid: the ceiling's responder) and how busy the machine's CPUs
 * were (/proc/stat, every process on the host counted).
 *
 * --hold S: memory, not speed: after every device has sent, wait S seconds (devices that get a reply
 * stay connected), read the broker's RSS and report without waiting for the rest of the replies.
 * --topic T publishes the same requests on another topic (one the plugin ignores) for the baseline.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <mosquitto.h>

#include "bootstrap_auth.h"

#define MAX_CODES 16

enum device_state { DEV_IDLE, DEV_CONNECTING, DEV_READY, DEV_WAITING, DEV_BACKOFF, DEV_DONE };

struct device {
	struct mosquitto *mosq;
	char id[40];
	enum device_state state;
	double first_send_ms, retry_at_ms;
	int tries;
	int sock;
	bool want_write;
};

static struct {
	const char *host;
	int port;
	int count;
	const char *prefix;
	const char *product_key;
	char product_secret[257];
	int connect_rate;
	double timeout_s;
	int broker_pid;
	bool responder;
	bool probe;
	bool sequential;
	int max_tries;
	const char *request_topic;
	const char *reply_prefix;
	int responder_pid;
	int idle_probes;
	double hold_s;
	double gap_ms;
	int keepalive;
} opt = { "127.0.0.1", 1883, 100, "bench", "a1TestProduct", "", 1000, 300, 0, false, true, false, 30,
	"bootstrap/register", "bootstrap/reply/", 0, 30, 0, 0, 120 };

static struct device *devices;
static int epfd;
static double *latencies;
static int nlat;
static struct { char code[32]; int n; } codes[MAX_CODES];
static int ncodes, done_count, connected_count, sent_count;
static volatile sig_atomic_t stop_flag;

/* libmosquitto gives every client a socket pair (to wake its own mosquitto_loop) besides its
 * socket. The devices run on this program's epoll loop and never need it, so while they are made
 * socketpair() fails, which libmosquitto takes as a warning and works without (it checks for the
 * missing pair before writing to it): one descriptor per device instead of three, so that 10 000
 * devices fit a 20 000-descriptor limit. This definition takes the place of libc's for
 * libmosquitto; everything else gets the real one. */
static bool devices_without_socketpair;

__attribute__((visibility("default"))) int socketpair(int domain, int type, int protocol, int sv[2])
{
	if(devices_without_socketpair){
		errno = EMFILE;
		return -1;
	}
	return (int)syscall(SYS_socketpair, domain, type, protocol, sv);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void code_count(const char *code)
{
	for(int i = 0; i < ncodes; i++){
		if(!strcmp(codes[i].code, code)){
			codes[i].n++;
			return;
		}
	}
	if(ncodes < MAX_CODES){
		snprintf(codes[ncodes].code, sizeof(codes[ncodes].code), "%s", code);
		codes[ncodes++].n = 1;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	int i;
	if(n == 0) return 0;
	i = (int)(p / 100.0 * n);
	if(i >= n) i = n - 1;
	return v[i];
}

/* ---- /proc ---- */

static double process_cpu_s(int pid)
{
	char path[64], buf[2048];
	FILE *f;
	unsigned long ut = 0, st = 0;
	double cpu = 0;

	if(!pid) return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if((f = fopen(path, "r"))){
		if(fgets(buf, sizeof(buf), f)){
			char *p = strrchr(buf, ')');
			/* fields after ")": state(3) ... utime(14) stime(15) */
			if(p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2){
				cpu = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
			}
		}
		fclose(f);
	}
	return cpu;
}

/* busy and total jiffies of every CPU of the machine, from the first line of /proc/stat */
static void machine_cpu(double *busy, double *total)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");

	*busy = *total = 0;
	if(!f) return;
	if(fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8){
		for(int i = 0; i < 8; i++) *total += (double)v[i];
		*busy = *total - (double)v[3] - (double)v[4]; /* all but idle and iowait */
	}
	fclose(f);
}

static void broker_usage(double *cpu_s, long *rss_kib)
{
	char path[64], buf[256];
	FILE *f;

	*cpu_s = 0;
	*rss_kib = 0;
	if(!opt.broker_pid) return;
	*cpu_s = process_cpu_s(opt.broker_pid);
	snprintf(path, sizeof(path), "/proc/%d/status", opt.broker_pid);
	if((f = fopen(path, "r"))){
		while(fgets(buf, sizeof(buf), f)){
			if(!strncmp(buf, "VmRSS:", 6)) *rss_kib = strtol(buf + 6, NULL, 10);
		}
		fclose(f);
	}
}

/* ---- probe: raw MQTT 3.1.1 on its own socket ---- */

struct probe_stats {
	double connack[4096], ping[4096];
	int n;
};
static struct probe_stats probe_idle, probe_storm;
/* 0 idle (before any device connects), 1 devices connecting (not recorded), 2 storm, 3 stop */
static volatile int probe_phase;

static int read_full(int fd, unsigned char *buf, int len)
{
	int got = 0;
	while(got < len){
		ssize_t r = recv(fd, buf + got, (size_t)(len - got), 0);
		if(r <= 0) return -1;
		got += (int)r;
	}
	return 0;
}

static int probe_once(double *connack_ms, double *ping_ms, int seq)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port) };
	unsigned char pkt[64], in[4];
	char id[24];
	int fd, idlen, one = 1;
	struct timeval tv = { .tv_sec = 5 };
	double t0;

	inet_pton(AF_INET, opt.host, &sa.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if(fd < 0) return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if(connect(fd, (struct sockaddr *)&sa, sizeof(sa))){
		close(fd);
		return -1;
	}
	idlen = snprintf(id, sizeof(id), "probe-%d-%d", getpid(), seq);
	pkt[0] = 0x10;
	pkt[1] = (unsigned char)(10 + 2 + idlen);
	memcpy(pkt + 2, "\x00\x04MQTT\x04\x02\x00\x3c", 10);
	pkt[12] = 0;
	pkt[13] = (unsigned char)idlen;
	memcpy(pkt + 14, id, (size_t)idlen);
	t0 = now_ms();
	if(send(fd, pkt, (size_t)(14 + idlen), 0) < 0 || read_full(fd, in, 4) || in[0] != 0x20){
		close(fd);
		return -1;
	}
	*connack_ms = now_ms() - t0;
	t0 = now_ms();
	if(send(fd, "\xc0\x00", 2, 0) < 0 || read_full(fd, in, 2) || in[0] != 0xd0){
		close(fd);
		return -1;
	}
	*ping_ms = now_ms() - t0;
	send(fd, "\xe0\x00", 2, 0);
	close(fd);
	return 0;
}

static void *probe_run(void *arg)
{
	int seq = 0;
	(void)arg;
	while(probe_phase != 3){
		double c, p;
		int phase = probe_phase;
		struct probe_stats *s = phase == 0 ? &probe_idle : phase == 2 ? &probe_storm : NULL;
		/* a sample counts for the phase it started and ended in */
		if(probe_once(&c, &p, seq++) == 0 && s && phase == probe_phase && s->n < 4096){
			s->connack[s->n] = c;
			s->ping[s->n] = p;
			s->n++;
		}
		usleep(50000);
	}
	return NULL;
}

/* ---- devices ---- */

static void device_send(struct device *d)
{
	char payload[512], random[17], sign[SIGN_HEX_MAX + 1];
	unsigned int r[2];
	int len;

	if(opt.product_secret[0]){
		FILE *f = fopen("/dev/urandom", "r");
		if(!f || fread(r, sizeof(r), 1, f) != 1) r[0] = (unsigned)rand(), r[1] = (unsigned)rand();
		if(f) fclose(f);
		snprintf(random, sizeof(random), "%08x%08x", r[0], r[1]);
		auth__sign_compute(SIGN_HMACSHA256, opt.product_secret, opt.product_key, d->id, random, sign);
		len = snprintf(payload, sizeof(payload),
				"{\"deviceId\":\"%s\",\"random\":\"%s\",\"signMethod\":\"hmacsha256\",\"sign\":\"%s\"}", d->id, random, sign);
	}else{
		len = snprintf(payload, sizeof(payload), "{\"deviceId\":\"%s\"}", d->id);
	}
	if(d->tries == 0){
		d->first_send_ms = now_ms();
		sent_count++;
	}
	d->tries++;
	d->state = DEV_WAITING;
	mosquitto_publish(d->mosq, NULL, opt.request_topic, len, payload, 0, false);
}

static void device_finish(struct device *d, const char *code)
{
	if(d->state == DEV_DONE) return;
	d->state = DEV_DONE;
	code_count(code);
	done_count++;
	if(opt.hold_s <= 0) mosquitto_disconnect(d->mosq); /* --hold: the connection counts in the RSS */
}

static void on_connect(struct mosquitto *mosq, void *ud, int rc)
{
	struct device *d = ud;
	char topic[128];

	if(rc){
		device_finish(d, "connect_refused");
		return;
	}
	snprintf(topic, sizeof(topic), "%s%s", opt.reply_prefix, d->id);
	mosquitto_subscribe(mosq, NULL, topic, 1);
}

static void on_subscribe(struct mosquitto *mosq, void *ud, int mid, int n, const int *granted)
{
	struct device *d = ud;
	(void)mosq; (void)mid; (void)n; (void)granted;
	if(d->state == DEV_CONNECTING){
		d->state = DEV_READY;
		connected_count++;
	}
}

static void on_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *m)
{
	struct device *d = ud;
	json_t *root;
	json_error_t err;
	(void)mosq;

	if(d->state != DEV_WAITING) return;
	root = json_loadb(m->payload, (size_t)m->payloadlen, 0, &err);
	if(!root){
		device_finish(d, "unparsable_reply");
		return;
	}
	if(json_is_true(json_object_get(root, "success"))){
		latencies[nlat++] = now_ms() - d->first_send_ms;
		device_finish(d, "ok");
	}else{
		const char *code = json_string_value(json_object_get(root, "code"));
		json_int_t retry = json_integer_value(json_object_get(root, "retryAfter"));
		code_count(code ? code : "?");
		if(retry > 0 && d->tries < opt.max_tries){
			d->state = DEV_BACKOFF;
			d->retry_at_ms = now_ms() + (double)retry * 1000.0;
		}else{
			done_count++;
			d->state = DEV_DONE;
			if(opt.hold_s <= 0) mosquitto_disconnect(d->mosq);
		}
	}
	json_decref(root);
}

static void on_disconnect(struct mosquitto *mosq, void *ud, int rc)
{
	struct device *d = ud;
	(void)mosq; (void)rc;
	if(d->state != DEV_DONE) device_finish(d, "disconnected");
}

static void device_watch(struct device *d)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = d };
	int s = mosquitto_socket(d->mosq);

	if(s < 0) return;
	d->sock = s;
	epoll_ctl(epfd, EPOLL_CTL_ADD, s, &ev);
}

static void device_service(struct device *d, uint32_t events)
{
	if(events & EPOLLIN) mosquitto_loop_read(d->mosq, 1);
	if(mosquitto_want_write(d->mosq)) mosquitto_loop_write(d->mosq, 1);
}

static void pump(int timeout_ms)
{
	struct epoll_event evs[512];
	int n = epoll_wait(epfd, evs, 512, timeout_ms);

	for(int i = 0; i < n; i++) device_service(evs[i].data.ptr, evs[i].events);
}

static void flush_writes(void)
{
	for(int i = 0; i < opt.count; i++){
		struct device *d = &devices[i];
		if(d->mosq && d->sock >= 0 && d->state != DEV_IDLE && mosquitto_want_write(d->mosq)) mosquitto_loop_write(d->mosq, 1);
	}
}

/* Keepalive, as a device's MQTT library keeps it: a PINGREQ once a device has been silent for its
 * keepalive (--keepalive, 120 s), so that devices waiting minutes in a quota-bound queue (S6, S7) stay
 * connected. Checked once a second; the PINGREQs go out with the next flush_writes(). */
static void keepalive_check(void)
{
	static double last;
	double now = now_ms();

	if(now - last < 1000) return;
	last = now;
	for(int i = 0; i < opt.count; i++){
		struct device *d = &devices[i];
		if(d->mosq && d->sock >= 0 && d->state != DEV_IDLE && (d->state != DEV_DONE || opt.hold_s > 0)) mosquitto_loop_misc(d->mosq);
	}
}

/* ---- responder (broker ceiling baseline) ---- */

static void responder_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *m)
{
	json_t *root = json_loadb(m->payload, (size_t)m->payloadlen, 0, NULL);
	const char *id = json_string_value(json_object_get(root, "deviceId"));
	char topic[128], reply[256];
	int len;
	(void)ud;

	if(id){
		snprintf(topic, sizeof(topic), "%s%s", opt.reply_prefix, id);
		len = snprintf(reply, sizeof(reply), "{\"success\":true,\"data\":{\"ProductKey\":\"%s\",\"DeviceName\":\"%s\","
				"\"DeviceSecret\":\"00000000000000000000000000000000\",\"IotId\":\"responder\"}}", opt.product_key, id);
		mosquitto_publish(mosq, NULL, topic, len, reply, 1, false);
	}
	json_decref(root);
}

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static int run_responder(void)
{
	struct mosquitto *m = mosquitto_new("bench-responder", true, NULL);

	mosquitto_message_callback_set(m, responder_message);
	if(mosquitto_connect(m, opt.host, opt.port, 60) != MOSQ_ERR_SUCCESS){
		fprintf(stderr, "responder: cannot connect\n");
		return 1;
	}
	mosquitto_subscribe(m, NULL, opt.request_topic, 0);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	printf("{\"responder\":\"ready\"}\n");
	fflush(stdout);
	while(!stop_flag) mosquitto_loop(m, 100, 1);
	mosquitto_destroy(m);
	return 0;
}

/* ---- main ---- */

static void print_probe(const char *name, struct probe_stats *s)
{
	/* p99 of fewer than 200 samples is the largest or next to it: run.js reports max and n then */
	qsort(s->connack, (size_t)s->n, sizeof(double), cmp_double);
	qsort(s->ping, (size_t)s->n, sizeof(double), cmp_double);
	printf("\"%s\":{\"samples\":%d,\"connack_ms\":{\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f},\"ping_ms\":{\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f}}",
			name, s->n, pct(s->connack, s->n, 50), pct(s->connack, s->n, 99), s->n ? s->connack[s->n - 1] : 0,
			pct(s->ping, s->n, 50), pct(s->ping, s->n, 99), s->n ? s->ping[s->n - 1] : 0);
}

static void usage(void)
{
	fprintf(stderr, "usage: loadgen -p PORT [-H HOST] -n DEVICES [--prefix P] [--product-key PK] [--product-secret-file F]\n"
			"               [--connect-rate N/s] [--timeout S] [--broker-pid PID] [--max-tries N] [--no-probe] [--responder]\n"
			"               [--sequential [--gap-ms MS]]   (one device at a time, MS apart: latency at low load)\n"
			"               [--responder-pid PID] [--idle-probes N] [--topic T] [--hold S] [--keepalive S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"prefix", required_argument, NULL, 'x'}, {"product-key", required_argument, NULL, 'k'},
		{"product-secret-file", required_argument, NULL, 's'}, {"connect-rate", required_argument, NULL, 'r'},
		{"timeout", required_argument, NULL, 't'}, {"broker-pid", required_argument, NULL, 'b'},
		{"max-tries", required_argument, NULL, 'm'}, {"no-probe", no_argument, NULL, 'P'},
		{"responder", no_argument, NULL, 'R'}, {"sequential", no_argument, NULL, 'S'},
		{"responder-pid", required_argument, NULL, 'D'}, {"idle-probes", required_argument, NULL, 'I'},
		{"topic", required_argument, NULL, 'T'}, {"hold", required_argument, NULL, 'O'},
		{"gap-ms", required_argument, NULL, 'G'}, {"keepalive", required_argument, NULL, 'K'}, {NULL, 0, NULL, 0},
	};
	struct rlimit rl;
	pthread_t probe_thread;
	double t_start, t_end, cpu0, cpu1, deadline, rcpu0, rcpu1, mbusy0, mtotal0, mbusy1, mtotal1, seq_idle_since = -1;
	long rss_start, rss0, rss1, rss_peak = 0;
	int c, next = 0;

	while((c = getopt_long(argc, argv, "H:p:n:", longopts, NULL)) != -1){
		switch(c){
			case 'H': opt.host = optarg; break;
			case 'p': opt.port = atoi(optarg); break;
			case 'n': opt.count = atoi(optarg); break;
			case 'x': opt.prefix = optarg; break;
			case 'k': opt.product_key = optarg; break;
			case 's': {
				FILE *f = fopen(optarg, "r");
				if(!f || !fgets(opt.product_secret, sizeof(opt.product_secret), f)){
					fprintf(stderr, "cannot read %s\n", optarg);
					return 2;
				}
				fclose(f);
				opt.product_secret[strcspn(opt.product_secret, "\r\n")] = '\0';
				break;
			}
			case 'r': opt.connect_rate = atoi(optarg); break;
			case 't': opt.timeout_s = atof(optarg); break;
			case 'b': opt.broker_pid = atoi(optarg); break;
			case 'm': opt.max_tries = atoi(optarg); break;
			case 'P': opt.probe = false; break;
			case 'R': opt.responder = true; break;
			case 'S': opt.sequential = true; break;
			case 'D': opt.responder_pid = atoi(optarg); break;
			case 'I': opt.idle_probes = atoi(optarg); break;
			case 'T': opt.request_topic = optarg; break;
			case 'O': opt.hold_s = atof(optarg); break;
			case 'G': opt.gap_ms = atof(optarg); break;
			case 'K': opt.keepalive = atoi(optarg); break;
			default: usage();
		}
	}
	if(opt.count <= 0 || opt.port <= 0) usage();
	/* a descriptor per device (see socketpair() above) and a few: raise the soft limit to that
	 * (the hard one too, where allowed); refuse to start a run that would fail connecting */
	if(getrlimit(RLIMIT_NOFILE, &rl) == 0){
		rlim_t need = (rlim_t)opt.count + 256;
		if(rl.rlim_cur < need){
			struct rlimit want = { need, rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? rl.rlim_max : need };
			if(setrlimit(RLIMIT_NOFILE, &want)){
				rl.rlim_cur = rl.rlim_max;
				setrlimit(RLIMIT_NOFILE, &rl);
				getrlimit(RLIMIT_NOFILE, &rl);
				if(rl.rlim_cur < need){
					fprintf(stderr, "loadgen: %d devices need %lu file descriptors, the limit is %lu: raise it (ulimit -n)\n",
							opt.count, (unsigned long)need, (unsigned long)rl.rlim_cur);
					return 2;
				}
			}
		}
	}
	signal(SIGPIPE, SIG_IGN);
	mosquitto_lib_init();
	if(opt.responder) return run_responder();

	devices = calloc((size_t)opt.count, sizeof(*devices));
	latencies = calloc((size_t)opt.count, sizeof(*latencies));
	epfd = epoll_create1(0);
	if(opt.probe){
		/* idle probes first, before any device connects: --idle-probes of them (or 60 s) */
		double until = now_ms() + 60000;
		pthread_create(&probe_thread, NULL, probe_run, NULL);
		while(probe_idle.n < opt.idle_probes && now_ms() < until) usleep(20000);
		probe_phase = 1;
	}

	/* phase 1: connect and subscribe everybody, at connect_rate */
	broker_usage(&cpu0, &rss_start);
	t_start = now_ms();
	while(next < opt.count || connected_count + done_count < opt.count){
		double allowed = (now_ms() - t_start) / 1000.0 * opt.connect_rate + 1;
		while(next < opt.count && next < allowed){
			struct device *d = &devices[next];
			snprintf(d->id, sizeof(d->id), "%s-%05d", opt.prefix, next);
			d->sock = -1;
			devices_without_socketpair = true;
			d->mosq = mosquitto_new(d->id, true, d);
			devices_without_socketpair = false;
			mosquitto_connect_callback_set(d->mosq, on_connect);
			mosquitto_subscribe_callback_set(d->mosq, on_subscribe);
			mosquitto_message_callback_set(d->mosq, on_message);
			mosquitto_disconnect_callback_set(d->mosq, on_disconnect);
			d->state = DEV_CONNECTING;
			if(mosquitto_connect(d->mosq, opt.host, opt.port, opt.keepalive) != MOSQ_ERR_SUCCESS){
				device_finish(d, "connect_failed");
			}else{
				device_watch(d);
				if(mosquitto_want_write(d->mosq)) mosquitto_loop_write(d->mosq, 1);
			}
			next++;
		}
		pump(5);
		keepalive_check();
		flush_writes();
		if(now_ms() - t_start > 120000) break;
	}

	/* phase 2: everybody asks at once */
	broker_usage(&cpu0, &rss0);
	rcpu0 = process_cpu_s(opt.responder_pid);
	machine_cpu(&mbusy0, &mtotal0);
	probe_phase = 2;
	t_start = now_ms();
	next = 0;
	for(int i = 0; i < opt.count && (!opt.sequential || i < 1); i++, next++){
		if(devices[i].state == DEV_READY) device_send(&devices[i]);
	}
	deadline = t_start + (opt.hold_s > 0 ? opt.hold_s : opt.timeout_s) * 1000.0;
	while((opt.hold_s > 0 || done_count < opt.count) && now_ms() < deadline){
		double now;
		long rss;
		double cpu;
		pump(opt.sequential ? 1 : 5);
		now = now_ms();
		/* sequential: the next device asks once every earlier one is done, and gap_ms later */
		if(opt.sequential && next < opt.count && done_count >= next){
			if(seq_idle_since < 0) seq_idle_since = now;
			if(now - seq_idle_since >= opt.gap_ms){
				if(devices[next].state == DEV_READY) device_send(&devices[next]);
				next++;
				seq_idle_since = -1;
			}
		}
		for(int i = 0; i < opt.count; i++){
			struct device *d = &devices[i];
			if(d->state == DEV_BACKOFF && now >= d->retry_at_ms) device_send(d);
		}
		keepalive_check();
		flush_writes();
		broker_usage(&cpu, &rss);
		if(rss > rss_peak) rss_peak = rss;
	}
	t_end = now_ms();
	broker_usage(&cpu1, &rss1);
	rcpu1 = process_cpu_s(opt.responder_pid);
	machine_cpu(&mbusy1, &mtotal1);
	probe_phase = 3;
	if(opt.probe) pthread_join(probe_thread, NULL);
	for(int i = 0; i < opt.count; i++){
		if(devices[i].state != DEV_DONE) code_count("no_reply");
	}

	qsort(latencies, (size_t)nlat, sizeof(double), cmp_double);
	printf("{\"devices\":%d,\"sent\":%d,\"ok\":%d,\"seconds\":%.3f,\"devices_per_s\":%.2f,", opt.count, sent_count, nlat,
			(t_end - t_start) / 1000.0, nlat / ((t_end - t_start) / 1000.0));
	printf("\"latency_ms\":{\"samples\":%d,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f},", nlat, pct(latencies, nlat, 50),
			pct(latencies, nlat, 90), pct(latencies, nlat, 99), nlat ? latencies[nlat - 1] : 0);
	printf("\"codes\":{");
	for(int i = 0; i < ncodes; i++) printf("%s\"%s\":%d", i ? "," : "", codes[i].code, codes[i].n);
	/* rss_kib_start: before the devices connected; before: connected, before they asked */
	printf("},\"broker\":{\"cpu_s\":%.2f,\"rss_kib_start\":%ld,\"rss_kib_before\":%ld,\"rss_kib_peak\":%ld,\"rss_kib_after\":%ld},",
			cpu1 - cpu0, rss_start, rss0, rss_peak, rss1);
	if(opt.responder_pid) printf("\"responder\":{\"cpu_s\":%.2f},", rcpu1 - rcpu0);
	printf("\"machine_cpu_busy\":%.3f,", mtotal1 > mtotal0 ? (mbusy1 - mbusy0) / (mtotal1 - mtotal0) : 0.0);
	if(opt.hold_s > 0) printf("\"hold_s\":%.1f,", opt.hold_s);
	printf("\"probe\":{");
	print_probe("idle", &probe_idle);
	printf(",");
	print_probe("storm", &probe_storm);
	printf("}}\n");

	for(int i = 0; i < opt.count; i++){
		if(devices[i].mosq) mosquitto_destroy(devices[i].mosq);
	}
	free(devices);
	free(latencies);
	mosquitto_lib_cleanup();
	return 0;
}

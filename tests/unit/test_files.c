/* Files the plugin reads (secrets, the OIDC token, the products file, the allowlist) as
 * Kubernetes, systemd and Docker lay them out: behind symlinks, swapped atomically, mode 0440
 * for an fsGroup. Whatever sits at the path, open() must not wait: a FIFO put there would
 * otherwise stall the broker until someone opened its other end; it is refused at once, and so
 * is every target that is not a regular file, before it is opened. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bootstrap_allowlist.h"
#include "bootstrap_audit.h"
#include "bootstrap_products.h"
#include "bootstrap_secret.h"
#include "unit.h"

#define OTHER_ID 4242 /* a uid and a gid the test's process is not, nor is in */

static char fifo_path[64];
static char base[64];

static void make_fifo(void)
{
	snprintf(fifo_path, sizeof(fifo_path), "/tmp/bootstrap-fifo-%d", (int)getpid());
	unlink(fifo_path);
	CHECK(mkfifo(fifo_path, 0600) == 0);
}

static void test_fifo_refused_without_waiting(void)
{
	char err[256] = "", *text = NULL;
	struct allowlist *al;
	struct audit *audit;

	make_fifo();
	CHECK(secret__read_file("plugin_opt_product_secret_file", fifo_path, true, &text, err, sizeof(err)) == -1);
	CHECK(text == NULL && strstr(err, "not a regular file") != NULL);
	al = allowlist__load(fifo_path, err, sizeof(err));
	CHECK(al == NULL && strstr(err, "not a regular file") != NULL);
	/* for writing, a FIFO nobody reads cannot even be opened without waiting: refused as well */
	audit = audit__open(fifo_path, err, sizeof(err));
	CHECK(audit == NULL && strstr(err, "plugin_opt_audit_file") != NULL);
	unlink(fifo_path);
}

/* ---- layouts ---- */

static char *at(const char *name)
{
	static char paths[8][256];
	static int next;
	char *p = paths[next++ % 8];

	snprintf(p, 256, "%s/%s", base, name);
	return p;
}

static void put(const char *name, const char *text, mode_t mode)
{
	int fd = open(at(name), O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0);
	if(fd < 0) return;
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	CHECK(chmod(at(name), mode) == 0);
}

static void new_base(void)
{
	char cmd[128];

	if(base[0]){
		snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
		CHECK(system(cmd) == 0);
	}
	snprintf(base, sizeof(base), "/tmp/bootstrap-files-XXXXXX");
	CHECK(mkdtemp(base) != NULL);
}

/* A Kubernetes atomic-writer volume (Secret, ConfigMap, projected): the data in ..<ts>/, ..data
 * a symlink to it, each name a symlink into ..data. */
static void k8s_data(const char *ts, const char *name, const char *text, mode_t mode)
{
	char rel[128];

	snprintf(rel, sizeof(rel), "%s/%s", ts, name);
	mkdir(at(ts), 0755);
	put(rel, text, mode);
}

static void k8s_publish(const char *ts)
{
	/* the atomic swap: a new link beside the old, renamed over it */
	unlink(at("..data_tmp"));
	CHECK(symlink(ts, at("..data_tmp")) == 0);
	CHECK(rename(at("..data_tmp"), at("..data")) == 0);
}

static void k8s_link(const char *name)
{
	char rel[128];

	snprintf(rel, sizeof(rel), "..data/%s", name);
	CHECK(symlink(rel, at(name)) == 0);
}

static void test_kubernetes_projected_token_and_its_rotation(void)
{
	char err[512] = "", *text = NULL, cmd[160];

	new_base();
	/* the service-account token as kubelet projects it (default mode 0644: the token is no
	 * secret of ours to guard, it is read with private false) */
	k8s_data("..2026_12_07_10_00_00.123", "token", "eyJ.first.sig\n", 0644);
	k8s_publish("..2026_12_07_10_00_00.123");
	k8s_link("token");
	CHECK(secret__read_file("OIDC token file", at("token"), false, &text, err, sizeof(err)) == 0);
	CHECK_STR(text, "eyJ.first.sig\n");
	free(text);
	/* rotation: a new directory, ..data swapped to it, the old one removed */
	k8s_data("..2026_12_07_10_50_00.456", "token", "eyJ.second.sig\n", 0644);
	k8s_publish("..2026_12_07_10_50_00.456");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", at("..2026_12_07_10_00_00.123"));
	CHECK(system(cmd) == 0);
	CHECK(secret__read_file("OIDC token file", at("token"), false, &text, err, sizeof(err)) == 0);
	CHECK_STR(text, "eyJ.second.sig\n");
	free(text);
}

static void test_kubernetes_secret_volume(void)
{
	char err[512] = "", *text = NULL, line[256];
	struct products *set;
	struct allowlist *al;

	new_base();
	/* defaultMode 0400 with an fsGroup: kubelet adds group read, 0440, group = fsGroup (here the
	 * process's own group), owner root (or ourselves when not run as root) */
	k8s_data("..2026_12_07_10_00_00.1", "product-secret", "ProductSecret-Of-A\n", 0440);
	k8s_data("..2026_12_07_10_00_00.1", "b-secret", "ProductSecret-Of-B\n", 0400);
	snprintf(line, sizeof(line), "a1ProdA %s\na1ProdB %s\n", at("product-secret"), at("b-secret"));
	k8s_data("..2026_12_07_10_00_00.1", "products", line, 0440);
	k8s_data("..2026_12_07_10_00_00.1", "allowlist", "dev-k8s-*\n", 0444); /* a ConfigMap: 0644 or 0444 */
	k8s_publish("..2026_12_07_10_00_00.1");
	k8s_link("product-secret");
	k8s_link("b-secret");
	k8s_link("products");
	k8s_link("allowlist");
	CHECK(products__read_secret("plugin_opt_product_secret_file", at("product-secret"), &text, err, sizeof(err)) == 0);
	CHECK_STR(text, "ProductSecret-Of-A");
	secret__free(&text);
	set = products__load(at("products"), err, sizeof(err));
	CHECK(set != NULL);
	if(!set) fprintf(stderr, "  products: %s\n", err);
	CHECK(set && products__count(set) == 2);
	CHECK(set && products__find(set, "a1ProdB") && !strcmp(products__find(set, "a1ProdB")->secret, "ProductSecret-Of-B"));
	products__free(set);
	al = allowlist__load(at("allowlist"), err, sizeof(err));
	CHECK(al != NULL && allowlist__allows(al, "dev-k8s-0001") && !allowlist__allows(al, "dev-other"));
	allowlist__free(al);

	/* the Secret's default mode, 0644: others may read it; refused, saying where the link goes */
	CHECK(chmod(at("..data/product-secret"), 0644) == 0);
	CHECK(products__read_secret("plugin_opt_product_secret_file", at("product-secret"), &text, err, sizeof(err)) == -1);
	CHECK(text == NULL && strstr(err, "is accessible by group or others (mode 644)") && strstr(err, "a symlink to ..data/product-secret"));
	CHECK(strstr(err, "ProductSecret-Of") == NULL); /* never the content */
	/* group-writable: refused whatever the group */
	CHECK(chmod(at("..data/product-secret"), 0460) == 0);
	CHECK(products__read_secret("plugin_opt_product_secret_file", at("product-secret"), &text, err, sizeof(err)) == -1);
	CHECK(strstr(err, "mode 460") != NULL);
	CHECK(chmod(at("..data/product-secret"), 0440) == 0);
	if(geteuid() == 0){
		/* 0440 with a group the broker is not in: that group could read it */
		CHECK(chown(at("..data/product-secret"), 0, OTHER_ID) == 0);
		CHECK(products__read_secret("plugin_opt_product_secret_file", at("product-secret"), &text, err, sizeof(err)) == -1);
		CHECK(strstr(err, "(mode 440) and its group (gid 4242) is not one the broker is in") != NULL);
		/* 0440, our group, but owned by another user: that user could rewrite it */
		CHECK(chown(at("..data/product-secret"), OTHER_ID, getegid()) == 0);
		CHECK(products__read_secret("plugin_opt_product_secret_file", at("product-secret"), &text, err, sizeof(err)) == -1);
		CHECK(strstr(err, "owned by another user (uid 4242, mode 440)") != NULL);
		/* 0400 owned by another user: still that user's to rewrite (an outsider's finding) */
		CHECK(chmod(at("..data/product-secret"), 0400) == 0);
		CHECK(products__read_secret("plugin_opt_product_secret_file", at("product-secret"), &text, err, sizeof(err)) == -1);
		CHECK(strstr(err, "owned by another user (uid 4242, mode 400)") != NULL);
	}else{
		printf("     (not root: the other-group and other-owner cases need chown)\n");
	}
	CHECK(text == NULL);
}

static void test_systemd_credential(void)
{
	char err[512] = "", *text = NULL;

	new_base();
	/* LoadCredential=: $CREDENTIALS_DIRECTORY 0500, each credential a regular file 0400 */
	CHECK(mkdir(at("credentials"), 0700) == 0);
	put("credentials/product-secret", "ProductSecret-Systemd\n", 0400);
	CHECK(chmod(at("credentials"), 0500) == 0);
	CHECK(products__read_secret("plugin_opt_product_secret_file", at("credentials/product-secret"), &text, err, sizeof(err)) == 0);
	CHECK_STR(text, "ProductSecret-Systemd");
	secret__free(&text);
	chmod(at("credentials"), 0700);
}

static void test_docker_secret(void)
{
	char err[512] = "", *text = NULL;

	new_base();
	/* /run/secrets/<name>: a regular file, 0444 root:root unless the service says mode/uid */
	put("product-secret", "ProductSecret-Docker\n", 0444);
	CHECK(products__read_secret("plugin_opt_product_secret_file", at("product-secret"), &text, err, sizeof(err)) == -1);
	CHECK(text == NULL && strstr(err, "is accessible by group or others (mode 444)") != NULL);
	/* mode: 0400 (with uid: the broker's) is read */
	CHECK(chmod(at("product-secret"), 0400) == 0);
	CHECK(products__read_secret("plugin_opt_product_secret_file", at("product-secret"), &text, err, sizeof(err)) == 0);
	CHECK_STR(text, "ProductSecret-Docker");
	secret__free(&text);
	/* not private (the OIDC token): 0444 is fine */
	CHECK(chmod(at("product-secret"), 0444) == 0);
	CHECK(secret__read_file("OIDC token file", at("product-secret"), false, &text, err, sizeof(err)) == 0);
	secret__free(&text);
}

/* Reads path both ways (a secret, the allowlist): refused, err holding every one of want. */
static void expect_refused(const char *path, const char *want1, const char *want2)
{
	char err[512] = "", *text = NULL;
	struct allowlist *al;

	CHECK(secret__read_file("plugin_opt_product_secret_file", path, true, &text, err, sizeof(err)) == -1);
	CHECK(text == NULL);
	if(!strstr(err, want1) || (want2 && !strstr(err, want2))) fprintf(stderr, "  got: %s\n", err);
	CHECK(strstr(err, "plugin_opt_product_secret_file: ") == err);
	CHECK(strstr(err, want1) != NULL && (!want2 || strstr(err, want2) != NULL));
	al = allowlist__load(path, err, sizeof(err));
	CHECK(al == NULL && strstr(err, want1) != NULL);
}

static void test_refusals_through_symlinks(void)
{
	char big[SECRET_FILE_MAX + 2];

	new_base();
	make_fifo();
	CHECK(symlink(fifo_path, at("to-fifo")) == 0);
	expect_refused(at("to-fifo"), "is not a regular file (a FIFO)", "a symlink to /tmp/bootstrap-fifo-");
	unlink(fifo_path);
	CHECK(mkdir(at("dir"), 0700) == 0);
	CHECK(symlink("dir", at("to-dir")) == 0);
	expect_refused(at("to-dir"), "is not a regular file (a directory)", "(a symlink to dir)");
	CHECK(symlink("/dev/zero", at("to-zero")) == 0);
	expect_refused(at("to-zero"), "is not a regular file (a character device)", "(a symlink to /dev/zero)");
	CHECK(symlink("nowhere", at("dangling")) == 0);
	expect_refused(at("dangling"), "points to nothing (a dangling symlink)", "(a symlink to nowhere)");
	CHECK(symlink("loop-b", at("loop-a")) == 0);
	CHECK(symlink("loop-a", at("loop-b")) == 0);
	expect_refused(at("loop-a"), "Too many levels of symbolic links (a symlink loop)", NULL);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	put("big", big, 0600);
	CHECK(symlink("big", at("to-big")) == 0);
	{
		char err[512] = "", *text = NULL;
		CHECK(secret__read_file("plugin_opt_product_secret_file", at("to-big"), true, &text, err, sizeof(err)) == -1);
		CHECK(text == NULL && strstr(err, "is larger than 65536 bytes") && strstr(err, "(a symlink to big)"));
	}
	/* a plain missing file: as before */
	{
		char err[512] = "", *text = NULL;
		CHECK(secret__read_file("plugin_opt_product_secret_file", at("missing"), true, &text, err, sizeof(err)) == -1);
		CHECK(strstr(err, "cannot open") && strstr(err, "No such file or directory"));
	}
}

int main(void)
{
	/* a regression hangs in open(): fail instead of waiting for CTest's timeout */
	alarm(20);
	RUN(test_fifo_refused_without_waiting);
	RUN(test_kubernetes_projected_token_and_its_rotation);
	RUN(test_kubernetes_secret_volume);
	RUN(test_systemd_credential);
	RUN(test_docker_secret);
	RUN(test_refusals_through_symlinks);
	new_base();
	rmdir(base);
	return unit_main_result();
}

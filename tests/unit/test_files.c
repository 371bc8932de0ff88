/* Files the broker thread opens on a reload (secrets, the products file, the allowlist, the
 * audit trail): whatever sits at the path, open() must not wait. A FIFO there would otherwise
 * stall the broker until someone opened its other end; it is refused at once instead. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bootstrap_allowlist.h"
#include "bootstrap_audit.h"
#include "bootstrap_secret.h"
#include "unit.h"

static char fifo_path[64];

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

int main(void)
{
	/* a regression hangs in open(): fail instead of waiting for CTest's timeout */
	alarm(20);
	RUN(test_fifo_refused_without_waiting);
	return unit_main_result();
}

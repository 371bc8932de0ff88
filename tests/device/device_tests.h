#ifndef DEVICE_TESTS_H
#define DEVICE_TESTS_H
/* The device library's tests, pure C (no file I/O, no allocation; printf for failures): the
 * host runs them with both ports (test_device.c), a Cortex-M under QEMU with its own. */
#include "bootstrap_device.h"

/* Runs every test with port; name labels its failures. Returns the number of failures. */
int device_tests_run(const struct bootdev_port *port, const char *name);

#endif

#!/usr/bin/env python3
"""The device library's example, as the docs show it, made compilable for test_doc_example.c:

    doc_example.py README.md docs/device-library.md > doc_example.inc

Takes the first ```c block of README.md's "## On the device" section and of
docs/device-library.md's "## Example" section, fails unless the two are the same code, and
prints it for tests/device/test_doc_example.c to #include (which supplies the mqtt_*, hw_rng,
store_triple and sleep_s the example leaves to the firmware)."""
import re
import sys


def block(path, heading):
    with open(path) as f:
        text = f.read()
    at = text.find("\n" + heading + "\n")
    if at < 0:
        sys.exit("doc_example: no %r section in %s" % (heading, path))
    section = text[at + 1:]
    end = re.search(r"\n## ", section[len(heading):])
    if end:
        section = section[:len(heading) + end.start()]
    m = re.search(r"```c\n(.*?)```", section, re.S)
    if not m:
        sys.exit("doc_example: no ```c block in %s's %r" % (path, heading))
    return m.group(1)


readme = block(sys.argv[1], "## On the device")
doc = block(sys.argv[2], "## Example")
if readme != doc:
    sys.exit("doc_example: the example in %s differs from the one in %s" % (sys.argv[1], sys.argv[2]))
# the firmware's own includes are test_doc_example.c's
print("/* made by tests/device/doc_example.py from %s and %s: do not edit */" % (sys.argv[1], sys.argv[2]))
print("#line 1 \"%s (On the device)\"" % sys.argv[1])
sys.stdout.write(readme)

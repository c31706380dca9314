/*
 * Failure points for tests, compiled into every build and inert unless armed: K2A_TEST_FAIL holds a comma-separated list
 * of point names (e.g. K2A_TEST_FAIL=exchange_drain), read once per process. A point that is armed makes the code at
 * that point take its failure branch (an out-of-memory return, typically), so that tests reach paths no real peer can
 * trigger on demand. The points are listed where they are checked (grep k2a_test_fail).
 */
#ifndef K2A_CORE_TESTHOOK_H
#define K2A_CORE_TESTHOOK_H

#include <stdbool.h>

/* True when `point` is named in K2A_TEST_FAIL. Thread-safe; the variable is read on the first call. */
bool k2a_test_fail(const char *point);

#endif

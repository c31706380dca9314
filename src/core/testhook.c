/*
 * K2A_TEST_FAIL, read once (see testhook.h).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "core/testhook.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char armed[256]; /* ",a,b," or empty */

static void load(void)
{
    const char *v = getenv("K2A_TEST_FAIL");
    if (v == NULL || v[0] == '\0' || strlen(v) > sizeof(armed) - 3)
        return;
    armed[0] = ',';
    strcpy(armed + 1, v);
    strcat(armed, ",");
}

bool k2a_test_fail(const char *point)
{
    pthread_once(&once, load);
    if (armed[0] == '\0')
        return false;
    size_t n = strlen(point);
    if (n == 0)
        return false;
    for (const char *p = strstr(armed, point); p != NULL; p = strstr(p + 1, point))
        if (p[-1] == ',' && p[n] == ',')
            return true;
    return false;
}

/*
 * The native thinking-effort gate (see model_effort.h): a static list of Kiro model ids, and a small table of models
 * that refused the field, under a mutex (written once per model, read once per request for listed models only).
 */
#include <pthread.h>
#include <string.h>
#include "convert/model_effort.h"

#define MAX_ID 96

static pthread_mutex_t refused_lock = PTHREAD_MUTEX_INITIALIZER;
static char refused[K2A_MODEL_EFFORT_REMEMBER_MAX][MAX_ID];
static size_t nrefused;

static bool is_refused(k2a_str_t id)
{
    bool found = false;
    pthread_mutex_lock(&refused_lock);
    for (size_t i = 0; i < nrefused && !found; ++i)
        found = strlen(refused[i]) == id.len && memcmp(refused[i], id.base, id.len) == 0;
    pthread_mutex_unlock(&refused_lock);
    return found;
}

void k2a_model_effort_unsupported(k2a_str_t id)
{
    if (id.len == 0 || id.len >= MAX_ID || is_refused(id))
        return;
    pthread_mutex_lock(&refused_lock);
    if (nrefused < K2A_MODEL_EFFORT_REMEMBER_MAX) {
        memcpy(refused[nrefused], id.base, id.len);
        refused[nrefused][id.len] = '\0';
        ++nrefused;
    }
    pthread_mutex_unlock(&refused_lock);
}

void k2a_model_effort_reset(void)
{
    pthread_mutex_lock(&refused_lock);
    nrefused = 0;
    pthread_mutex_unlock(&refused_lock);
}

/* "claude-opus-4.6" and "claude-sonnet-4.6" (the 4.6 models refuse "xhigh") */
static bool is_46(k2a_str_t id)
{
    return k2a_str_eq_lit(id, "claude-opus-4.6") || k2a_str_eq_lit(id, "claude-sonnet-4.6");
}

/* claude-<family>-5 or claude-<family>-5.<minor> */
static bool is_5_series(k2a_str_t id)
{
    if (!k2a_str_has_prefix(id, "claude-"))
        return false;
    size_t dash = id.len;
    while (dash > 0 && id.base[dash - 1] != '-')
        --dash;
    if (dash <= 8 || dash >= id.len || id.base[dash] != '5' || !(id.base[dash - 2] >= 'a' && id.base[dash - 2] <= 'z'))
        return false; /* "claude-sonnet-4-5" is 4.5, not 5 */
    for (size_t i = dash + 1; i < id.len; ++i)
        if (!(id.base[i] == '.' || (id.base[i] >= '0' && id.base[i] <= '9')))
            return false;
    return dash + 1 == id.len || id.base[dash + 1] == '.';
}

static bool effort_known(k2a_str_t e)
{
    static const char *const values[] = {"low", "medium", "high", "xhigh", "max"};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); ++i)
        if (k2a_str_eq_lit(e, values[i]))
            return true;
    return false;
}

bool k2a_model_accepts_effort(k2a_str_t id, k2a_str_t effort)
{
    bool listed = is_46(id) || k2a_str_eq_lit(id, "claude-opus-4.7") || k2a_str_eq_lit(id, "claude-opus-4.8") || is_5_series(id);
    if (!listed)
        return false;
    if (effort.len != 0 && (!effort_known(effort) || (is_46(id) && k2a_str_eq_lit(effort, "xhigh"))))
        return false;
    return !is_refused(id);
}

/*
 * Unit tests for kiro-sim's arena-built request tree (src/sim/jtree.c): whenever it gives a tree, the tree is
 * yajl_tree_parse's (same types, keys in order, strings, number text, integer, double and flags) and the body is one
 * the strict path's pre-checks pass (no comment, nesting within the limit); it gives none for comments, deeper nesting,
 * non-integer or long numbers, syntax errors and invalid UTF-8. Checked on fixed bodies and on 20 000 seeded random
 * mutations of a request body.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "core/rand.h"
#include "sim/validate.h"

static const char good[] =
    "{\"conversationState\":{\"chatTriggerType\":\"MANUAL\",\"conversationId\":\"c\",\"currentMessage\":{\"userInputMessage\":"
    "{\"content\":\"h\\u00e9llo \\\"x\\\" \\n\",\"modelId\":\"auto\",\"origin\":\"AI_EDITOR\",\"images\":[],\"n\":[1,-2,0,-0,"
    "123456789012345],\"userInputMessageContext\":{\"tools\":[{\"toolSpecification\":{\"name\":\"Bash\",\"description\":"
    "\"run\",\"inputSchema\":{\"json\":{\"type\":\"object\",\"t\":true,\"f\":false,\"z\":null}}}}]}}},\"history\":[{"
    "\"userInputMessage\":{\"content\":\"hi\",\"modelId\":\"auto\",\"origin\":\"AI_EDITOR\"}},{\"assistantResponseMessage\":"
    "{\"content\":\"\",\"toolUses\":[{\"toolUseId\":\"tooluse_1\",\"name\":\"bash\",\"input\":{}}]}}]},\"k\":1,\"k\":2}";

static bool same(yajl_val a, yajl_val b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case yajl_t_string:
        return strcmp(a->u.string, b->u.string) == 0;
    case yajl_t_number:
        return strcmp(a->u.number.r, b->u.number.r) == 0 && a->u.number.i == b->u.number.i &&
               memcmp(&a->u.number.d, &b->u.number.d, sizeof(double)) == 0 && a->u.number.flags == b->u.number.flags;
    case yajl_t_object:
        if (a->u.object.len != b->u.object.len)
            return false;
        for (size_t i = 0; i < a->u.object.len; ++i)
            if (strcmp(a->u.object.keys[i], b->u.object.keys[i]) != 0 || !same(a->u.object.values[i], b->u.object.values[i]))
                return false;
        return true;
    case yajl_t_array:
        if (a->u.array.len != b->u.array.len)
            return false;
        for (size_t i = 0; i < a->u.array.len; ++i)
            if (!same(a->u.array.values[i], b->u.array.values[i]))
                return false;
        return true;
    default:
        return true;
    }
}

/* 1 when the arena tree was given (and equals yajl_tree's), 0 when not. */
static int check(k2a_sim_jtree_t *t, const char *s, size_t n, size_t limit)
{
    yajl_val a = k2a_sim_jtree_parse(t, s, n, limit);
    if (a == NULL)
        return 0;
    char *copy = malloc(n + 1), err[128];
    memcpy(copy, s, n);
    copy[n] = '\0';
    yajl_val b = yajl_tree_parse(copy, err, sizeof(err));
    free(copy);
    if (b == NULL)
        fail_msg("arena tree for a body yajl_tree rejects: %.*s", (int)n, s);
    if (!same(a, b))
        fail_msg("trees differ: %.*s", (int)n, s);
    bool comment;
    if (k2a_sim_json_depth(s, n, limit, &comment) > limit || comment || memchr(s, '\0', n) != NULL)
        fail_msg("arena tree for a body the pre-checks stop: %.*s", (int)n, s);
    yajl_tree_free(b);
    return 1;
}

static void test_fixed(void **state)
{
    (void)state;
    k2a_sim_jtree_t t = {0};
    assert_int_equal(check(&t, good, sizeof(good) - 1, 128), 1);
    static const char *const yes[] = {"{}", "[]", "\"s\"", "7", "-0", "null", "[{},[[]],\"\\u0000a\"]", " {\"a\" : [ 1 ] } "};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); ++i)
        assert_int_equal(check(&t, yes[i], strlen(yes[i]), 128), 1);
    static const char *const no[] = {"{/*c*/}", "[1.5]", "[1e3]", "[1234567890123456]", "{\"a\":1}x", "[1,]", "[\"\xc3\"]", "",
                                     "{\"a\":", "[01]",  "[-]"};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); ++i)
        assert_int_equal(check(&t, no[i], strlen(no[i]), 128), 0);
    char deep[300];
    for (size_t d = 126; d <= 130; ++d) {
        memset(deep, '[', d);
        memset(deep + d, ']', d);
        assert_int_equal(check(&t, deep, 2 * d, 128), d <= 128 ? 1 : 0);
    }
    k2a_sim_jtree_dispose(&t);
}

static void test_random_mutations(void **state)
{
    (void)state;
    static const char alphabet[] = "{}[]\",:0 nulltruefalse\\\x80\xc3/.e-9";
    uint64_t rng = 7;
    size_t len = sizeof(good) - 1, given = 0;
    char *buf = malloc(len + 16);
    k2a_sim_jtree_t t = {0};
    for (int i = 0; i < 20000; ++i) {
        memcpy(buf, good, len);
        size_t n = len;
        for (int m = 1 + k2a_splitmix64(&rng) % 3; m > 0; --m) {
            size_t at = k2a_splitmix64(&rng) % n;
            switch (k2a_splitmix64(&rng) % 3) {
            case 0:
                buf[at] = alphabet[k2a_splitmix64(&rng) % (sizeof(alphabet) - 1)];
                break;
            case 1:
                memmove(buf + at, buf + at + 1, n - at - 1);
                --n;
                break;
            default:
                memmove(buf + at + 1, buf + at, n - at);
                buf[at] = alphabet[k2a_splitmix64(&rng) % (sizeof(alphabet) - 1)];
                ++n;
            }
        }
        given += (size_t)check(&t, buf, n, 128 - k2a_splitmix64(&rng) % 2 * 124);
    }
    assert_true(given > 1000); /* both outcomes are exercised */
    assert_true(given < 20000);
    k2a_sim_jtree_dispose(&t);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_random_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * lg_test.h — a minimal unit-test harness for the pure core (test/c/test_*.c).
 *
 * Each test file #includes the .c it tests (so static functions are reachable), defines test
 * functions with LG_TEST(name), lists them in main() with LG_RUN(name), and ends with
 * LG_TEST_END(), which prints "N passed, N failed" and sets the exit code. A test fails at its
 * first failed CHECK; the failed check is printed with file, line and the expression.
 */
#ifndef LG_TEST_H
#define LG_TEST_H

#include <stdio.h>
#include <string.h>

static int lg_test_passed, lg_test_failed, lg_test_cur_failed;
static const char *lg_test_cur;

#define LG_TEST(name) static void name(void)

#define CHECK(expr)                                                                                \
    do {                                                                                           \
        if (!(expr)) {                                                                             \
            fprintf(stderr, "  FAIL %s (%s:%d): %s\n", lg_test_cur, __FILE__, __LINE__, #expr);    \
            lg_test_cur_failed = 1;                                                                \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* CHECK for use inside loops over tables: names the row that failed. */
#define CHECK_ROW(expr, row_name)                                                                  \
    do {                                                                                           \
        if (!(expr)) {                                                                             \
            fprintf(stderr, "  FAIL %s [%s] (%s:%d): %s\n", lg_test_cur, (row_name), __FILE__,     \
                    __LINE__, #expr);                                                              \
            lg_test_cur_failed = 1;                                                                \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long lg_a_ = (long long)(a), lg_b_ = (long long)(b);                                  \
        if (lg_a_ != lg_b_) {                                                                      \
            fprintf(stderr, "  FAIL %s (%s:%d): %s == %s (%lld != %lld)\n", lg_test_cur, __FILE__, \
                    __LINE__, #a, #b, lg_a_, lg_b_);                                               \
            lg_test_cur_failed = 1;                                                                \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define LG_RUN(name)                                                                               \
    do {                                                                                           \
        lg_test_cur = #name;                                                                       \
        lg_test_cur_failed = 0;                                                                    \
        name();                                                                                    \
        if (lg_test_cur_failed) {                                                                  \
            lg_test_failed++;                                                                      \
        } else {                                                                                   \
            lg_test_passed++;                                                                      \
        }                                                                                          \
    } while (0)

#define LG_TEST_END()                                                                              \
    do {                                                                                           \
        printf("%d passed, %d failed\n", lg_test_passed, lg_test_failed);                          \
        return lg_test_failed ? 1 : 0;                                                             \
    } while (0)

#endif /* LG_TEST_H */

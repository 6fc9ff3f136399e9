// SPDX-License-Identifier: MIT
// Error names and messages, and exit reason text.
#include "tp_test.h"

#include <string.h>

START_TEST(test_names_and_messages)
{
    ck_assert_str_eq(tp_err_name(0), "TP_OK");
    ck_assert_str_eq(tp_err_name(TP_EINVAL), "TP_EINVAL");
    ck_assert_str_eq(tp_err_name(TP_ENOACTOR), "TP_ENOACTOR");
    ck_assert_str_eq(tp_err_name(TP_EFULL), "TP_EFULL");
    ck_assert_str_eq(tp_err_name(TP_ETIMEDOUT), "TP_ETIMEDOUT");
    ck_assert_str_eq(tp_err_name(-999999), "TP_E?");
    ck_assert_str_eq(tp_strerror(TP_EFULL), "mailbox full");
    ck_assert_str_eq(tp_strerror(12345), "unknown error");
    ck_assert_str_eq(tp_strerror(0), "success");
    ck_assert_int_eq(TP_EINVAL, -EINVAL);
    ck_assert_int_eq(TP_ETIMEDOUT, -ETIMEDOUT);
    // The socket errors a node or a socket reports keep their errno.
    ck_assert_int_eq(TP_EADDRNOTAVAIL, -EADDRNOTAVAIL);
    ck_assert_str_eq(tp_err_name(-EADDRNOTAVAIL), "TP_EADDRNOTAVAIL");
    ck_assert_str_eq(tp_err_name(-EAFNOSUPPORT), "TP_EAFNOSUPPORT");
    ck_assert_str_eq(tp_err_name(-ECONNREFUSED), "TP_ECONNREFUSED");
    ck_assert_str_eq(tp_strerror(TP_EACCES), "permission denied");
}
END_TEST

START_TEST(test_reasons)
{
    char buf[64];
    tp_reason_format(TP_REASON_NORMAL, buf, sizeof buf);
    ck_assert_str_eq(buf, "normal");
    tp_reason_format(TP_REASON_MAILBOX_OVERFLOW, buf, sizeof buf);
    ck_assert_str_eq(buf, "mailbox_overflow");
    tp_reason_format(TP_EINVAL, buf, sizeof buf);
    ck_assert_str_eq(buf, "TP_EINVAL");
    tp_reason_format(TP_REASON_KILLED, buf, sizeof buf);
    ck_assert_str_eq(buf, "killed");
    tp_reason_format(TP_REASON_SIGNAL + 11, buf, sizeof buf);
    ck_assert_str_eq(buf, "signal 11");
    tp_reason_format(77, buf, sizeof buf);
    ck_assert_str_eq(buf, "reason_77");
    // What callbacks return is no reason: 0 and TP_STOP are not "normal".
    tp_reason_format(0, buf, sizeof buf);
    ck_assert_str_eq(buf, "reason_0");
    tp_reason_format(TP_STOP, buf, sizeof buf);
    ck_assert_str_eq(buf, "reason_1");
    tp_reason_format(-4242, buf, sizeof buf);
    ck_assert_str_eq(buf, "error_-4242");
}
END_TEST

Suite *
err_suite(void)
{
    Suite *s = suite_create("err");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_names_and_messages);
    tcase_add_test(tc, test_reasons);
    suite_add_tcase(s, tc);
    return s;
}

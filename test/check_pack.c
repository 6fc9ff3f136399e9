// SPDX-License-Identifier: MIT
// msgpack helpers: pack and send without touching buffers, unpack and
// refuse malformed payloads.
#include "tp_test.h"
#include <troupe/msgpack.h>

#include <string.h>

static _Atomic long got_ok, got_bad;

static int
reader_handle(tp_ctx *ctx, void *state, const tp_msg *msg)
{
    (void)state;
    msgpack_unpacked u;
    int rc = tp_msg_unpack(msg, &u);
    if (msg->tag == 1) {
        // {"op": "add", "n": [1, 2, 3]} -> reply with the sum, packed.
        if (rc == 0 && u.data.type == MSGPACK_OBJECT_MAP &&
            u.data.via.map.size == 2) {
            msgpack_object n = u.data.via.map.ptr[1].val;
            int64_t sum = 0;
            for (uint32_t i = 0; i < n.via.array.size; i++)
                sum += n.via.array.ptr[i].via.i64;
            tp_pack p;
            tp_pack_init(&p);
            msgpack_pack_int64(tp_pack_packer(&p), sum);
            ck_assert_int_eq(tp_pack_send(ctx, tp_self(ctx), 2, &p), 0);
            ck_assert_uint_eq(p.buf.size, 0); // handed over
            tp_pack_destroy(&p);
        }
    } else if (msg->tag == 2) {
        if (rc == 0 && u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            u.data.via.u64 == 6)
            atomic_fetch_add(&got_ok, 1);
    } else if (rc == TP_EDECODE) {
        atomic_fetch_add(&got_bad, 1);
    }
    msgpack_unpacked_destroy(&u);
    return TP_OK;
}

static const tp_behaviour reader_b = {.name = "reader",
                                      .handle = reader_handle};

START_TEST(test_pack_round_trip)
{
    tp_system *sys = tpt_system(2);
    tp_pid pid;
    ck_assert_int_eq(tp_spawn(sys, &reader_b, NULL, NULL, &pid), 0);
    tp_pack p;
    tp_pack_init(&p);
    ck_assert_int_eq(tp_system_pack_send(sys, pid, 1, &p), TP_EINVAL); // empty
    msgpack_packer *pk = tp_pack_packer(&p);
    msgpack_pack_map(pk, 2);
    msgpack_pack_str_with_body(pk, "op", 2);
    msgpack_pack_str_with_body(pk, "add", 3);
    msgpack_pack_str_with_body(pk, "n", 1);
    msgpack_pack_array(pk, 3);
    for (int i = 1; i <= 3; i++)
        msgpack_pack_int(pk, i);
    ck_assert_int_eq(tp_system_pack_send(sys, tp_pid_make(0, 999, 9), 1, &p),
                     TP_ENOACTOR);
    ck_assert_uint_gt(p.buf.size, 0); // kept on failure
    ck_assert_int_eq(tp_system_pack_send(sys, pid, 1, &p), 0);
    ck_assert(tpt_wait_ge(&got_ok, 1, 20));
    tp_pack_destroy(&p);
    tp_pack_destroy(NULL);
    tp_system_destroy(&sys);
}
END_TEST

START_TEST(test_unpack_rejects_malformed)
{
    tp_system *sys = tpt_system(1);
    tp_pid pid;
    ck_assert_int_eq(tp_spawn(sys, &reader_b, NULL, NULL, &pid), 0);
    static const unsigned char truncated[] = {0x93, 0x01, 0x02};
    static const unsigned char trailing[] = {0x01, 0x02};
    static const unsigned char huge_array[] = {0xdd, 0xff, 0x00, 0x00, 0x00};
    static const unsigned char bad_byte[] = {0xc1};
    struct {
        const void *p;
        size_t n;
    } cases[] = {{truncated, sizeof truncated},
                 {trailing, sizeof trailing},
                 {huge_array, sizeof huge_array},
                 {bad_byte, sizeof bad_byte},
                 {"", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_int_eq(tp_system_send(sys, pid, 3, cases[i].p, cases[i].n),
                         0);
    ck_assert(tpt_wait_ge(&got_bad, 5, 20));
    msgpack_unpacked u;
    ck_assert_int_eq(tp_msg_unpack(NULL, &u), TP_EINVAL);
    msgpack_unpacked_destroy(&u);
    tp_msg no_data = {.tag = 3, .data = NULL, .size = 3};
    ck_assert_int_eq(tp_msg_unpack(&no_data, &u), TP_EINVAL);
    msgpack_unpacked_destroy(&u);
    tp_system_destroy(&sys);
}
END_TEST

Suite *
pack_suite(void)
{
    Suite *s = suite_create("pack");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_pack_round_trip);
    tcase_add_test(tc, test_unpack_rejects_malformed);
    suite_add_tcase(s, tc);
    return s;
}

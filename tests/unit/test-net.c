/* runtime/net.c: names and addresses (no netlink needed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/launcher/launch.h"
#include "runtime/launcher/net.h"

static void test_veth_name(void **state)
{
	char a[NET_IFNAME_LEN], b[NET_IFNAME_LEN], c[NET_IFNAME_LEN];
	net_veth_name("app-web.1-abc", a);
	net_veth_name("app-web.1-abc", b);
	net_veth_name("app-web.2-abc", c);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	/* IFNAMSIZ is 16 with the NUL; "dy-" marks the platform's links */
	assert_int_equal(strlen(a), 15);
	assert_memory_equal(a, "dy-", 3);
}

static void test_gateway(void **state)
{
	struct in_addr net, gw;
	inet_pton(AF_INET, "10.213.0.0", &net);
	gw = net_gateway(net);
	assert_string_equal(inet_ntoa(gw), "10.213.0.1");
}

static void test_launch_refuses_root(void **state)
{
	struct launch_params p = {
	    .slug_dir = "/nonexistent",
	    .uid = 0,
	    .gid = 0,
	    .name = "web.1",
	    .id = "x",
	    .command = "true",
	};
	struct launch_dyno *d = NULL;
	struct dy_error *e = NULL;
	assert_true(launch_start(&p, &d, &e) < 0);
	assert_non_null(strstr(dy_error_msg(e), "refusing uid or gid 0"));
	dy_error_free(&e);
	p.uid = p.gid = 1000;
	p.id = "../x";
	assert_true(launch_start(&p, &d, &e) < 0);
	assert_non_null(strstr(dy_error_msg(e), "bad dyno id"));
	dy_error_free(&e);
	assert_null(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_veth_name),
	    cmocka_unit_test(test_gateway),
	    cmocka_unit_test(test_launch_refuses_root),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

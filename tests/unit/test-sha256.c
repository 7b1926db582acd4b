#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/sha256.h"

static void hash_hex(const void *data, size_t len, char hex[65])
{
	struct dy_sha256 s;
	uint8_t d[32];
	dy_sha256_init(&s);
	dy_sha256_update(&s, data, len);
	dy_sha256_final(&s, d);
	dy_sha256_hex(d, hex);
}

/* FIPS 180-4 example vectors (NIST CSRC "SHA256.pdf"). */
static void test_vectors(void **state)
{
	char hex[65];
	hash_hex("", 0, hex);
	assert_string_equal(hex,
	                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	hash_hex("abc", 3, hex);
	assert_string_equal(hex,
	                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	hash_hex(two, strlen(two), hex);
	assert_string_equal(hex,
	                    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* One million 'a' fed in odd-sized pieces exercises block carry-over. */
static void test_million_a_streamed(void **state)
{
	static char buf[1000];
	memset(buf, 'a', sizeof(buf));
	struct dy_sha256 s;
	dy_sha256_init(&s);
	size_t done = 0, step = 1;
	while (done < 1000000) {
		size_t n = step;
		if (n > sizeof(buf))
			n = sizeof(buf);
		if (n > 1000000 - done)
			n = 1000000 - done;
		dy_sha256_update(&s, buf, n);
		done += n;
		step = step * 7 % 997 + 1;
	}
	uint8_t d[32];
	char hex[65];
	dy_sha256_final(&s, d);
	dy_sha256_hex(d, hex);
	assert_string_equal(hex,
	                    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* Lengths around the 55/56/64-byte padding boundaries must agree between
 * one-shot and byte-at-a-time hashing. */
static void test_padding_boundaries(void **state)
{
	uint8_t data[130];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 31 + 7);
	for (size_t len = 50; len <= 130; len++) {
		char one[65], bytewise[65];
		hash_hex(data, len, one);
		struct dy_sha256 s;
		uint8_t d[32];
		dy_sha256_init(&s);
		for (size_t i = 0; i < len; i++)
			dy_sha256_update(&s, data + i, 1);
		dy_sha256_final(&s, d);
		dy_sha256_hex(d, bytewise);
		assert_string_equal(one, bytewise);
	}
	char hex[65];
	hash_hex("abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabc", 55, hex);
	assert_int_equal(strlen(hex), 64);
}

static void test_hex_of(void **state)
{
	char hex[DY_SHA256_HEX_LEN + 1];
	dy_sha256_hex_of("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hex_of),
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_million_a_streamed),
	    cmocka_unit_test(test_padding_boundaries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

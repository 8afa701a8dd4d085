// TextBuffer and the stderr/fatal paths (lib/base/log.h).
//
// TextBuffer must format exactly like printf would (%llu, %*llu, %lld, %#llx,
// %.Nf with round-half-up), truncate safely with the buffer always
// NUL-terminated, and count the length it would need like snprintf.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "child_process.h"
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <string>

#include "base/log.h"

using namespace am;

namespace {

// Formats with f into a large buffer and returns the text.
template <typename F>
std::string fmt(F f) {
  char buf[256];
  memset(buf, 'X', sizeof buf);
  TextBuffer t(buf, sizeof buf);
  f(t);
  REQUIRE(t.needed() == strlen(buf));
  REQUIRE(t.held() == t.needed());
  return std::string(buf);
}


}  // namespace

TEST_CASE("TextBuffer: integers", "[log]") {
  CHECK(fmt([](TextBuffer& t) { t.u64(0); }) == "0");
  CHECK(fmt([](TextBuffer& t) { t.u64(7); }) == "7");
  CHECK(fmt([](TextBuffer& t) { t.u64(1234567890); }) == "1234567890");
  CHECK(fmt([](TextBuffer& t) { t.u64(UINT64_MAX); }) == "18446744073709551615");
  CHECK(fmt([](TextBuffer& t) { t.i64(0); }) == "0");
  CHECK(fmt([](TextBuffer& t) { t.i64(-5); }) == "-5");
  CHECK(fmt([](TextBuffer& t) { t.i64(42); }) == "42");
  CHECK(fmt([](TextBuffer& t) { t.i64(INT64_MIN); }) == "-9223372036854775808");
  CHECK(fmt([](TextBuffer& t) { t.i64(INT64_MAX); }) == "9223372036854775807");
}

TEST_CASE("TextBuffer: fixed width", "[log]") {
  CHECK(fmt([](TextBuffer& t) { t.u64w(42, 5); }) == "   42");
  CHECK(fmt([](TextBuffer& t) { t.u64w(0, 3); }) == "  0");
  CHECK(fmt([](TextBuffer& t) { t.u64w(12345, 5); }) == "12345");
  // A number wider than the field is never cut.
  CHECK(fmt([](TextBuffer& t) { t.u64w(123456, 3); }) == "123456");
  CHECK(fmt([](TextBuffer& t) { t.u64w(9, 0); }) == "9");
  CHECK(fmt([](TextBuffer& t) { t.u64w(UINT64_MAX, 22); }) == "  18446744073709551615");
}

TEST_CASE("TextBuffer: hex", "[log]") {
  CHECK(fmt([](TextBuffer& t) { t.hex(0); }) == "0x0");
  CHECK(fmt([](TextBuffer& t) { t.hex(0xf); }) == "0xf");
  CHECK(fmt([](TextBuffer& t) { t.hex(0x10); }) == "0x10");
  CHECK(fmt([](TextBuffer& t) { t.hex(0xdeadbeef); }) == "0xdeadbeef");
  CHECK(fmt([](TextBuffer& t) { t.hex(0x7f12345678ab); }) == "0x7f12345678ab");
  CHECK(fmt([](TextBuffer& t) { t.hex(UINT64_MAX); }) == "0xffffffffffffffff");
}

TEST_CASE("TextBuffer: fixed point", "[log]") {
  const uint64_t MiB = 1 << 20;
  CHECK(fmt([&](TextBuffer& t) { t.fixed(0, MiB, 1); }) == "0.0");
  CHECK(fmt([&](TextBuffer& t) { t.fixed(MiB, MiB, 1); }) == "1.0");
  CHECK(fmt([&](TextBuffer& t) { t.fixed(MiB + MiB / 2, MiB, 1); }) == "1.5");
  CHECK(fmt([&](TextBuffer& t) { t.fixed(3 * MiB / 4, MiB, 1); }) == "0.8");  // 0.75 rounds up
  CHECK(fmt([&](TextBuffer& t) { t.fixed(1049, 1000, 2); }) == "1.05");        // 1.049
  CHECK(fmt([&](TextBuffer& t) { t.fixed(1045, 1000, 2); }) == "1.05");        // half up
  CHECK(fmt([&](TextBuffer& t) { t.fixed(1044, 1000, 2); }) == "1.04");
  CHECK(fmt([&](TextBuffer& t) { t.fixed(999, 1000, 2); }) == "1.00");         // carry into the integer
  CHECK(fmt([&](TextBuffer& t) { t.fixed(9996, 1000, 2); }) == "10.00");
  CHECK(fmt([&](TextBuffer& t) { t.fixed(1001, 1000, 3); }) == "1.001");       // leading zeros kept
  CHECK(fmt([&](TextBuffer& t) { t.fixed(2, 3, 3); }) == "0.667");
  CHECK(fmt([&](TextBuffer& t) { t.fixed(5, 1, 0); }) == "5");
  CHECK(fmt([&](TextBuffer& t) { t.fixed(5, 2, 0); }) == "3");                 // 2.5 rounds up
  CHECK(fmt([&](TextBuffer& t) { t.fixed(UINT64_MAX, 1, 2); }) == "18446744073709551615.00");
  CHECK(fmt([&](TextBuffer& t) { t.fixed(UINT64_MAX, MiB, 1); }) == "17592186044416.0");
}

TEST_CASE("TextBuffer: strings and chaining", "[log]") {
  CHECK(fmt([](TextBuffer& t) { t.str("a").ch('b').chars("cdef", 2).u64(1).str(""); }) == "abcd1");
  CHECK(fmt([](TextBuffer&) {}) == "");
}

TEST_CASE("TextBuffer: truncation and needed()", "[log]") {
  SECTION("a short buffer keeps a NUL-terminated prefix and counts the full length") {
    char buf[8];
    memset(buf, 'X', sizeof buf);
    TextBuffer t(buf, sizeof buf);
    t.str("hello world");
    CHECK(t.needed() == 11);
    CHECK(t.held() == 7);
    CHECK(std::string(buf) == "hello w");
    t.u64(12345).hex(0xabc);
    CHECK(t.needed() == 11 + 5 + 5);
    CHECK(std::string(buf) == "hello w");
    CHECK(buf[7] == '\0');
  }
  SECTION("exact fit: len == capacity - 1") {
    char buf[6];
    TextBuffer t(buf, sizeof buf);
    t.str("12345");
    CHECK(t.needed() == 5);
    CHECK(t.held() == 5);
    CHECK(std::string(buf) == "12345");
    t.ch('6');
    CHECK(t.needed() == 6);
    CHECK(t.held() == 5);
    CHECK(std::string(buf) == "12345");
  }
  SECTION("capacity 1 holds only the terminator") {
    char buf[2] = {'X', 'Y'};
    TextBuffer t(buf, 1);
    t.str("abc").u64(99);
    CHECK(t.needed() == 5);
    CHECK(t.held() == 0);
    CHECK(buf[0] == '\0');
    CHECK(buf[1] == 'Y');
  }
  SECTION("capacity 0 writes nothing and still counts") {
    TextBuffer t(nullptr, 0);
    t.str("abc").u64w(1, 10).fixed(1, 2, 3);
    CHECK(t.needed() == 3 + 10 + 5);
    CHECK(t.held() == 0);
  }
  SECTION("a fresh buffer is terminated at once") {
    char buf[4] = {'X', 'X', 'X', 'X'};
    TextBuffer t(buf, sizeof buf);
    CHECK(buf[0] == '\0');
    CHECK(t.needed() == 0);
  }
}

TEST_CASE("log_warning writes one line to stderr", "[log]") {
  ChildResult r = run_in_child([] { log_warning("something odd"); });
  CHECK(WIFEXITED(r.status));
  CHECK(r.err == "ammalloc: warning: something odd\n");
}

TEST_CASE("fatal paths print one line and abort", "[log]") {
  SECTION("fatal") {
    ChildResult r = run_in_child([] { fatal("boom"); });
    CHECK(WIFSIGNALED(r.status));
    CHECK(WTERMSIG(r.status) == SIGABRT);
    CHECK(r.err == "ammalloc: boom\n");
  }
  SECTION("invalid pointer") {
    ChildResult r = run_in_child([] { fatal_invalid_pointer("free", reinterpret_cast<void*>(0x1234abcd)); });
    CHECK(WIFSIGNALED(r.status));
    CHECK(WTERMSIG(r.status) == SIGABRT);
    CHECK(r.err == "ammalloc: free(): invalid pointer 0x1234abcd\n");
  }
  SECTION("double free") {
    ChildResult r = run_in_child([] { fatal_double_free("realloc", reinterpret_cast<void*>(0x7f0000001000)); });
    CHECK(WIFSIGNALED(r.status));
    CHECK(WTERMSIG(r.status) == SIGABRT);
    CHECK(r.err == "ammalloc: realloc(): double free of 0x7f0000001000\n");
  }
  SECTION("AM_CHECK") {
    ChildResult r = run_in_child([] {
      volatile int x = 1;
      AM_CHECK(x == 2);
    });
    CHECK(WIFSIGNALED(r.status));
    CHECK(WTERMSIG(r.status) == SIGABRT);
    CHECK(r.err.rfind("ammalloc: check failed: x == 2 at ", 0) == 0);
    CHECK(r.err.back() == '\n');
  }
}

// Test support: reading ammalloc's numeric properties and options, and
// changing an option for one test case.
#pragma once

#include <catch2/catch.hpp>

#include <cstddef>

#include "ammalloc/ammalloc.h"

inline size_t prop(const char* name) {
  size_t v = 0;
  REQUIRE(am_get_numeric_property(name, &v) == 1);
  return v;
}

inline long long opt(const char* name) {
  long long v = 0;
  REQUIRE(am_option_get(name, &v) == 1);
  return v;
}

inline void set_opt(const char* name, long long v) { REQUIRE(am_option_set(name, v) == 0); }

// Restores an option however the test case ends; the two-argument form also
// sets it for the case.
struct OptionGuard {
  const char* name;
  long long saved;
  explicit OptionGuard(const char* n) : name(n), saved(opt(n)) {}
  OptionGuard(const char* n, long long v) : name(n), saved(opt(n)) { set_opt(n, v); }
  ~OptionGuard() { am_option_set(name, saved); }
  OptionGuard(const OptionGuard&) = delete;
  OptionGuard& operator=(const OptionGuard&) = delete;
};

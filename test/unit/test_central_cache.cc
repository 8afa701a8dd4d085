// CentralCache (lib/heap/central_cache.h): batch removal and insertion, the
// per-class accounting, and spans going back to the page heap when their last
// object comes home.
//
// Calls central_remove_range/insert_range directly (no thread cache involved).
// The expected counts are computed from the state found at the start of each
// test, so nothing assumes the class was unused before.
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>

#include "child_process.h"
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "heap/central_cache.h"
#include "heap/page_heap.h"
#include "core/pagemap.h"
#include "core/size_class.h"
#include "core/span.h"

using namespace am;

namespace {

std::vector<void*> chain_to_vector(void* head, int n) {
  std::vector<void*> v;
  void* p = head;
  for (int i = 0; i < n; ++i) {
    REQUIRE(p != nullptr);
    v.push_back(p);
    p = *static_cast<void**>(p);
  }
  // The last object's next word is null: the chain has exactly n objects.
  CHECK(p == nullptr);
  return v;
}

void* vector_to_chain(const std::vector<void*>& v, size_t from, size_t n) {
  for (size_t i = 0; i < n; ++i)
    *static_cast<void**>(v[from + i]) = i + 1 < n ? v[from + i + 1] : nullptr;
  return n ? v[from] : nullptr;
}

std::vector<void*> take(uint32_t cl, int n) {
  void* head = nullptr;
  int got = central_remove_range(cl, &head, n);
  REQUIRE(got == n);
  return chain_to_vector(head, n);
}

void give_back(uint32_t cl, const std::vector<void*>& v) {
  if (v.empty()) return;
  central_insert_range(cl, vector_to_chain(v, 0, v.size()), static_cast<int>(v.size()));
}

// Expected class state after removing k objects from state st (the central
// cache uses its partially free spans first, then fresh spans).
CentralClassStats after_remove(CentralClassStats st, uint32_t cl, size_t k) {
  const size_t objs = class_info(cl).objects;
  if (k > st.free_objects) {
    size_t fresh = (k - st.free_objects + objs - 1) / objs;
    st.spans += fresh;
    st.free_objects += fresh * objs;
  }
  st.free_objects -= k;
  return st;
}


}  // namespace

TEST_CASE("central cache: remove_range hands out distinct, in-span, class-spaced objects", "[central]") {
  for (size_t request : {size_t{16}, size_t{48}, size_t{1000}, size_t{4096}, size_t{40000}, size_t{262144}}) {
    const uint32_t cl = size_to_class(request);
    const SizeClassInfo& info = class_info(cl);
    INFO("class " << cl << " size " << info.size << " objects/span " << info.objects);
    // More than two spans' worth, so the chain crosses spans.
    const int n = static_cast<int>(2 * info.objects + 3);
    std::vector<void*> objs = take(cl, n);
    std::set<uintptr_t> seen;
    std::set<Span*> spans;
    for (void* p : objs) {
      uintptr_t a = reinterpret_cast<uintptr_t>(p);
      Span* s = pagemap_span(a);
      REQUIRE(s != nullptr);
      REQUIRE(s->state == Span::kSmall);
      REQUIRE(s->size_class == cl);
      REQUIRE(a >= s->start());
      REQUIRE((a - s->start()) % info.size == 0);
      // The whole object lies inside the span's used part (not in the tail).
      REQUIRE(a + info.size <= s->start() + static_cast<uintptr_t>(info.objects) * info.size);
      REQUIRE(a % 16 == 0);
      REQUIRE(seen.insert(a).second);
      spans.insert(s);
    }
    CHECK(spans.size() >= 3);
    // Objects never overlap.
    uintptr_t prev = 0;
    for (uintptr_t a : seen) {
      if (prev) REQUIRE(a - prev >= info.size);
      prev = a;
    }
    // The memory is really usable: write every byte of every object.
    for (void* p : objs) memset(p, 0x5A, info.size);
    give_back(cl, objs);
  }
}

TEST_CASE("central cache: accounting of free objects and spans", "[central]") {
  const uint32_t cl = size_to_class(700);
  const SizeClassInfo& info = class_info(cl);
  const CentralClassStats st0 = central_class_stats(cl);
  const size_t acq0 = st0.lock_acquisitions;
  INFO("class " << cl << " size " << info.size << " objects/span " << info.objects << " start: spans "
                << st0.spans << " free " << st0.free_objects);

  // 1) A few objects.
  std::vector<void*> a = take(cl, 5);
  CentralClassStats want = after_remove(st0, cl, 5);
  CentralClassStats st1 = central_class_stats(cl);
  CHECK(st1.spans == want.spans);
  CHECK(st1.free_objects == want.free_objects);
  CHECK(st1.lock_acquisitions >= acq0 + 1);

  // 2) Enough for two more spans.
  const size_t k = 2 * info.objects;
  std::vector<void*> b = take(cl, static_cast<int>(k));
  want = after_remove(st1, cl, k);
  CentralClassStats st2 = central_class_stats(cl);
  CHECK(st2.spans == want.spans);
  CHECK(st2.free_objects == want.free_objects);

  // 3) Returning objects raises free_objects one for one (no span empties yet:
  // the first batch keeps its span busy).
  give_back(cl, std::vector<void*>(b.begin(), b.begin() + 3));
  CentralClassStats st3 = central_class_stats(cl);
  CHECK(st3.free_objects == st2.free_objects + 3);
  CHECK(st3.spans == st2.spans);

  // 4) Everything back: the class is exactly as it was.
  give_back(cl, std::vector<void*>(b.begin() + 3, b.end()));
  give_back(cl, a);
  CentralClassStats st4 = central_class_stats(cl);
  CHECK(st4.spans == st0.spans);
  CHECK(st4.free_objects == st0.free_objects);
}

TEST_CASE("central cache: a span whose objects all come back returns to the page heap", "[central]") {
  const uint32_t cl = size_to_class(3000);
  const SizeClassInfo& info = class_info(cl);
  const CentralClassStats st0 = central_class_stats(cl);
  const PageHeapStats ph0 = page_heap_stats();
  const size_t span_bytes = info.pages * kPageSize;

  // Drain what the class already has free, plus exactly one fresh span.
  const size_t k = st0.free_objects + info.objects;
  std::vector<void*> objs = take(cl, static_cast<int>(k));
  CentralClassStats st1 = central_class_stats(cl);
  CHECK(st1.spans == st0.spans + 1);
  CHECK(st1.free_objects == 0);
  CHECK(page_heap_stats().small_span_bytes == ph0.small_span_bytes + span_bytes);

  // Identify the fresh span: the one holding the last object taken.
  Span* fresh = pagemap_span(reinterpret_cast<uintptr_t>(objs.back()));
  REQUIRE(fresh != nullptr);
  std::vector<void*> mine, others;
  for (void* p : objs) (pagemap_span(reinterpret_cast<uintptr_t>(p)) == fresh ? mine : others).push_back(p);
  REQUIRE(mine.size() == info.objects);
  CHECK(fresh->in_use == info.objects);

  // All but one back: the span stays, with objects - 1 free.
  give_back(cl, std::vector<void*>(mine.begin(), mine.end() - 1));
  CentralClassStats st2 = central_class_stats(cl);
  CHECK(st2.spans == st0.spans + 1);
  CHECK(st2.free_objects == info.objects - 1);
  CHECK(fresh->in_use == 1);

  // The last one: the span goes back to the page heap at once.
  const size_t free_before = page_heap_stats().free_bytes;
  give_back(cl, std::vector<void*>(mine.end() - 1, mine.end()));
  CentralClassStats st3 = central_class_stats(cl);
  CHECK(st3.spans == st0.spans);
  CHECK(st3.free_objects == 0);
  PageHeapStats ph3 = page_heap_stats();
  CHECK(ph3.small_span_bytes == ph0.small_span_bytes);
  CHECK(ph3.free_bytes == free_before + span_bytes);

  give_back(cl, others);
  CentralClassStats st4 = central_class_stats(cl);
  CHECK(st4.spans == st0.spans);
  CHECK(st4.free_objects == st0.free_objects);
}

TEST_CASE("central cache: free bytes include free objects and span tails", "[central]") {
  const uint32_t cl = size_to_class(5000);
  const SizeClassInfo& info = class_info(cl);
  const size_t tail = info.pages * kPageSize - static_cast<size_t>(info.objects) * info.size;
  const size_t before = central_free_bytes();
  const CentralClassStats st0 = central_class_stats(cl);
  std::vector<void*> objs = take(cl, 3);
  CentralClassStats st1 = central_class_stats(cl);
  // Every byte of a span owned by the central cache is either an object handed
  // out, a free object, or tail waste.
  const long long delta_free = static_cast<long long>(st1.free_objects) - static_cast<long long>(st0.free_objects);
  const long long delta_spans = static_cast<long long>(st1.spans) - static_cast<long long>(st0.spans);
  CHECK(static_cast<long long>(central_free_bytes()) - static_cast<long long>(before) ==
        delta_free * static_cast<long long>(info.size) + delta_spans * static_cast<long long>(tail));
  give_back(cl, objs);
  CHECK(central_free_bytes() == before);
}

TEST_CASE("central cache: objects are reused after they come back", "[central]") {
  const uint32_t cl = size_to_class(256);
  // Keep one object so the span survives; return the rest and take them again.
  std::vector<void*> first = take(cl, 20);
  std::vector<void*> rest(first.begin() + 1, first.end());
  give_back(cl, rest);
  const CentralClassStats st = central_class_stats(cl);
  std::vector<void*> again = take(cl, 19);
  // No fresh span was needed for them.
  CHECK(central_class_stats(cl).spans == st.spans);
  give_back(cl, again);
  give_back(cl, {first[0]});
}

TEST_CASE("central cache: an object of another class is rejected", "[central]") {
  const uint32_t cl_a = size_to_class(64), cl_b = size_to_class(128);
  std::vector<void*> a = take(cl_a, 1);
  void* p = a[0];
  ChildResult r = run_in_child([&] {
    *static_cast<void**>(p) = nullptr;
    central_insert_range(cl_b, p, 1);
  });
  CHECK(WIFSIGNALED(r.status));
  if (WIFSIGNALED(r.status)) CHECK(WTERMSIG(r.status) == SIGABRT);
  CHECK(r.err.find("ammalloc: free(): invalid pointer 0x") == 0);
  give_back(cl_a, a);
}

TEST_CASE("central cache: concurrent remove and insert keep the accounting", "[central][threaded]") {
  // Four threads move batches of two classes in and out at once, also handing
  // objects to each other; afterwards every class is back where it started.
  const uint32_t classes[2] = {size_to_class(96), size_to_class(9000)};
  CentralClassStats st0[2];
  for (int c = 0; c < 2; ++c) st0[c] = central_class_stats(classes[c]);
  std::mutex mu;
  std::vector<std::pair<int, std::vector<void*>>> handoff;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 300; ++round) {
        const int c = (round + t) % 2;
        const uint32_t cl = classes[c];
        const int n = 1 + (round * 7 + t) % 40;
        void* head = nullptr;
        if (central_remove_range(cl, &head, n) != n) {
          bad.fetch_add(1);
          return;
        }
        std::vector<void*> v;
        for (void* p = head; p; p = *static_cast<void**>(p)) v.push_back(p);
        if (static_cast<int>(v.size()) != n) bad.fetch_add(1);
        for (void* p : v) {
          Span* s = pagemap_span(reinterpret_cast<uintptr_t>(p));
          if (s == nullptr || s->size_class != cl) bad.fetch_add(1);
        }
        if (round % 3 == 0) {
          std::lock_guard<std::mutex> g(mu);
          handoff.push_back({c, std::move(v)});
          if (handoff.size() > 4) {
            v = std::move(handoff.front().second);
            int hc = handoff.front().first;
            handoff.erase(handoff.begin());
            central_insert_range(classes[hc], vector_to_chain(v, 0, v.size()), static_cast<int>(v.size()));
          }
          continue;
        }
        central_insert_range(cl, vector_to_chain(v, 0, v.size()), static_cast<int>(v.size()));
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (auto& [c, v] : handoff)
    central_insert_range(classes[c], vector_to_chain(v, 0, v.size()), static_cast<int>(v.size()));
  CHECK(bad == 0);
  for (int c = 0; c < 2; ++c) {
    INFO("class " << classes[c]);
    CentralClassStats st = central_class_stats(classes[c]);
    CHECK(st.spans == st0[c].spans);
    CHECK(st.free_objects == st0[c].free_objects);
  }
}

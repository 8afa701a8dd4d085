// Tests of KVCachePool (lib/include/ammalloc/kv_cache_pool.h): block geometry
// and alignment, copy-in/copy-out, zero-copy handles, LRU order, the budget,
// eviction callbacks (exactly once), pins, the process memory limit (a large
// am_malloc elsewhere makes the pool evict, and fails cleanly once nothing is
// evictable), and many threads at once (also under TSan).
//
// Geometry used by most cases: 16 tokens x 2 layers x 2 (K,V) x 2 heads x 32
// dims x 4 bytes = 16 KiB blocks, 128 per 2 MiB slab; a sequence of 2048
// tokens fills exactly one slab.
#include <errno.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "ammalloc/ammalloc.h"
#include "ammalloc/kv_cache_pool.h"
#include "ammalloc/memory_monitor.h"

using namespace ammalloc;
using Id = KVCachePool::RequestId;

namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr std::size_t kSlab = 2 * kMiB;
constexpr std::size_t kTokensPerSlab = 2048;

KVCacheConfig small_config(std::size_t slabs) {
  KVCacheConfig c;
  c.tokens_per_block = 16;
  c.num_layers = 2;
  c.num_heads = 2;
  c.head_dim = 32;
  c.dtype_size = 4;
  c.budget_bytes = slabs * kSlab;
  return c;
}

// Records evictions; checks that no id is reported twice.
struct Evictions {
  std::mutex mu;
  std::vector<Id> order;
  std::map<Id, int> count;
  std::map<Id, EvictReason> reason;
  KVCachePool::EvictionCallback callback() {
    return [this](Id id, EvictReason r) {
      std::lock_guard<std::mutex> g(mu);
      order.push_back(id);
      ++count[id];
      reason[id] = r;
    };
  }
  bool each_once() {
    std::lock_guard<std::mutex> g(mu);
    for (auto& [id, n] : count)
      if (n != 1) return false;
    return true;
  }
};

// n tokens whose every element encodes (tag, token, element).
std::vector<float> pattern(const KVCachePool& pool, std::size_t n, float tag) {
  std::vector<float> v(n * pool.token_elements());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = tag + static_cast<float>(i % 4096) * 1e-4f;
  return v;
}

bool aligned(const void* p, std::size_t a) { return reinterpret_cast<std::uintptr_t>(p) % a == 0; }

// A sequence of `tokens` tokens through the zero-copy path.
void fill(KVCachePool& pool, Id id, std::size_t tokens) {
  auto h = pool.acquire(id);
  REQUIRE(h.append(tokens));
}

struct NoLimit {
  ~NoLimit() { memory_monitor().set_limit(0); }
};

}  // namespace

TEST_CASE("block geometry, alignment and configuration errors", "[kv]") {
  KVCachePool pool(small_config(2));
  CHECK(pool.block_bytes() == 16 * 2 * 2 * 2 * 32 * 4);
  CHECK(pool.token_elements() == 2 * 2 * 32);
  CHECK(pool.config().slab_bytes == kSlab);
  auto h = pool.acquire(1);
  REQUIRE(h.append(40));  // 3 blocks
  CHECK(h.num_blocks() == 3);
  CHECK(h.num_tokens() == 40);
  for (std::size_t i = 0; i < h.num_blocks(); ++i) CHECK(aligned(h.block(i), 64));
  CHECK(aligned(h.block(0), kSlab));  // the first block of a slab is the slab: huge-page aligned
  // K of token 17, layer 1: block 1, slot 1: ((1*2+0)*16 + 1) * heads*dim*4.
  CHECK(h.key(17, 1) == h.block(1) + (2 * 16 + 1) * 256);
  CHECK(h.value(17, 1) == h.block(1) + (3 * 16 + 1) * 256);
  CHECK_THROWS_AS(h.key(40, 0), std::out_of_range);
  CHECK_THROWS_AS(h.block(3), std::out_of_range);
  auto ptrs = h.blocks();
  REQUIRE(ptrs.size() == 3);
  CHECK(ptrs[2] == h.block(2));

  KVCacheConfig big = small_config(1);
  big.num_layers = 64;  // 1 MiB blocks... x 4 = 4 MiB blocks: a slab grows to one block
  big.num_heads = 8;
  big.budget_bytes = 8 * kMiB;
  KVCachePool p2(big);
  CHECK(p2.config().slab_bytes % kSlab == 0);
  CHECK(p2.config().slab_bytes >= p2.block_bytes());

  KVCacheConfig bad = small_config(1);
  bad.budget_bytes = kMiB;
  CHECK_THROWS_AS(KVCachePool(bad), std::invalid_argument);
  bad = small_config(1);
  bad.head_dim = 0;
  CHECK_THROWS_AS(KVCachePool(bad), std::invalid_argument);
}

TEST_CASE("insert/get copy in and out, append grows the block table", "[kv]") {
  KVCachePool pool(small_config(4));
  const auto k = pattern(pool, 37, 1.0f), v = pattern(pool, 37, 2.0f);
  REQUIRE(pool.insert(7, k, v));
  std::vector<float> k2, v2;
  REQUIRE(pool.get(7, k2, v2));
  CHECK(k2 == k);
  CHECK(v2 == v);
  CHECK_FALSE(pool.get(8, k2, v2));
  KVCacheStats st = pool.stats();
  CHECK(st.hits == 1);
  CHECK(st.misses == 1);
  CHECK(st.sequences == 1);
  CHECK(st.tokens == 37);
  CHECK(st.blocks_in_use == 3);
  CHECK(st.used_bytes == 3 * pool.block_bytes());
  CHECK(st.reserved_bytes == kSlab);
  CHECK(st.blocks_free == 128 - 3);
  CHECK(st.process_rss > 0);
  CHECK(st.rss_share == Approx(static_cast<double>(kSlab) / static_cast<double>(st.process_rss)));

  // The copy-in layout is token-major [token][layer][head][dim]; the pool's is
  // per block [layer][K|V][slot][head][dim]: token 20, layer 1, element 5.
  {
    auto h = pool.find(7);
    REQUIRE(h);
    float got;
    std::memcpy(&got, h.key(20, 1) + 5 * sizeof(float), sizeof got);
    CHECK(got == k[(20 * 2 + 1) * 64 + 5]);
    std::memcpy(&got, h.value(20, 1) + 5 * sizeof(float), sizeof got);
    CHECK(got == v[(20 * 2 + 1) * 64 + 5]);
  }

  // Re-insert shorter: blocks go back.
  const auto k3 = pattern(pool, 5, 3.0f), v3 = pattern(pool, 5, 4.0f);
  REQUIRE(pool.insert(7, k3, v3));
  CHECK(pool.stats().blocks_in_use == 1);
  REQUIRE(pool.get(7, k2, v2));
  CHECK(k2 == k3);

  auto h = pool.acquire(9);
  CHECK(h.num_blocks() == 0);
  REQUIRE(h.append(1));
  CHECK(h.num_blocks() == 1);
  REQUIRE(h.append(15));
  CHECK(h.num_blocks() == 1);
  REQUIRE(h.append(1));
  CHECK(h.num_blocks() == 2);
  CHECK(h.num_tokens() == 17);

  CHECK_THROWS_AS(pool.insert(1, std::vector<float>(10), std::vector<float>(10)), std::invalid_argument);
  KVCacheConfig half = small_config(1);
  half.dtype_size = 2;
  KVCachePool fp16(half);
  CHECK_THROWS_AS(fp16.insert(1, k3, v3), std::invalid_argument);
}

TEST_CASE("LRU order follows interleaved uses; eviction takes the least recent", "[kv]") {
  Evictions ev;
  KVCachePool pool(small_config(4), ev.callback());
  for (Id id = 1; id <= 4; ++id) fill(pool, id, kTokensPerSlab / 2);  // two per slab
  CHECK(pool.lru_order() == std::vector<Id>{1, 2, 3, 4});
  REQUIRE(pool.find(3));
  REQUIRE(pool.find(1));
  {
    auto h = pool.find(2);
    REQUIRE(h.append(1));
  }
  CHECK(pool.lru_order() == std::vector<Id>{4, 3, 1, 2});
  // Fill the rest of the budget (2 free slabs, a bit over 1 used by sequence
  // 2's extra token), then one more slab's worth: victims go in LRU order.
  fill(pool, 10, kTokensPerSlab);
  CHECK(ev.order.empty());
  fill(pool, 11, kTokensPerSlab + kTokensPerSlab / 2);  // 127 free blocks + 65: two victims
  CHECK(ev.order == std::vector<Id>{4, 3});
  CHECK(pool.lru_order() == std::vector<Id>{1, 2, 10, 11});
  CHECK_FALSE(pool.contains(4));
  CHECK(ev.reason[4] == EvictReason::kBudget);
  CHECK(pool.stats().evictions == 2);
  CHECK(ev.each_once());
}

TEST_CASE("the budget is never exceeded; callbacks exactly once per evicted request", "[kv]") {
  Evictions ev;
  const std::size_t slabs = 3;
  KVCachePool pool(small_config(slabs), ev.callback());
  std::mt19937 rng(42);
  std::set<Id> live;
  Id next = 1;
  for (int i = 0; i < 2000; ++i) {
    const int op = static_cast<int>(rng() % 10);
    if (op < 6 || live.empty()) {
      const Id id = next++;
      auto h = pool.acquire(id);
      REQUIRE(h.append(1 + rng() % 700));
      live.insert(id);
    } else if (op < 9) {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      auto h = pool.find(*it);
      if (h) h.append(1 + rng() % 64);  // may fail once one sequence would need the whole budget
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      pool.evict(*it);
      live.erase(it);
    }
    const KVCacheStats st = pool.stats();
    REQUIRE(st.reserved_bytes <= slabs * kSlab);
    REQUIRE(st.blocks_in_use * pool.block_bytes() <= st.reserved_bytes);
  }
  const KVCacheStats st = pool.stats();
  CHECK(st.peak_reserved_bytes == slabs * kSlab);  // it did run full
  CHECK(st.evictions > 100);
  CHECK(st.evictions == ev.order.size());
  CHECK(ev.each_once());
  for (Id id : ev.order) CHECK_FALSE(pool.contains(id));
}

TEST_CASE("pinned sequences survive; evict() of a pinned one refuses", "[kv]") {
  Evictions ev;
  KVCachePool pool(small_config(2), ev.callback());
  fill(pool, 1, kTokensPerSlab);
  auto pin1 = pool.find(1);  // the oldest, pinned
  fill(pool, 2, kTokensPerSlab);
  {
    auto pin2 = pool.find(2);
    auto h = pool.acquire(3);
    CHECK_FALSE(h.append(1));  // everything else is pinned: no room, nothing changes
    CHECK(h.num_blocks() == 0);
    CHECK(pool.contains(1));
    CHECK(pool.contains(2));
    CHECK(ev.order.empty());
  }
  CHECK_FALSE(pool.evict(1));
  CHECK(pool.contains(1));
  {
    auto h = pool.acquire(3);
    CHECK(h.append(16));  // now 2 is unpinned: it goes, 1 stays
  }
  CHECK(ev.order == std::vector<Id>{2});
  CHECK(pool.contains(1));
  CHECK(pool.stats().pinned_sequences == 1);
  pin1.release();
  CHECK(pool.evict(1));  // the caller's own decision: no callback
  CHECK(ev.order == std::vector<Id>{2});
  CHECK_FALSE(pool.evict(1));
  CHECK(pool.stats().pinned_sequences == 0);
}

TEST_CASE("a failed insert leaves nothing behind", "[kv]") {
  KVCachePool pool(small_config(1));
  auto pin = pool.acquire(1);
  REQUIRE(pin.append(kTokensPerSlab));
  const auto k = pattern(pool, 16, 1.0f), v = pattern(pool, 16, 2.0f);
  CHECK_FALSE(pool.insert(2, k, v));
  CHECK_FALSE(pool.contains(2));
  CHECK(pool.stats().sequences == 1);
}

TEST_CASE("at the process memory limit, another allocation makes the pool evict", "[kv][limit]") {
  NoLimit guard;
  am_reset();
  Evictions ev;
  KVCacheConfig cfg = small_config(16);
  cfg.spare_slabs = 0;
  KVCachePool pool(cfg, ev.callback());
  for (Id id = 1; id <= 8; ++id) fill(pool, id, kTokensPerSlab);  // one slab each
  REQUIRE(pool.stats().slabs == 8);
  MemoryMonitor& m = memory_monitor();
  m.set_limit(m.used() + 3 * kMiB);

  // 8 MiB elsewhere: 5 MiB must be freed, i.e. three slabs: 1, 2, 3 (LRU).
  void* big = am_malloc(8 * kMiB);
  REQUIRE(big != nullptr);
  std::memset(big, 7, 8 * kMiB);
  CHECK(ev.order == std::vector<Id>{1, 2, 3});
  for (Id id : ev.order) CHECK(ev.reason[id] == EvictReason::kMemoryLimit);
  CHECK(pool.stats().limit_evictions == 3);
  CHECK(pool.stats().slabs == 5);
  CHECK(m.used() <= m.limit());

  // Everything pinned: a further request fails cleanly and nothing is lost.
  std::vector<KVCachePool::Handle> pins;
  for (Id id = 4; id <= 8; ++id) pins.push_back(pool.find(id));
  errno = 0;
  void* more = am_malloc(8 * kMiB);
  CHECK(more == nullptr);
  CHECK(errno == ENOMEM);
  CHECK(ev.order.size() == 3);
  CHECK(pool.stats().sequences == 5);

  // Unpinned again: the same request succeeds by evicting.
  pins.clear();
  more = am_malloc(8 * kMiB);
  CHECK(more != nullptr);
  CHECK(ev.order.size() >= 6);
  CHECK(ev.each_once());
  am_free(more);
  am_free(big);
}

TEST_CASE("when the heap refuses a slab, the pool evicts its own LRU", "[kv][limit]") {
  NoLimit guard;
  am_reset();
  Evictions ev;
  KVCacheConfig cfg = small_config(16);
  cfg.spare_slabs = 0;
  KVCachePool pool(cfg, ev.callback());
  for (Id id = 1; id <= 3; ++id) fill(pool, id, kTokensPerSlab);
  MemoryMonitor& m = memory_monitor();
  // A 2 MiB-aligned slab is checked against the limit with its alignment
  // slack (the page heap takes 2 MiB + 2 MiB - 1 page, then trims): 2 MiB of
  // headroom refuses a fourth slab, and one freed slab makes room for it.
  m.set_limit(m.used() + 2 * kMiB);
  fill(pool, 4, kTokensPerSlab);
  CHECK(ev.order == std::vector<Id>{1});
  CHECK(ev.reason[1] == EvictReason::kMemoryLimit);
  CHECK(pool.stats().slabs == 3);
  CHECK(pool.contains(4));
}

TEST_CASE("many threads insert, get, append and evict; the limit is hit meanwhile", "[kv][threaded]") {
  NoLimit guard;
  Evictions ev;
  KVCachePool pool(small_config(3), ev.callback());
  // Catch2 v2 assertions are not thread-safe: threads count, the main thread checks.
  std::atomic<long> verified{0}, corrupt{0}, over_budget{0}, bad_block{0};
  std::atomic<bool> stop{false};
  // Shared ids (0..47) see inserts, gets and evictions from every thread;
  // each thread also grows private sequences with append and writes their
  // new tokens itself (the pool does not synchronise payload bytes).
  auto worker = [&](unsigned t) {
    std::mt19937 rng(100 + t);
    std::vector<float> k, v;
    for (int i = 0; i < 1500; ++i) {
      const Id id = rng() % 48;
      switch (rng() % 5) {
        case 0:
        case 1: {
          // Every element of a sequence carries its id, so a reader can tell
          // a torn or foreign copy.
          const std::size_t n = 1 + rng() % 300;
          std::vector<float> kk(n * pool.token_elements(), static_cast<float>(id));
          pool.insert(id, kk, kk);
          break;
        }
        case 2:
          if (pool.get(id, k, v)) {
            bool ok = k.size() == v.size();
            for (float x : k) ok = ok && x == static_cast<float>(id);
            for (float x : v) ok = ok && x == static_cast<float>(id);
            (ok ? verified : corrupt).fetch_add(1);
          }
          break;
        case 3: {
          const Id mine = 1000 * (t + 1) + rng() % 4;
          auto h = pool.acquire(mine);
          const std::size_t before = h.num_tokens();
          if (h.append(1 + rng() % 40)) {
            for (std::size_t tok = before; tok < h.num_tokens(); ++tok)
              for (std::size_t l = 0; l < 2; ++l) {
                if (reinterpret_cast<std::uintptr_t>(h.key(tok, l)) % 64 != 0) bad_block.fetch_add(1);
                const std::vector<float> row(64, static_cast<float>(mine));
                std::memcpy(h.key(tok, l), row.data(), 256);
                std::memcpy(h.value(tok, l), row.data(), 256);
              }
          }
          h.release();
          if (pool.get(mine, k, v)) {
            bool ok = true;
            for (float x : k) ok = ok && x == static_cast<float>(mine);
            (ok ? verified : corrupt).fetch_add(1);
          }
          break;
        }
        default:
          pool.evict(id);
      }
      if (pool.stats().reserved_bytes > 3 * kSlab) over_budget.fetch_add(1);
    }
  };
  // Meanwhile another thread keeps allocating past a process limit set
  // above what the pool may reach, so the pool is asked to shrink.
  MemoryMonitor& m = memory_monitor();
  m.set_limit(m.used() + 8 * kMiB);
  std::thread hitter([&] {
    while (!stop.load()) {
      void* p = am_malloc(5 * kMiB);
      if (p != nullptr) am_free(p);
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> ts;
  for (unsigned t = 0; t < 4; ++t) ts.emplace_back(worker, t);
  for (auto& t : ts) t.join();
  stop = true;
  hitter.join();
  CHECK(corrupt.load() == 0);
  CHECK(over_budget.load() == 0);
  CHECK(bad_block.load() == 0);
  CHECK(verified.load() > 0);
  const KVCacheStats st = pool.stats();
  CHECK(st.evictions == ev.order.size());
  CHECK(st.pinned_sequences == 0);
  CHECK(st.blocks_in_use * pool.block_bytes() <= st.reserved_bytes);
}

TEST_CASE("sequences growing side by side keep to their own slabs", "[kv]") {
  // Evicting one sequence must give whole slabs back even while the other is
  // pinned: that is what lets the pool return memory under a limit.
  KVCacheConfig cfg = small_config(8);
  cfg.spare_slabs = 0;
  KVCachePool pool(cfg);
  auto a = pool.acquire(1);
  auto b = pool.acquire(2);
  for (int i = 0; i < 256; ++i) {  // 16 tokens = one block each, alternating: 256 blocks = 2 slabs each
    REQUIRE(a.append(16));
    REQUIRE(b.append(16));
  }
  CHECK(pool.stats().slabs == 4);
  a.release();
  CHECK(pool.shrink(1) == 2 * kSlab);
  CHECK_FALSE(pool.contains(1));
  CHECK(pool.stats().slabs == 2);
  CHECK(b.num_blocks() == 256);
}

// kvchurn — a KV cache that lives on the heap: blocks of 256 KiB..4 MiB
// (log-uniform, multiples of 64 B, 64-byte aligned: aligned_alloc and
// posix_memalign taking turns), about 9 GiB of allocation volume pushed
// through one LRU cache with a 2 GiB byte budget (both times scale). Each
// block is written once per 4 KiB page when it is allocated; the cache is
// shared by all threads (one mutex), every insert evicts least-recently-used
// blocks until the budget holds again, and between inserts a thread looks up
// two random cached blocks (a hit moves the block to the front and reads it).
// Evicted blocks are freed outside the lock by whichever thread evicted them,
// usually not the one that allocated them.
//
// Unlike largechurn (the same few sizes allocated and all freed again every
// step) the blocks here have mixed sizes and long, uneven lifetimes, and the
// cache stays near its budget for the whole run: what it measures is whether
// freed large blocks are reused for the next ones of another size (page
// faults, madvise/munmap churn) and how much resident memory the allocator
// keeps above the 2 GiB the program holds.
//
// Deterministic: each thread's block sizes come from its fixed-seed PRNG and a
// thread stops when it has allocated its share of the volume, so the number
// of blocks printed does not depend on the interleaving (which blocks are hit
// or evicted does). A few bytes of each block (first byte of 16 spread pages
// and the last byte) are checked before it is freed, and alignment is checked
// after every allocation.
//   usage: kvchurn [scale] [threads]
#include <mutex>
#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

constexpr size_t kMiB = size_t(1) << 20;
constexpr size_t kMinBlock = 256 << 10, kMaxBlock = 4 * kMiB;
constexpr int kLookups = 2;  // random lookups per insert

struct Block {
  void* p = nullptr;
  size_t n = 0;
  unsigned char tag = 0;
  int prev = -1, next = -1;  // LRU list: head = most recently used
  int live_pos = -1;         // index in Cache::live, -1 if the slot is free
};

void check_block(const Block& b, const char* what) {
  auto* c = static_cast<const unsigned char*>(b.p);
  const size_t pages = (b.n + 4095) / 4096;
  for (size_t k = 0; k < 16; k++) {
    size_t pg = k * (pages - 1) / 15;
    if (c[pg * 4096] != b.tag) bench::die(what, b.p);
  }
  if (c[b.n - 1] != b.tag) bench::die(what, b.p);
}

struct Cache {
  std::mutex mu;
  size_t budget, used = 0;
  std::vector<Block> slot;
  std::vector<int> free_slots, live;  // live: indices of used slots, for random lookups
  int head = -1, tail = -1;
  uint64_t hits = 0, evictions = 0;

  Cache(size_t budget_bytes, int threads) : budget(budget_bytes) {
    size_t cap = budget / kMinBlock + size_t(threads) + 16;
    slot.resize(cap);
    free_slots.reserve(cap);
    live.reserve(cap);
    for (size_t i = cap; i-- > 0;) free_slots.push_back(int(i));
  }
  void unlink(int i) {
    Block& b = slot[size_t(i)];
    if (b.prev >= 0) slot[size_t(b.prev)].next = b.next; else head = b.next;
    if (b.next >= 0) slot[size_t(b.next)].prev = b.prev; else tail = b.prev;
    b.prev = b.next = -1;
  }
  void push_front(int i) {
    Block& b = slot[size_t(i)];
    b.prev = -1;
    b.next = head;
    if (head >= 0) slot[size_t(head)].prev = i; else tail = i;
    head = i;
  }
  // Under mu: insert, then evict from the tail until the budget holds (the
  // new block itself is never evicted). Victims go to `out`.
  void insert(const Block& nb, std::vector<Block>& out) {
    if (free_slots.empty()) bench::die("kvchurn: slot table full", nullptr);
    int i = free_slots.back();
    free_slots.pop_back();
    slot[size_t(i)] = nb;
    slot[size_t(i)].live_pos = int(live.size());
    live.push_back(i);
    push_front(i);
    used += nb.n;
    while (used > budget && tail != i) {
      int v = tail;
      Block& b = slot[size_t(v)];
      unlink(v);
      int last = live.back();
      live[size_t(b.live_pos)] = last;
      slot[size_t(last)].live_pos = b.live_pos;
      live.pop_back();
      used -= b.n;
      out.push_back(b);
      b = Block{};
      free_slots.push_back(v);
      ++evictions;
    }
  }
  // Under mu: a hit on a random cached block moves it to the front.
  void lookup(uint64_t r) {
    if (live.empty()) return;
    int i = live[size_t(r % live.size())];
    const Block& b = slot[size_t(i)];
    if (static_cast<const unsigned char*>(b.p)[0] != b.tag) bench::die("cached block lost its contents", b.p);
    unlink(i);
    push_front(i);
    ++hits;
  }
};

void worker(Cache* cache, uint64_t volume, uint64_t seed, uint64_t* blocks_out) {
  bench::Rng rng(seed);
  std::vector<Block> victims;
  victims.reserve(kMaxBlock / kMinBlock * 2 + 16);
  uint64_t done = 0, blocks = 0;
  while (done < volume) {
    size_t n = bench::log_uniform(rng, kMinBlock, kMaxBlock) & ~size_t(63);
    void* p = nullptr;
    if (blocks % 2 == 0) {
      p = std::aligned_alloc(64, n);
      bench::check_alloc(p, "aligned_alloc returned NULL");
    } else if (posix_memalign(&p, 64, n) != 0 || p == nullptr) {
      bench::die("posix_memalign failed", p);
    }
    if (uintptr_t(p) % 64 != 0) bench::die("block is not 64-byte aligned", p);
    Block b;
    b.p = p;
    b.n = n;
    b.tag = static_cast<unsigned char>(rng.next()) | 1;
    bench::touch_pages(p, n, b.tag);
    uint64_t r[kLookups];
    for (auto& x : r) x = rng.next();
    {
      std::lock_guard<std::mutex> g(cache->mu);
      cache->insert(b, victims);
      for (uint64_t x : r) cache->lookup(x);
    }
    for (const Block& v : victims) {
      check_block(v, "evicted block lost its contents");
      std::free(v.p);
    }
    victims.clear();
    done += n;
    ++blocks;
  }
  *blocks_out = blocks;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args a = bench::parse_args(argc, argv);
  const uint64_t volume = bench::scaled(9.0 * 1024 * kMiB, a.scale, 16 * kMiB);
  const uint64_t budget = bench::scaled(2.0 * 1024 * kMiB, a.scale, 8 * kMiB);
  Cache cache(budget, a.threads);
  std::vector<uint64_t> blocks(size_t(a.threads), 0);
  double t0 = bench::now_s();
  std::vector<std::thread> th;
  for (int i = 0; i < a.threads; i++)
    th.emplace_back(worker, &cache, volume / uint64_t(a.threads), uint64_t(i + 1), &blocks[size_t(i)]);
  for (auto& t : th) t.join();
  for (int i : cache.live) {
    check_block(cache.slot[size_t(i)], "cached block lost its contents");
    std::free(cache.slot[size_t(i)].p);
  }
  double t1 = bench::now_s();
  uint64_t total = 0;
  for (uint64_t b : blocks) total += b;
  std::fprintf(stderr, "kvchurn: %.0f MiB volume, %.0f MiB budget, %llu blocks, %llu evictions, %llu hits\n",
               double(volume) / kMiB, double(budget) / kMiB, (unsigned long long)total,
               (unsigned long long)cache.evictions, (unsigned long long)cache.hits);
  bench::report("kvchurn: 256 KiB..4 MiB 64 B-aligned blocks through a shared LRU cache (9 GiB through 2 GiB at scale 1)",
                total, t1 - t0);
  return 0;
}

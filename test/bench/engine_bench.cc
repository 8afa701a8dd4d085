// engine_bench — the engine memory layer (lib/include/ammalloc/engine.h)
// against the seed design it replaces, and a small engine loop.
//
//   engine_bench kv-seed [scale]       KV appends/evictions, seed design: per request
//                                      std::vector<float> K and V in an unordered_map,
//                                      LRU list, byte budget (system malloc)
//   engine_bench kv-pool [scale]       the same workload on KVCachePool (am_* slabs)
//   engine_bench arena-malloc [scale]  per-step activations with malloc/free
//   engine_bench arena-step [scale]    the same with StepArena (reset per step)
//   engine_bench kv|arena [scale]      both variants, each in a child process, as a
//                                      table: throughput, ratio, peak RSS (ru_maxrss)
//   engine_bench loop [scale]          engine loop: hundreds of requests of random
//                                      lengths against a KV budget and a process limit
//
// Single variants print "result: <ops> ops in <s> s" like test/bench's micro
// programs (scripts/bench.sh rows kv-seed, kv-pool, arena-malloc, arena-step);
// ops are deterministic (fixed seeds), so every allocator's run must agree.
// Token data is written and spot-checked on every read, so a wrong copy aborts.
// scale 1 is a run of about a second per variant on a 2-core box.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <list>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "ammalloc/ammalloc.h"
#include "ammalloc/engine.h"
#include "bench_common.h"

namespace {

using ammalloc::KVCachePool;
constexpr std::size_t kMiB = std::size_t{1} << 20;

// ---- KV workload ----------------------------------------------------------------------
// 4 layers x 4 heads x 64 dims fp32: 4 KiB of K and 4 KiB of V per token;
// 16-token blocks of 128 KiB. Budget 64 MiB = 8192 tokens, below what the 32
// concurrently growing requests (64..600 tokens each) want, so both designs
// evict. Each request grows in chunks of 16 tokens (a prefill chunk or a
// decode batch); a finished request is dropped; a request that was evicted
// restarts (a miss).
constexpr std::size_t kLayers = 4, kHeads = 4, kDim = 64, kTpb = 16;
constexpr std::size_t kTokElems = kLayers * kHeads * kDim;  // per token, K (or V)
constexpr std::size_t kKvBudget = 64 * kMiB;
constexpr int kActive = 32;

struct KvResult {
  std::uint64_t tokens = 0, evictions = 0, restarts = 0;
};

// The workload driver: `append(id, n, tag)` adds n tokens whose K/V elements
// are `tag`, returns false if the request was evicted meanwhile (then it is
// restarted) ; `finish(id)` drops it; `check(id, tag)` reads one element back.
template <typename Impl>
KvResult run_kv(Impl& impl, double scale) {
  std::mt19937 rng(7);
  const std::uint64_t requests = bench::scaled(500, scale, 40);
  struct Req {
    std::uint64_t id;
    std::size_t target, have;
  };
  std::vector<Req> live;
  std::uint64_t next = 1, done = 0;
  KvResult r;
  std::vector<float> chunk(kTpb * kTokElems);
  auto fresh = [&] { return Req{next++, 64 + rng() % 537, 0}; };
  for (int i = 0; i < kActive; ++i) live.push_back(fresh());
  while (done < requests) {
    for (Req& q : live) {
      const std::size_t n = std::min<std::size_t>(kTpb, q.target - q.have);
      const float tag = static_cast<float>(q.id % 1000);
      std::fill(chunk.begin(), chunk.begin() + static_cast<long>(n * kTokElems), tag);
      if (!impl.append(q.id, chunk.data(), n, q.have)) {
        ++r.restarts;  // evicted: start over from the prompt
        q.have = 0;
        continue;
      }
      q.have += n;
      r.tokens += n;
      if (!impl.check(q.id, tag)) {
        std::fprintf(stderr, "engine_bench: wrong KV data for request %llu\n", (unsigned long long)q.id);
        std::exit(1);
      }
      if (q.have == q.target) {
        impl.finish(q.id);
        ++done;
        q = fresh();
      }
    }
  }
  for (Req& q : live) impl.finish(q.id);
  r.evictions = impl.evictions();
  return r;
}

// The seed's KVCacheMemoryManager: vectors per request, copy-in appends, LRU.
class SeedKv {
 public:
  bool append(std::uint64_t id, const float* data, std::size_t n, std::size_t have) {
    auto it = map_.find(id);
    if (it == map_.end()) {
      if (have != 0) return false;  // evicted
      lru_.push_back(id);
      it = map_.emplace(id, Entry{{}, {}, std::prev(lru_.end())}).first;
    }
    const std::size_t add = 2 * n * kTokElems * sizeof(float);
    while (bytes_ + add > kKvBudget && evict_one(id)) {
    }
    Entry& e = it->second;
    e.k.insert(e.k.end(), data, data + n * kTokElems);
    e.v.insert(e.v.end(), data, data + n * kTokElems);
    bytes_ += add;
    lru_.splice(lru_.end(), lru_, e.pos);
    return true;
  }
  bool check(std::uint64_t id, float tag) {
    const Entry& e = map_.at(id);
    return e.k.back() == tag && e.v.back() == tag;
  }
  void finish(std::uint64_t id) {
    auto it = map_.find(id);
    if (it == map_.end()) return;
    bytes_ -= (it->second.k.size() + it->second.v.size()) * sizeof(float);
    lru_.erase(it->second.pos);
    map_.erase(it);
  }
  std::uint64_t evictions() const { return evictions_; }

 private:
  struct Entry {
    std::vector<float> k, v;
    std::list<std::uint64_t>::iterator pos;
  };
  bool evict_one(std::uint64_t keep) {
    for (std::uint64_t id : lru_)
      if (id != keep) {
        finish(id);
        ++evictions_;
        return true;
      }
    return false;
  }
  std::unordered_map<std::uint64_t, Entry> map_;
  std::list<std::uint64_t> lru_;
  std::size_t bytes_ = 0;
  std::uint64_t evictions_ = 0;
};

ammalloc::KVCacheConfig kv_config() {
  ammalloc::KVCacheConfig c;
  c.tokens_per_block = kTpb;
  c.num_layers = kLayers;
  c.num_heads = kHeads;
  c.head_dim = kDim;
  c.dtype_size = sizeof(float);
  c.budget_bytes = kKvBudget;
  return c;
}

// The same interface on KVCachePool, zero-copy: tokens are written straight
// into the blocks through a pinned handle.
class PoolKv {
 public:
  PoolKv() : pool_(kv_config()) {}
  bool append(std::uint64_t id, const float* data, std::size_t n, std::size_t have) {
    auto h = have == 0 ? pool_.acquire(id) : pool_.find(id);
    if (!h) return false;  // evicted
    const std::size_t start = h.num_tokens();
    if (!h.append(n)) return false;
    const std::size_t row = kHeads * kDim;
    for (std::size_t t = 0; t < n; ++t)
      for (std::size_t l = 0; l < kLayers; ++l) {
        std::memcpy(h.key(start + t, l), data + (t * kLayers + l) * row, row * sizeof(float));
        std::memcpy(h.value(start + t, l), data + (t * kLayers + l) * row, row * sizeof(float));
      }
    return true;
  }
  bool check(std::uint64_t id, float tag) {
    auto h = pool_.find(id);
    float k, v;
    std::memcpy(&k, h.key(h.num_tokens() - 1, kLayers - 1), sizeof k);
    std::memcpy(&v, h.value(h.num_tokens() - 1, kLayers - 1), sizeof v);
    return k == tag && v == tag;
  }
  void finish(std::uint64_t id) { pool_.evict(id); }
  std::uint64_t evictions() const { return pool_.stats().evictions; }

 private:
  KVCachePool pool_;
};

// ---- activation workload ------------------------------------------------------------------
// Per step, 16 layers of: qkv (3 x hidden), attention scores (seq x seq x
// heads, seq 32..512), MLP hidden (4 x hidden), output; hidden = 1024 fp32.
// Sizes 4 KiB..4 MiB, 64-byte aligned, one write per 4 KiB page (what makes
// them resident), all dead at the end of the step.
constexpr int kActLayers = 16;

template <typename Alloc, typename EndStep>
std::uint64_t run_steps(double scale, Alloc alloc, EndStep end_step) {
  std::mt19937 rng(11);
  const std::uint64_t steps = bench::scaled(800, scale, 20);
  std::uint64_t ops = 0;
  std::vector<std::pair<unsigned char*, std::size_t>> bufs;
  bufs.reserve(kActLayers * 4);
  for (std::uint64_t s = 0; s < steps; ++s) {
    const std::size_t seq = 32 + rng() % 481;
    const std::size_t sizes[4] = {3 * 1024 * 4, seq * seq * 4 * 4 / 8, 4 * 1024 * 4, 1024 * 4};
    for (int l = 0; l < kActLayers; ++l)
      for (std::size_t n : sizes) {
        auto* p = static_cast<unsigned char*>(alloc(n));
        for (std::size_t off = 0; off < n; off += 4096) p[off] = static_cast<unsigned char>(l);
        p[n - 1] = static_cast<unsigned char>(l);
        bufs.emplace_back(p, n);
        ++ops;
      }
    for (std::size_t i = 0; i < bufs.size(); ++i)
      if (bufs[i].first[0] != static_cast<unsigned char>(i / 4) ||
          bufs[i].first[bufs[i].second - 1] != static_cast<unsigned char>(i / 4)) {
        std::fprintf(stderr, "engine_bench: activation %zu overwritten\n", i);
        std::exit(1);
      }
    end_step(bufs);
    bufs.clear();
  }
  return ops;
}

std::uint64_t arena_malloc(double scale) {
  return run_steps(
      scale,
      [](std::size_t n) {
        void* p = nullptr;
        if (posix_memalign(&p, 64, n) != 0) std::abort();
        return p;
      },
      [](auto& bufs) {
        for (auto& b : bufs) std::free(b.first);
      });
}

std::uint64_t arena_step(double scale) {
  ammalloc::StepArena arena;
  return run_steps(
      scale, [&](std::size_t n) { return arena.allocate(n); }, [&](auto&) { arena.reset(); });
}

// ---- one variant, or two in children ---------------------------------------------------------
struct Timed {
  std::uint64_t ops = 0;
  double seconds = 0;
};

Timed run_variant(const std::string& mode, double scale, bool print) {
  const double t0 = bench::now_s();
  std::uint64_t ops = 0;
  KvResult kv;
  if (mode == "kv-seed" || mode == "kv-pool") {
    if (mode == "kv-seed") {
      SeedKv impl;
      kv = run_kv(impl, scale);
    } else {
      PoolKv impl;
      kv = run_kv(impl, scale);
    }
    ops = kv.tokens;
  } else if (mode == "arena-malloc") {
    ops = arena_malloc(scale);
  } else if (mode == "arena-step") {
    ops = arena_step(scale);
  } else {
    std::fprintf(stderr, "engine_bench: unknown mode %s\n", mode.c_str());
    std::exit(2);
  }
  Timed t{ops, bench::now_s() - t0};
  if (print) {
    if (mode.rfind("kv", 0) == 0)
      std::printf("info: %llu tokens appended, %llu evictions, %llu restarts\n", (unsigned long long)kv.tokens,
                  (unsigned long long)kv.evictions, (unsigned long long)kv.restarts);
    std::printf("result: %llu ops in %.4f s\n", (unsigned long long)ops, t.seconds);
  }
  return t;
}

// Runs mode in a child; its peak RSS from wait4.
Timed run_child(const std::string& mode, double scale, long* maxrss_kib) {
  int fds[2];
  if (pipe(fds) != 0) std::abort();
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    Timed t = run_variant(mode, scale, false);
    if (write(fds[1], &t, sizeof t) != sizeof t) _exit(1);
    _exit(0);
  }
  close(fds[1]);
  Timed t;
  if (read(fds[0], &t, sizeof t) != sizeof t) {
    std::fprintf(stderr, "engine_bench: %s failed\n", mode.c_str());
    std::exit(1);
  }
  close(fds[0]);
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  *maxrss_kib = ru.ru_maxrss;
  return t;
}

void table(const char* title, const char* unit, const std::string& base, const std::string& ours, double scale) {
  long rss_b = 0, rss_o = 0;
  const Timed b = run_child(base, scale, &rss_b);
  const Timed o = run_child(ours, scale, &rss_o);
  const double rb = b.ops / b.seconds, ro = o.ops / o.seconds;
  std::printf("%s (scale %g)\n\n", title, scale);
  std::printf("| variant | %s | time s | %s/s | throughput ×%s | peak RSS MiB | RSS ×%s |\n", unit, unit, base.c_str(),
              base.c_str());
  std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
  std::printf("| %s | %llu | %.3f | %.0f | 1.00 | %.1f | 1.00 |\n", base.c_str(), (unsigned long long)b.ops, b.seconds,
              rb, rss_b / 1024.0);
  std::printf("| %s | %llu | %.3f | %.0f | %.2f | %.1f | %.2f |\n\n", ours.c_str(), (unsigned long long)o.ops,
              o.seconds, ro, ro / rb, rss_o / 1024.0, static_cast<double>(rss_o) / rss_b);
}

// ---- the engine loop ------------------------------------------------------------------------------
// A continuous-batching loop over multi-turn conversations. Each request is
// the next turn of a conversation (70% one of the 8 most recently served,
// else any of 120; new prompt 32..256 tokens, output 16..128, history capped
// at 640 tokens): if the conversation's KV is
// still cached (find() hits) only the new tokens are computed; if it was
// evicted (a miss) the whole history is recomputed. Up to 6 requests run at
// once, pinned while they run; each step prefills a 64-token chunk or decodes
// one token per request, with activations from the executor's step arena.
// The KV pool has a 64 MiB budget and the heap a limit of 100 MiB; every 50
// steps something else in the process (a sampler, a tokenizer cache) holds 24
// MiB for 10 steps through am_malloc, which at the limit makes the pool evict
// cached conversations. A running request that cannot grow (everything else
// pinned) is preempted and requeued.
int engine_loop(double scale) {
  using namespace ammalloc;
  const std::uint64_t requests = bench::scaled(600, scale, 50);
  const std::size_t convs = 120, kMaxHistory = 640, kRunning = 6;
  const std::size_t limit = 100 * kMiB;
  std::mt19937 rng(3);
  MemoryMonitor& mon = memory_monitor();
  am_reset();
  mon.set_limit(limit);
  mon.reset_peak();

  std::uint64_t budget_ev = 0, limit_ev = 0;
  KVCacheConfig cfg = kv_config();
  cfg.budget_bytes = 64 * kMiB;
  KVCachePool pool(cfg, [&](KVCachePool::RequestId, EvictReason r) {
    (r == EvictReason::kBudget ? budget_ev : limit_ev)++;
  });
  ExecutorMemoryConfig ecfg;
  ecfg.max_weight_bytes = 16 * kMiB;
  ecfg.max_arena_bytes = 16 * kMiB;
  ExecutorMemory exec(ecfg);
  exec.add_weight("embeddings", 12 * kMiB);
  std::memset(exec.weight("embeddings"), 1, 12 * kMiB);

  struct Req {
    std::uint64_t conv;
    std::size_t todo;  // tokens still to compute (prefill, then decode)
    std::size_t prefill;
    KVCachePool::Handle h;
  };
  std::vector<std::size_t> history(convs, 0);
  std::vector<bool> busy(convs, false);
  std::deque<std::uint64_t> waiting;
  std::deque<std::uint64_t> recent;  // conversations most recently served
  std::vector<Req> running;
  std::uint64_t finished = 0, steps = 0, preempted = 0, other_failed = 0, recomputed_tokens = 0;
  std::size_t max_heap_used = 0;
  std::vector<float> row(kHeads * kDim, 1.0f);
  void* other = nullptr;
  const double t0 = bench::now_s();
  while (finished < requests) {
    while (waiting.size() < 16)
      waiting.push_back(rng() % 10 < 7 && !recent.empty() ? recent[rng() % recent.size()] : rng() % convs);
    for (std::size_t w = 0; w < waiting.size() && running.size() < kRunning;) {
      const std::uint64_t c = waiting[w];
      if (busy[c]) {
        ++w;
        continue;
      }
      waiting.erase(waiting.begin() + static_cast<long>(w));
      std::size_t prompt = 32 + rng() % 225, output = 16 + rng() % 113;
      KVCachePool::Handle h = pool.find(c);
      if (!h || history[c] + prompt + output > kMaxHistory) {
        if (h && history[c] + prompt + output > kMaxHistory) {  // too long: a new conversation
          h.release();
          pool.evict(c);
          history[c] = 0;
        } else if (history[c] != 0) {  // evicted: recompute the history
          prompt += history[c];
          recomputed_tokens += history[c];
          history[c] = 0;
        }
        h = pool.acquire(c);
      }
      busy[c] = true;
      running.push_back(Req{c, prompt + output, prompt, std::move(h)});
    }
    if (steps % 50 == 0) other = am_malloc(24 * kMiB);
    if (steps % 50 == 10) {
      if (other == nullptr) ++other_failed;
      am_free(other);
      other = nullptr;
    }
    for (std::size_t i = 0; i < running.size();) {
      Req& q = running[i];
      const std::size_t n = q.prefill > 0 ? std::min<std::size_t>(64, q.prefill) : 1;
      float* act = static_cast<float*>(exec.step_alloc(n * kTokElems * sizeof(float)));
      act[0] = 1.0f;
      if (!q.h.append(n)) {  // no room even after evicting: preempt this one
        q.h.release();
        pool.evict(q.conv);
        history[q.conv] = 0;
        busy[q.conv] = false;
        ++preempted;
        waiting.push_back(q.conv);
        running.erase(running.begin() + static_cast<long>(i));
        continue;
      }
      for (std::size_t t = q.h.num_tokens() - n; t < q.h.num_tokens(); ++t)
        for (std::size_t l = 0; l < kLayers; ++l) std::memcpy(q.h.key(t, l), row.data(), row.size() * sizeof(float));
      q.todo -= n;
      q.prefill -= std::min(q.prefill, n);
      if (q.todo == 0) {  // done: its KV stays cached for the next turn
        history[q.conv] = q.h.num_tokens();
        busy[q.conv] = false;
        ++finished;
        recent.push_back(q.conv);
        if (recent.size() > 8) recent.pop_front();
        running.erase(running.begin() + static_cast<long>(i));
        continue;
      }
      ++i;
    }
    exec.end_step();
    ++steps;
    max_heap_used = std::max(max_heap_used, mon.used());
  }
  running.clear();
  am_free(other);
  const double secs = bench::now_s() - t0;
  const KVCacheStats st = pool.stats();
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  const double hit_rate = st.hits + st.misses ? 100.0 * st.hits / (st.hits + st.misses) : 0;
  std::printf("engine loop: %llu requests (turns of %zu conversations) in %llu steps, %.2f s\n",
              (unsigned long long)finished, convs, (unsigned long long)steps, secs);
  std::printf("  KV pool: budget %.0f MiB, peak reserved %.0f MiB, block %zu KiB, %zu sequences cached at the end\n",
              st.budget_bytes / 1048576.0, st.peak_reserved_bytes / 1048576.0, st.block_bytes / 1024, st.sequences);
  std::printf("  evictions: %llu (budget %llu, memory limit %llu); preempted %llu; 24 MiB allocations failed: %llu\n",
              (unsigned long long)st.evictions, (unsigned long long)budget_ev, (unsigned long long)limit_ev,
              (unsigned long long)preempted, (unsigned long long)other_failed);
  std::printf("  hit rate: %.1f%% (%llu hits, %llu misses; %llu history tokens recomputed)\n", hit_rate,
              (unsigned long long)st.hits, (unsigned long long)st.misses, (unsigned long long)recomputed_tokens);
  std::printf("  heap limit %.0f MiB: heap used max %.1f MiB, heap peak %.1f MiB (%s)\n", limit / 1048576.0,
              max_heap_used / 1048576.0, mon.peak() / 1048576.0, mon.peak() <= limit ? "under the limit" : "OVER");
  std::printf("  process peak RSS %.1f MiB (the heap + code, stacks and the system malloc's share)\n",
              ru.ru_maxrss / 1024.0);
  std::printf("  executor: weights %.0f MiB, arena %zu chunks, peak step %.2f MiB\n",
              exec.stats().weights.bytes / 1048576.0, exec.stats().arena.chunks,
              exec.stats().arena.peak_step_bytes / 1048576.0);
  std::printf("result: %llu ops in %.4f s\n", (unsigned long long)finished, secs);
  mon.set_limit(0);
  return mon.peak() <= limit ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s kv|arena|loop|kv-seed|kv-pool|arena-malloc|arena-step [scale]\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  const double scale = bench::parse_args(argc - 1, argv + 1).scale;
  if (mode == "kv") {
    table("KV cache: append 16-token chunks to 32 growing requests, 64 MiB budget, LRU eviction", "tokens",
          "kv-seed", "kv-pool", scale);
  } else if (mode == "arena") {
    table("Per-step activations: 64 buffers of 4 KiB..512 KiB per step, all dead at step end", "allocs",
          "arena-malloc", "arena-step", scale);
  } else if (mode == "loop") {
    return engine_loop(scale);
  } else {
    run_variant(mode, scale, true);
  }
  return 0;
}

// KVCachePool (lib/include/ammalloc/kv_cache_pool.h): sequences, their block
// tables, LRU eviction by budget and by the process memory limit.
//
// Owns: the index (id -> KVSequence), the LRU list and the KVBlockAllocator,
// all under mu_; each KVSequence's block table under its own shared_mutex.
// Invariants (under mu_): a sequence is in index_ iff it is in lru_; its
// blocks are in use in blocks_; pins only rise under mu_, so a sequence seen
// unpinned under mu_ is touched by no other thread and may be dropped without
// its own lock (every path to a sequence's table pins it first).
// Locks: a sequence's mutex, then mu_; never the other way. Every region that
// holds either is counted in t_locks_held, which the memory-limit subscriber
// checks: a thread that hits the limit while inside a pool must not wait for
// a pool lock (it may hold it, or hold another pool's lock that the holder of
// this one waits for). Eviction callbacks run after every lock is released.
#include "ammalloc/kv_cache_pool.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <new>
#include <shared_mutex>
#include <stdexcept>

#include "kv_block_allocator.h"

namespace ammalloc {

namespace detail {

struct KVSequence {
  explicit KVSequence(std::uint64_t i) : id(i) {}
  const std::uint64_t id;
  mutable std::shared_mutex mu;           // table
  std::vector<std::uint32_t> table;       // block ids, in token order
  std::atomic<std::size_t> tokens{0};     // written under mu (exclusive)
  std::atomic<int> pins{0};               // raised under the pool mutex
  std::list<KVSequence*>::iterator lru;   // under the pool mutex
};

}  // namespace detail

namespace {

thread_local int t_locks_held = 0;

// A held lock of some KVCachePool, counted for the memory-limit subscriber.
template <typename Lock>
struct Held {
  template <typename M>
  explicit Held(M& m) : lock(m) {
    ++t_locks_held;
  }
  ~Held() { --t_locks_held; }
  Lock lock;
};
using PoolLock = Held<std::unique_lock<std::mutex>>;
using SeqRead = Held<std::shared_lock<std::shared_mutex>>;
using SeqWrite = Held<std::unique_lock<std::shared_mutex>>;

constexpr std::size_t kAlign64 = 64;
constexpr std::size_t kHugePage = std::size_t{2} << 20;

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

}  // namespace

// ---- construction --------------------------------------------------------------------
KVCachePool::KVCachePool(const KVCacheConfig& config, EvictionCallback on_evict)
    : config_(config), on_evict_(std::move(on_evict)) {
  if (config.tokens_per_block == 0 || config.num_layers == 0 || config.num_heads == 0 || config.head_dim == 0 ||
      config.dtype_size == 0)
    throw std::invalid_argument("KVCachePool: every dimension must be > 0");
  head_bytes_ = config.num_heads * config.head_dim * config.dtype_size;
  token_elems_ = config.num_layers * config.num_heads * config.head_dim;
  block_bytes_ = round_up(config.tokens_per_block * config.num_layers * 2 * head_bytes_, kAlign64);
  config_.slab_bytes = round_up(std::max(config.slab_bytes, block_bytes_), kHugePage);
  const std::size_t max_slabs = config.budget_bytes / config_.slab_bytes;
  if (max_slabs == 0) throw std::invalid_argument("KVCachePool: budget_bytes is smaller than one slab");
  if (config_.slab_bytes / block_bytes_ > UINT32_MAX / max_slabs)
    throw std::invalid_argument("KVCachePool: more than 2^32 blocks");
  blocks_ = std::make_unique<detail::KVBlockAllocator>(block_bytes_, config_.slab_bytes, max_slabs,
                                                       config.spare_slabs);
  if (config.evict_on_memory_limit)
    subscription_ = memory_monitor().subscribe([this](const MemoryLimitEvent& ev) { on_memory_limit(ev); });
}

KVCachePool::~KVCachePool() {
  // First, so that no subscriber call can be inside the pool while it dies.
  subscription_.reset();
}

// ---- pins, LRU, eviction ---------------------------------------------------------------
KVCachePool::Handle KVCachePool::pin(RequestId id, bool create, bool* created) {
  *created = false;
  PoolLock g(mu_);
  auto it = index_.find(id);
  if (it == index_.end()) {
    if (!create) {
      misses_.fetch_add(1, std::memory_order_relaxed);
      return Handle();
    }
    auto seq = std::make_unique<Seq>(id);
    lru_.push_back(seq.get());
    try {
      it = index_.emplace(id, std::move(seq)).first;
    } catch (...) {
      lru_.pop_back();
      throw;
    }
    it->second->lru = std::prev(lru_.end());
    *created = true;
  } else {
    if (!create) hits_.fetch_add(1, std::memory_order_relaxed);
    touch_locked(it->second.get());
  }
  it->second->pins.fetch_add(1, std::memory_order_relaxed);
  return Handle(this, it->second.get());
}

KVCachePool::Handle KVCachePool::acquire(RequestId id) {
  bool created = false;
  return pin(id, true, &created);
}

KVCachePool::Handle KVCachePool::find(RequestId id) {
  bool created = false;
  return pin(id, false, &created);
}

void KVCachePool::unpin(Seq* s) noexcept {
  // Release: everything this pin did to the sequence happens before a
  // dropper's acquire load sees the count fall.
  s->pins.fetch_sub(1, std::memory_order_release);
}

void KVCachePool::touch_locked(Seq* s) noexcept { lru_.splice(lru_.end(), lru_, s->lru); }

void KVCachePool::drop_locked(Seq* s) noexcept {
  for (std::uint32_t b : s->table) blocks_->give(b);
  lru_.erase(s->lru);
  index_.erase(s->id);  // destroys s
}

bool KVCachePool::evict_lru_locked(const Seq* keep, EvictReason reason, RequestId* victim) noexcept {
  for (Seq* s : lru_) {
    if (s == keep || s->pins.load(std::memory_order_acquire) != 0) continue;
    *victim = s->id;
    drop_locked(s);
    evictions_.fetch_add(1, std::memory_order_relaxed);
    if (reason == EvictReason::kMemoryLimit) limit_evictions_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  return false;
}

bool KVCachePool::evict(RequestId id) {
  PoolLock g(mu_);
  auto it = index_.find(id);
  if (it == index_.end() || it->second->pins.load(std::memory_order_acquire) != 0) return false;
  drop_locked(it->second.get());
  return true;
}

bool KVCachePool::contains(RequestId id) const {
  PoolLock g(mu_);
  return index_.count(id) != 0;
}

std::vector<KVCachePool::RequestId> KVCachePool::lru_order() const {
  std::vector<RequestId> out;
  PoolLock g(mu_);
  out.reserve(lru_.size());
  for (const Seq* s : lru_) out.push_back(s->id);
  return out;
}

void KVCachePool::notify(RequestId id, EvictReason reason) noexcept {
  // noexcept: a throwing callback terminates rather than losing the
  // "exactly once" promise halfway through a batch.
  if (on_evict_) on_evict_(id, reason);
}

void KVCachePool::notify_all(const std::vector<Victim>& victims) noexcept {
  for (const Victim& v : victims) notify(v.id, v.reason);
}

std::size_t KVCachePool::shrink(std::size_t bytes, EvictReason reason) {
  std::size_t freed = 0;
  // One victim per pass, its callback between passes: no list of victims
  // to allocate while the heap may be at its limit.
  for (;;) {
    RequestId victim = 0;
    bool evicted = false;
    {
      PoolLock g(mu_);
          // Slabs go back both here and inside give() (beyond the spares): count
      // what the pool holds rather than what release_empty() returns.
      const std::size_t before = blocks_->reserved_bytes();
      blocks_->release_empty();
      if (freed + before - blocks_->reserved_bytes() < bytes) {
        evicted = evict_lru_locked(nullptr, reason, &victim);
        blocks_->release_empty();
      }
      freed += before - blocks_->reserved_bytes();
    }
    if (evicted) notify(victim, reason);
    if (!evicted || freed >= bytes) break;
  }
  return freed;
}

void KVCachePool::on_memory_limit(const MemoryLimitEvent& ev) {
  // Inside a pool (this one or another) this thread may hold the very lock
  // shrink() needs; the allocation fails and the pool that made it evicts
  // for itself (resize_blocks).
  if (t_locks_held != 0) return;
  shrink(ev.needed(), EvictReason::kMemoryLimit);
}

// ---- growing and shrinking a sequence ----------------------------------------------------
bool KVCachePool::fresh_ok() const noexcept {
  // A new slab in preference to free blocks in shared slabs only while the
  // heap has room for it without reaching its limit (see KVBlockAllocator).
  // Twice the slab: the page heap checks a 2 MiB-aligned request against the
  // limit with its alignment slack (size + 2 MiB - 1 page), then trims.
  const MemoryMonitor& m = memory_monitor();
  const std::size_t limit = m.limit();
  return limit == 0 || m.used() + 2 * blocks_->slab_bytes() <= limit;
}

bool KVCachePool::resize_blocks(Seq* s, std::size_t want, std::vector<Victim>* victims) {
  s->table.reserve(want);  // outside mu_: allocations under it are avoided where we can
  std::size_t taken = 0;   // by this call, so that failure can give them back
  auto give_back = [&] {   // with mu_ held
    for (; taken > 0; --taken) {
      blocks_->give(s->table.back());
      s->table.pop_back();
    }
  };
  for (;;) {
    // Room for more victims is made outside the lock (see the break below).
    // If even that fails, the call fails: the victims so far are still
    // reported by the caller, and the blocks taken go back.
    bool room = true;
    if (victims->size() == victims->capacity()) {
      try {
        victims->reserve(victims->size() * 2 + 8);
      } catch (const std::bad_alloc&) {
        room = false;
      }
    }
    PoolLock g(mu_);
    if (!room) {
      give_back();
      return false;
    }
    while (s->table.size() > want) {
      blocks_->give(s->table.back());
      s->table.pop_back();
    }
    while (s->table.size() < want) {
      bool refused = false;
      const std::int64_t hint = s->table.empty() ? -1 : static_cast<std::int64_t>(blocks_->slot_of(s->table.back()));
      const std::int64_t b = blocks_->take(hint, fresh_ok(), &refused);
      if (b >= 0) {
        s->table.push_back(static_cast<std::uint32_t>(b));
        ++taken;
        continue;
      }
      if (victims->size() == victims->capacity()) break;
      RequestId v = 0;
      const EvictReason why = refused ? EvictReason::kMemoryLimit : EvictReason::kBudget;
      if (!evict_lru_locked(s, why, &v)) {
        give_back();
        return false;
      }
      victims->push_back({v, why});
    }
    if (s->table.size() == want) {
      peak_reserved_ = std::max(peak_reserved_, blocks_->reserved_bytes());
      return true;
    }
  }
}

bool KVCachePool::Handle::append(std::size_t n_tokens) {
  KVCachePool* p = pool_;
  std::vector<Victim> victims;
  bool ok = false;
  {
    SeqWrite w(seq_->mu);
    const std::size_t tokens = seq_->tokens.load(std::memory_order_relaxed) + n_tokens;
    const std::size_t want = (tokens + p->config_.tokens_per_block - 1) / p->config_.tokens_per_block;
    ok = p->resize_blocks(seq_, want, &victims);
    if (ok) {
      seq_->tokens.store(tokens, std::memory_order_relaxed);
      PoolLock g(p->mu_);
      p->touch_locked(seq_);
    }
  }
  p->notify_all(victims);
  return ok;
}

// ---- copy in and out (the seed's interface) ---------------------------------------------
std::byte* KVCachePool::kv_address(const Seq* s, std::size_t token, std::size_t layer, std::size_t kv) const {
  const std::size_t tpb = config_.tokens_per_block;
  std::byte* block = blocks_->address(s->table[token / tpb]);
  return block + ((layer * 2 + kv) * tpb + token % tpb) * head_bytes_;
}

bool KVCachePool::insert(RequestId id, std::span<const float> keys, std::span<const float> values) {
  if (config_.dtype_size != sizeof(float))
    throw std::invalid_argument("KVCachePool::insert: float copy-in needs dtype_size 4");
  if (keys.size() != values.size() || keys.size() % token_elems_ != 0)
    throw std::invalid_argument("KVCachePool::insert: keys and values must both hold n x token_elements()");
  const std::size_t n = keys.size() / token_elems_;
  bool created = false;
  Handle h = pin(id, true, &created);
  std::vector<Victim> victims;
  bool ok = false;
  {
    SeqWrite w(h.seq_->mu);
    ok = resize_blocks(h.seq_, (n + config_.tokens_per_block - 1) / config_.tokens_per_block, &victims);
    if (ok) {
      h.seq_->tokens.store(n, std::memory_order_relaxed);
      const std::size_t head_elems = head_bytes_ / sizeof(float);
      for (std::size_t t = 0; t < n; ++t)
        for (std::size_t l = 0; l < config_.num_layers; ++l) {
          const std::size_t off = (t * config_.num_layers + l) * head_elems;
          std::memcpy(kv_address(h.seq_, t, l, 0), keys.data() + off, head_bytes_);
          std::memcpy(kv_address(h.seq_, t, l, 1), values.data() + off, head_bytes_);
        }
    }
  }
  h.release();
  if (!ok && created) {
    // Drop the empty sequence this call created, unless another thread has
    // pinned it or put tokens in it meanwhile.
    PoolLock g(mu_);
    auto it = index_.find(id);
    if (it != index_.end() && it->second->pins.load(std::memory_order_acquire) == 0 &&
        it->second->tokens.load(std::memory_order_relaxed) == 0)
      drop_locked(it->second.get());
  }
  notify_all(victims);
  return ok;
}

bool KVCachePool::get(RequestId id, std::vector<float>& keys, std::vector<float>& values) {
  if (config_.dtype_size != sizeof(float))
    throw std::invalid_argument("KVCachePool::get: float copy-out needs dtype_size 4");
  Handle h = find(id);
  if (!h) return false;
  const std::size_t head_elems = head_bytes_ / sizeof(float);
  for (;;) {
    // Sized outside the lock (the caller's vectors come from whatever heap);
    // redone if an append raced in between.
    const std::size_t n = h.num_tokens();
    keys.resize(n * token_elems_);
    values.resize(n * token_elems_);
    SeqRead r(h.seq_->mu);
    if (h.seq_->tokens.load(std::memory_order_relaxed) != n) continue;
    for (std::size_t t = 0; t < n; ++t)
      for (std::size_t l = 0; l < config_.num_layers; ++l) {
        const std::size_t off = (t * config_.num_layers + l) * head_elems;
        std::memcpy(keys.data() + off, kv_address(h.seq_, t, l, 0), head_bytes_);
        std::memcpy(values.data() + off, kv_address(h.seq_, t, l, 1), head_bytes_);
      }
    return true;
  }
}

// ---- stats -------------------------------------------------------------------------------
KVCacheStats KVCachePool::stats() const {
  KVCacheStats st;
  {
    PoolLock g(mu_);
    st.block_bytes = block_bytes_;
    st.blocks_in_use = blocks_->blocks_in_use();
    st.blocks_free = blocks_->blocks_free();
    st.slabs = blocks_->slabs();
    st.reserved_bytes = blocks_->reserved_bytes();
    st.used_bytes = st.blocks_in_use * block_bytes_;
    st.budget_bytes = blocks_->max_slabs() * blocks_->slab_bytes();
    st.peak_reserved_bytes = peak_reserved_;
    st.sequences = index_.size();
    for (const auto& [id, s] : index_) {
      if (s->pins.load(std::memory_order_relaxed) != 0) ++st.pinned_sequences;
      st.tokens += s->tokens.load(std::memory_order_relaxed);
    }
    st.slabs_allocated = blocks_->slabs_allocated();
    st.slabs_freed = blocks_->slabs_freed();
  }
  st.hits = hits_.load(std::memory_order_relaxed);
  st.misses = misses_.load(std::memory_order_relaxed);
  st.evictions = evictions_.load(std::memory_order_relaxed);
  st.limit_evictions = limit_evictions_.load(std::memory_order_relaxed);
  st.process_rss = MemoryMonitor::process_rss();
  st.rss_share = st.process_rss != 0 ? static_cast<double>(st.reserved_bytes) / static_cast<double>(st.process_rss) : 0;
  return st;
}

// ---- Handle -----------------------------------------------------------------------------
KVCachePool::Handle::Handle(Handle&& o) noexcept
    : pool_(std::exchange(o.pool_, nullptr)), seq_(std::exchange(o.seq_, nullptr)) {}

KVCachePool::Handle& KVCachePool::Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    release();
    pool_ = std::exchange(o.pool_, nullptr);
    seq_ = std::exchange(o.seq_, nullptr);
  }
  return *this;
}

KVCachePool::Handle::~Handle() { release(); }

void KVCachePool::Handle::release() noexcept {
  if (seq_ == nullptr) return;
  pool_->unpin(seq_);
  seq_ = nullptr;
  pool_ = nullptr;
}

KVCachePool::RequestId KVCachePool::Handle::id() const noexcept { return seq_->id; }

std::size_t KVCachePool::Handle::num_tokens() const { return seq_->tokens.load(std::memory_order_relaxed); }

std::size_t KVCachePool::Handle::num_blocks() const {
  SeqRead r(seq_->mu);
  return seq_->table.size();
}

std::byte* KVCachePool::Handle::block(std::size_t i) const {
  SeqRead r(seq_->mu);
  if (i >= seq_->table.size()) throw std::out_of_range("KVCachePool::Handle::block");
  return pool_->blocks_->address(seq_->table[i]);
}

std::vector<std::byte*> KVCachePool::Handle::blocks() const {
  std::vector<std::byte*> out;
  for (;;) {
    std::size_t n = num_blocks();
    out.reserve(n);  // outside the lock; redone if the table grew meanwhile
    SeqRead r(seq_->mu);
    if (seq_->table.size() > out.capacity()) continue;
    for (std::uint32_t b : seq_->table) out.push_back(pool_->blocks_->address(b));
    return out;
  }
}

std::byte* KVCachePool::Handle::key(std::size_t token, std::size_t layer) const {
  SeqRead r(seq_->mu);
  if (token >= seq_->tokens.load(std::memory_order_relaxed) || layer >= pool_->config_.num_layers)
    throw std::out_of_range("KVCachePool::Handle::key");
  return pool_->kv_address(seq_, token, layer, 0);
}

std::byte* KVCachePool::Handle::value(std::size_t token, std::size_t layer) const {
  SeqRead r(seq_->mu);
  if (token >= seq_->tokens.load(std::memory_order_relaxed) || layer >= pool_->config_.num_layers)
    throw std::out_of_range("KVCachePool::Handle::value");
  return pool_->kv_address(seq_, token, layer, 1);
}

}  // namespace ammalloc

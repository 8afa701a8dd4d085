// KVCachePool: a paged key/value cache for an inference engine, in the manner
// of vLLM's block tables, on the am_* heap.
//
// Memory. A block holds the K and V of tokens_per_block tokens for every
// layer: block_bytes = tokens_per_block x layers x 2 x heads x head_dim x
// dtype_size, rounded up to 64 bytes. Blocks are carved from slabs of
// slab_bytes (a multiple of 2 MiB, so ammalloc backs them with transparent
// huge pages), 64-byte aligned. The pool never holds more than budget_bytes of
// slabs: floor(budget_bytes / slab_bytes) slabs at most.
//
// Layout inside a block (per layer, K then V, vLLM's [2, block_size, heads,
// head_dim] per layer): the bytes of (layer l, kv k, slot s) start at
//   ((l * 2 + k) * tokens_per_block + s) * heads * head_dim * dtype_size.
// key(token, layer) / value(token, layer) compute it for a sequence's token.
//
// Sequences. Each request id owns a block table that grows as tokens are
// appended (Handle::append). insert()/get() copy whole sequences in and out
// as float vectors in the seed design's manner (token-major: [token][layer]
// [head][head_dim], for K and for V), for code written against it; Handle
// gives zero-copy access to the blocks.
//
// Eviction. Whole sequences, least recently used first (a use is insert, get,
// find, acquire and append). It happens when a block is needed and the budget
// is full, when the heap refuses a new slab, and when the process reaches its
// memory limit (the pool subscribes to MemoryMonitor; it then frees slabs
// until the failing allocation fits or nothing is evictable). A sequence
// pinned by a live Handle is never evicted. on_evict(id, reason) is called
// exactly once per evicted sequence, with no pool lock held, on the thread
// whose request caused the eviction; it may call the pool. evict(id) and
// insert() over an existing id are the caller's own decisions and call
// nothing.
//
// Threads. Every member is thread-safe. One mutex guards the index, the LRU
// list and the block allocator (held for O(1) steps plus, when a new slab is
// needed, one am_memalign); each sequence has a shared_mutex over its block
// table, so readers of one sequence run in parallel and sequences are copied
// in and out without the pool mutex. Order: a sequence's lock, then the pool
// mutex. The memory-limit subscriber does nothing on a thread that holds a
// lock of any KVCachePool (it would deadlock on itself), so an allocation made
// inside the pool that hits the limit simply fails, and the pool evicts for
// itself.
//
// Data races on the payload are the caller's: the pool synchronises block
// tables, not the bytes a kernel writes through block pointers.
#ifndef AMMALLOC_KV_CACHE_POOL_H
#define AMMALLOC_KV_CACHE_POOL_H

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <unordered_map>
#include <vector>

#include "ammalloc/allocator.h"
#include "ammalloc/memory_monitor.h"

namespace ammalloc {

namespace detail {
class KVBlockAllocator;
struct KVSequence;
}  // namespace detail

struct KVCacheConfig {
  std::size_t tokens_per_block = 16;
  std::size_t num_layers = 1;
  std::size_t num_heads = 1;
  std::size_t head_dim = 64;
  std::size_t dtype_size = 2;  // bytes per element: 2 for fp16/bf16, 4 for fp32
  // Bytes of slabs the pool may hold (required: at least one slab).
  std::size_t budget_bytes = 0;
  // Rounded up to a multiple of 2 MiB, and to one block if a block is larger.
  std::size_t slab_bytes = std::size_t{2} << 20;
  // Empty slabs kept for reuse (0: every empty slab goes back to the heap).
  std::size_t spare_slabs = 1;
  // Subscribe to MemoryMonitor and evict when the process limit is reached.
  bool evict_on_memory_limit = true;
};

enum class EvictReason : std::uint8_t {
  kBudget = 0,       // the pool's byte budget was full
  kMemoryLimit = 1,  // the heap refused a slab, or another allocation hit the limit
};

struct KVCacheStats {
  std::size_t block_bytes = 0;
  std::size_t blocks_in_use = 0;
  std::size_t blocks_free = 0;      // free blocks inside slabs the pool holds
  std::size_t slabs = 0;
  std::size_t reserved_bytes = 0;   // slabs x slab_bytes: what the pool holds from the heap
  std::size_t used_bytes = 0;       // blocks_in_use x block_bytes
  std::size_t budget_bytes = 0;
  std::size_t peak_reserved_bytes = 0;
  std::size_t sequences = 0;
  std::size_t pinned_sequences = 0;
  std::size_t tokens = 0;
  std::uint64_t hits = 0;           // get()/find() of a present id
  std::uint64_t misses = 0;         // of an absent one
  std::uint64_t evictions = 0;      // sequences evicted by the pool (both reasons)
  std::uint64_t limit_evictions = 0;  // of which for the memory limit
  std::uint64_t slabs_allocated = 0;
  std::uint64_t slabs_freed = 0;
  std::size_t process_rss = 0;      // MemoryMonitor::process_rss()
  double rss_share = 0;             // reserved_bytes / process_rss (0 if unknown)
};

class AM_CXX_API KVCachePool {
 public:
  using RequestId = std::uint64_t;
  using EvictionCallback = std::function<void(RequestId, EvictReason)>;

  // A pin on one sequence: while it lives the sequence is never evicted and
  // its blocks stay where they are. Move-only. Must not outlive the pool.
  class AM_CXX_API Handle {
   public:
    Handle() noexcept = default;
    Handle(Handle&& o) noexcept;
    Handle& operator=(Handle&& o) noexcept;
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle();

    explicit operator bool() const noexcept { return seq_ != nullptr; }
    RequestId id() const noexcept;
    std::size_t num_tokens() const;
    std::size_t num_blocks() const;
    // Base of the sequence's i-th block (i < num_blocks()).
    std::byte* block(std::size_t i) const;
    // The block pointers in order (a copy: the table may grow afterwards).
    std::vector<std::byte*> blocks() const;
    // K or V of one token (< num_tokens()) in one layer: heads x head_dim elements.
    std::byte* key(std::size_t token, std::size_t layer) const;
    std::byte* value(std::size_t token, std::size_t layer) const;
    // Grows the sequence by n tokens (new blocks as needed, evicting other
    // sequences if the budget or the heap requires). All or nothing: false
    // when no room can be made, and then nothing changed.
    bool append(std::size_t n_tokens);
    // Unpins now.
    void release() noexcept;

   private:
    friend class KVCachePool;
    Handle(KVCachePool* pool, detail::KVSequence* seq) noexcept : pool_(pool), seq_(seq) {}
    KVCachePool* pool_ = nullptr;
    detail::KVSequence* seq_ = nullptr;
  };

  explicit KVCachePool(const KVCacheConfig& config, EvictionCallback on_evict = {});
  // Precondition: no Handle alive. Unsubscribes first, then frees every slab.
  ~KVCachePool();
  KVCachePool(const KVCachePool&) = delete;
  KVCachePool& operator=(const KVCachePool&) = delete;

  const KVCacheConfig& config() const noexcept { return config_; }
  std::size_t block_bytes() const noexcept { return block_bytes_; }
  // Elements of one token's K (or V) over all layers: layers x heads x head_dim.
  std::size_t token_elements() const noexcept { return token_elems_; }

  // Pins id's sequence, creating an empty one if absent (neither hit nor miss).
  Handle acquire(RequestId id);
  // Pins id's sequence if present (a hit), else returns an empty Handle (a miss).
  Handle find(RequestId id);

  // Seed-compatible copy-in: the sequence becomes exactly these tokens
  // (keys.size() == values.size() == n x token_elements(); needs dtype_size
  // 4, else std::invalid_argument). false (and the sequence unchanged) when
  // no room can be made.
  bool insert(RequestId id, std::span<const float> keys, std::span<const float> values);
  // Copy-out: true and the whole sequence on a hit, false on a miss.
  bool get(RequestId id, std::vector<float>& keys, std::vector<float>& values);

  // Drops id's sequence. false if absent or pinned (a pinned sequence stays).
  bool evict(RequestId id);
  bool contains(RequestId id) const;
  // Ids from least to most recently used.
  std::vector<RequestId> lru_order() const;
  // Evicts least recently used unpinned sequences until at least `bytes` of
  // slabs went back to the heap or nothing is evictable; returns the bytes.
  std::size_t shrink(std::size_t bytes, EvictReason reason = EvictReason::kMemoryLimit);

  KVCacheStats stats() const;

 private:
  friend class Handle;
  using Seq = detail::KVSequence;

  struct Victim {
    RequestId id;
    EvictReason reason;
  };

  Handle pin(RequestId id, bool create, bool* created);
  void unpin(Seq* s) noexcept;
  void touch_locked(Seq* s) noexcept;
  // Evicts the least recently used unpinned sequence other than `keep`;
  // false when there is none.
  bool evict_lru_locked(const Seq* keep, EvictReason reason, RequestId* victim) noexcept;
  void drop_locked(Seq* s) noexcept;
  // With s's lock held exclusively: makes s hold exactly `blocks` blocks,
  // evicting others as needed (recorded in *victims). All or nothing.
  bool resize_blocks(Seq* s, std::size_t blocks, std::vector<Victim>* victims);
  bool fresh_ok() const noexcept;
  void notify(RequestId id, EvictReason reason) noexcept;
  void notify_all(const std::vector<Victim>& victims) noexcept;
  void on_memory_limit(const MemoryLimitEvent& ev);
  std::byte* kv_address(const Seq* s, std::size_t token, std::size_t layer, std::size_t kv) const;

  KVCacheConfig config_;
  std::size_t block_bytes_;
  std::size_t head_bytes_;   // heads x head_dim x dtype_size
  std::size_t token_elems_;  // layers x heads x head_dim
  EvictionCallback on_evict_;

  mutable std::mutex mu_;  // index_, lru_, blocks_, peak_
  std::unordered_map<RequestId, std::unique_ptr<Seq>> index_;
  std::list<Seq*> lru_;  // front: least recently used
  std::unique_ptr<detail::KVBlockAllocator> blocks_;
  std::size_t peak_reserved_ = 0;

  std::atomic<std::uint64_t> hits_{0}, misses_{0}, evictions_{0}, limit_evictions_{0};
  MemoryMonitor::Subscription subscription_;  // last: unsubscribed first on destruction
};

}  // namespace ammalloc

#endif  // AMMALLOC_KV_CACHE_POOL_H

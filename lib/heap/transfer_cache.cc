// TransferCache: lock-free batch exchange in front of the central cache.
//
// The problem. A thread that frees more than it allocates (a consumer, a server
// worker freeing requests another thread built) overflows its cache one batch
// at a time; a thread that allocates more than it frees refills one batch at a
// time. Without this tier each of those batches crosses the central cache's
// per-class lock twice, and the object-by-object work under it (span lookups,
// span free lists) is what the lock serialises. Here a full batch - a chain of
// exactly class_info(cl).batch objects - is handed over as one pointer.
//
// The structure. Per class, a bounded ring of `cap` cells (cap a power of two,
// 2..64, from the bytes of a batch: see kClassBytes) with two
// 64-bit positions, `enq` and `deq`, that only grow, and in each cell a turn
// word and a batch pointer (Vyukov's bounded MPMC queue). For position p, let
// i = p mod cap and base = p - i (= cap * lap). Cell i's turn says whose move
// it is at that lap:
//   turn == base       empty, waiting for the producer of position p
//   turn == base + 1   full, holds the batch of position p
//   turn == base + cap empty again: waiting for the producer of p + cap
// (The textbook stores seq = turn + i and starts cell i at seq = i; storing
// turn instead makes the all-zero state the valid empty ring, so everything
// here is constant-initialised and needs no init call.)
//
// insert(b):  p = enq; t = cell[i].turn (acquire)
//   t == base:     CAS enq p -> p+1; on success cell.batch = b; turn = base+1 (release)
//   t < base:      the cell still holds lap-1's batch (or its consumer has not
//                  finished taking it): the ring is full -> return false
//   t > base:      another producer already took p: reload enq, retry
// remove():   p = deq; t = cell[i].turn (acquire)
//   t == base+1:   CAS deq p -> p+1; on success b = cell.batch; turn = base+cap (release)
//   t < base+1:    nothing published at p: the ring is empty (or p's producer
//                  has not finished publishing) -> return null
//   t > base+1:    another consumer already took p: reload deq, retry
// (Differences are taken as signed 64-bit values, so a wrap of the counters
// would be harmless; at 10^9 operations a second it takes 584 years anyway.)
//
// Why it is correct.
//  - Exclusive ownership: a position is claimed by exactly one producer (the
//    CAS on enq from p to p+1 succeeds once) and one consumer (likewise on
//    deq). Between its claim and its turn store, only the claimer touches the
//    cell: a producer claims p only after reading turn == base, which the
//    consumer of p - cap stored after it had read the batch out; a consumer
//    claims p only after reading turn == base + 1, stored by p's producer after
//    it wrote the batch. A claim whose check was read before another thread's
//    claim fails its CAS (the position moved) and starts over.
//  - ABA: positions are never reused (64-bit counters), and turn encodes the
//    lap, so a stale thread that read turn at lap k cannot mistake lap k+1's
//    cell for lap k's: the generation tag is built in.
//  - Visibility: the producer's writes to the chain's link words and to
//    cell.batch precede its release store of turn; the consumer's acquire load
//    of that turn precedes its reads of cell.batch and of the chain. The
//    consumer's read of cell.batch precedes its release store of turn = base +
//    cap, which the producer of p + cap acquires before overwriting the cell.
//    The CASes on enq/deq need no ordering of their own (relaxed).
//  - Progress: every operation either completes or reports full/empty in a
//    bounded number of steps unless other threads keep succeeding (lock-free).
//    A thread preempted between its CAS and its turn store leaves one cell
//    pending: producers see the ring as full when they lap it, consumers see it
//    as empty at that position. Nobody waits; both go to the central cache
//    (a miss) - the right answer for a cache.
//  - Conservation: every batch is in exactly one place: the thread cache that
//    built it, a ring cell (turn == base+1), or the thread cache that took it.
//
// fork(). The forking thread is inside fork(), never inside a ring operation,
// but another thread of the parent may be, and it does not exist in the child:
// a producer that claimed p but did not publish leaves cell p at turn == base
// forever (consumers would stop at p and the ring would fill up and stay
// useless), a consumer that claimed p but did not release leaves the cell at
// base + 1 (producers would see the ring full). The child handler checks each
// ring against the invariant of a quiet ring - cells of positions [deq, enq)
// are full, the other cap - (enq - deq) are empty for their next lap - and if
// it does not hold, gives the fully published batches in [deq, enq) to the
// central cache and restarts the ring empty. The batches of the vanished
// threads' half-done operations are lost to the child, like those threads'
// caches. Nothing needs to happen before the fork or in the parent.
//
// Idle batches. A ring nobody draws from for a second (the background thread
// and thread-cache trims run transfer_cache_decay) gives all its batches to the
// central cache, so that spans can go back to the page heap after a peak;
// am_reset drains every ring. Decay and drain are ordinary consumers.
//
// Stats: the objects held are (enq - deq) * batch per class (deq read first, so
// the difference is never negative); exact when no operation is in flight.
// Hits and misses are counted with relaxed fetch_adds next to the position
// just written (the cache line is already exclusive to this core).
#include "heap/transfer_cache.h"

#include <atomic>
#include <bit>
#include <initializer_list>

#include "base/attributes.h"
#include "heap/central_cache.h"
#include "core/options.h"
#include "core/size_class.h"

namespace am {
namespace {

// The most objects' bytes one class may hold, and at least 2 slots (the ring
// needs two to tell "full" from "empty for the next lap"): 64 KiB is 64
// batches of 16 B objects, 16 of 64 B, 4 of 256 B, 2 of the classes from 512 B
// up (a batch is ~64 KiB there; from 36 KiB up one object). Every class full at
// once would be 12.2 MiB; in practice only the classes that threads pass
// between each other fill. When this was chosen, on xthread (test/bench, 2
// producer->consumer pairs, 16..512 B, 2 CPUs): 64 KiB per class handed over
// 98.6% of the batches for +1.1 MiB of peak RSS; 128 KiB 99.8% for +1.9 MiB;
// 256 KiB 99.9% for +4.4 MiB.
constexpr size_t kClassBytes = 64 * 1024;
constexpr uint32_t kMaxSlots = 64;

constexpr uint32_t slots_for(uint32_t cl) {
  const SizeClassInfo& c = kSizeClasses.info[cl];
  if (c.size == 0) return 2;
  size_t n = kClassBytes / (static_cast<size_t>(c.batch) * c.size);
  if (n < 2) n = 2;
  if (n > kMaxSlots) n = kMaxSlots;
  return static_cast<uint32_t>(std::bit_floor(n));
}

struct Cell {
  std::atomic<uint64_t> turn{0};
  void* batch = nullptr;  // guarded by turn (see the top of the file)
};

struct alignas(kCacheLine) Ring {
  // Producers' line.
  alignas(kCacheLine) std::atomic<uint64_t> enq{0};
  std::atomic<size_t> insert_hits{0};
  std::atomic<size_t> insert_misses{0};
  // Consumers' line.
  alignas(kCacheLine) std::atomic<uint64_t> deq{0};
  std::atomic<size_t> remove_hits{0};
  std::atomic<size_t> remove_misses{0};
  alignas(kCacheLine) Cell cells[kMaxSlots];
  // transfer_cache_decay: deq + 1 at its last pass, 0 before the first (written
  // by the one pass that runs).
  std::atomic<uint64_t> deq_seen{0};
};

constinit Ring g_rings[kNumClasses];
constinit std::atomic<uint64_t> g_last_decay_ns{0};

// A ring not drawn from between two decay passes (at least this far apart)
// gives all its batches to the central cache: batches parked by a thread that
// freed in a burst no other thread continued would otherwise pin their spans
// (and the other free objects in them) for the life of the process, and RSS
// could not fall back after a peak. A ring in use is drawn from many times a
// second.
constexpr uint64_t kDecayNs = 1'000'000'000;

struct SlotTable {
  uint32_t cap[kNumClasses];
};
constexpr SlotTable build_slots() {
  SlotTable t{};
  for (uint32_t cl = 0; cl < kNumClasses; ++cl) t.cap[cl] = slots_for(cl);
  return t;
}
constexpr SlotTable kSlots = build_slots();

inline int64_t diff(uint64_t a, uint64_t b) { return static_cast<int64_t>(a - b); }

bool ring_insert(Ring& r, uint64_t cap, void* batch) {
  const uint64_t mask = cap - 1;
  uint64_t pos = r.enq.load(std::memory_order_relaxed);
  for (;;) {
    Cell& c = r.cells[pos & mask];
    const uint64_t base = pos & ~mask;
    const int64_t d = diff(c.turn.load(std::memory_order_acquire), base);
    if (d == 0) {
      if (r.enq.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
        c.batch = batch;
        c.turn.store(base + 1, std::memory_order_release);
        return true;
      }
      // pos now holds the current enq.
    } else if (d < 0) {
      return false;  // full
    } else {
      pos = r.enq.load(std::memory_order_relaxed);
    }
  }
}

void* ring_remove(Ring& r, uint64_t cap) {
  const uint64_t mask = cap - 1;
  uint64_t pos = r.deq.load(std::memory_order_relaxed);
  for (;;) {
    Cell& c = r.cells[pos & mask];
    const uint64_t base = pos & ~mask;
    const int64_t d = diff(c.turn.load(std::memory_order_acquire), base + 1);
    if (d == 0) {
      if (r.deq.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
        void* batch = c.batch;
        c.turn.store(base + cap, std::memory_order_release);
        return batch;
      }
    } else if (d < 0) {
      return nullptr;  // empty
    } else {
      pos = r.deq.load(std::memory_order_relaxed);
    }
  }
}

inline void count(std::atomic<size_t>& c) { c.fetch_add(1, std::memory_order_relaxed); }

size_t ring_batches(const Ring& r) {
  uint64_t d = r.deq.load(std::memory_order_relaxed);
  uint64_t e = r.enq.load(std::memory_order_relaxed);
  return e > d ? static_cast<size_t>(e - d) : 0;
}

}  // namespace

bool transfer_cache_enabled() { return option(kOptTransferCache) != 0; }

uint32_t transfer_class_slots(uint32_t cl) { return kSlots.cap[cl]; }

int transfer_remove_range(uint32_t cl, void** head, int n, HeapStatus* status) {
  if (n == class_info(cl).batch && transfer_cache_enabled()) {
    Ring& r = g_rings[cl];
    if (void* b = ring_remove(r, kSlots.cap[cl])) {
      count(r.remove_hits);
      *head = b;
      return n;
    }
    count(r.remove_misses);
  }
  return central_remove_range(cl, head, n, status);
}

void transfer_insert_range(uint32_t cl, void* head, int n) {
  if (n == class_info(cl).batch && transfer_cache_enabled()) {
    Ring& r = g_rings[cl];
    if (ring_insert(r, kSlots.cap[cl], head)) {
      count(r.insert_hits);
      return;
    }
    count(r.insert_misses);
  }
  central_insert_range(cl, head, n);
}

bool transfer_has_batch(uint32_t cl) {
  return transfer_cache_enabled() && ring_batches(g_rings[cl]) != 0;
}

size_t transfer_cache_decay(uint64_t now_ns) {
  // One pass per interval, whoever calls: the CAS also keeps two passes from
  // running at once.
  uint64_t last = g_last_decay_ns.load(std::memory_order_relaxed);
  if (now_ns - last < kDecayNs ||
      !g_last_decay_ns.compare_exchange_strong(last, now_ns, std::memory_order_relaxed))
    return 0;
  size_t moved = 0;
  for (uint32_t cl = 1; cl < kNumClasses; ++cl) {
    Ring& r = g_rings[cl];
    const uint64_t d = r.deq.load(std::memory_order_relaxed);
    // Empty: nothing to give back. Only reads, so the rings of classes nobody
    // passes between threads stay untouched zero pages (97 rings are 118 KiB).
    if (r.enq.load(std::memory_order_relaxed) == d) continue;
    // Drawn from since the last pass recorded deq (or no pass saw it yet): keep.
    if (r.deq_seen.load(std::memory_order_relaxed) != d + 1) {
      r.deq_seen.store(d + 1, std::memory_order_relaxed);
      continue;
    }
    for (uint32_t i = 0; i < kSlots.cap[cl]; ++i) {
      void* b = ring_remove(r, kSlots.cap[cl]);
      if (b == nullptr) break;
      central_insert_range(cl, b, class_info(cl).batch);
      ++moved;
    }
    // Our own removals moved deq: the next pass must not count them as use.
    r.deq_seen.store(r.deq.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  return moved;
}

size_t transfer_class_objects(uint32_t cl) { return ring_batches(g_rings[cl]) * class_info(cl).batch; }

size_t transfer_cache_free_bytes() {
  size_t total = 0;
  for (uint32_t cl = 1; cl < kNumClasses; ++cl) total += transfer_class_objects(cl) * class_size(cl);
  return total;
}

TransferCounters transfer_cache_counters() {
  TransferCounters t;
  for (const Ring& r : g_rings) {
    t.hits += r.insert_hits.load(std::memory_order_relaxed) + r.remove_hits.load(std::memory_order_relaxed);
    t.misses += r.insert_misses.load(std::memory_order_relaxed) + r.remove_misses.load(std::memory_order_relaxed);
  }
  return t;
}

void transfer_cache_reset_counters() {
  for (Ring& r : g_rings) {
    // Stores only where there is something to clear: untouched rings stay untouched.
    for (std::atomic<size_t>* c : {&r.insert_hits, &r.insert_misses, &r.remove_hits, &r.remove_misses})
      if (c->load(std::memory_order_relaxed) != 0) c->store(0, std::memory_order_relaxed);
  }
}

void transfer_cache_drain_all() {
  for (uint32_t cl = 1; cl < kNumClasses; ++cl) {
    const int batch = class_info(cl).batch;
    // At most one ring's worth: producers running meanwhile cannot keep us here.
    for (uint32_t i = 0; i < kSlots.cap[cl]; ++i) {
      void* b = ring_remove(g_rings[cl], kSlots.cap[cl]);
      if (b == nullptr) break;
      central_insert_range(cl, b, batch);
    }
  }
}

void transfer_cache_after_fork_child() {
  // Only this thread exists; plain reads and writes of the atomics are enough.
  for (uint32_t cl = 1; cl < kNumClasses; ++cl) {
    Ring& r = g_rings[cl];
    const uint64_t cap = kSlots.cap[cl], mask = cap - 1;
    const uint64_t d = r.deq.load(std::memory_order_relaxed);
    const uint64_t e = r.enq.load(std::memory_order_relaxed);
    bool quiet = e - d <= cap;
    for (uint64_t p = d; quiet && p != d + cap; ++p) {
      const uint64_t turn = r.cells[p & mask].turn.load(std::memory_order_relaxed);
      quiet = turn == (p & ~mask) + (p < e ? 1 : 0);
    }
    if (quiet) continue;
    for (uint64_t p = d; p != e && p - d < cap; ++p) {
      Cell& c = r.cells[p & mask];
      if (c.turn.load(std::memory_order_relaxed) == (p & ~mask) + 1)
        central_insert_range(cl, c.batch, class_info(cl).batch);
    }
    for (Cell& c : r.cells) {
      c.turn.store(0, std::memory_order_relaxed);
      c.batch = nullptr;
    }
    r.enq.store(0, std::memory_order_relaxed);
    r.deq.store(0, std::memory_order_relaxed);
    r.deq_seen.store(0, std::memory_order_relaxed);
  }
}

}  // namespace am

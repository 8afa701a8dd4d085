// example_workload: an inference-server-like program for `scripts/run-example.sh`.
//
// Each of T worker threads runs S "decode steps". A step allocates 64-byte
// aligned activation buffers (4 KiB .. 16 MiB, as a transformer layer stack
// would), touches them, builds many small metadata objects (tensor names,
// shapes, a per-step attribute map), appends a KV-cache block that lives for a
// while, and frees the step's temporaries. Requests (strings) are produced by
// one thread and consumed by the workers, so small objects die in other
// threads. The program prints a checksum that does not depend on the
// allocator, so runs under different allocators can be compared.
//
// Usage: example_workload [threads=4] [steps=200]
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <condition_variable>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

struct Request {
  uint64_t id;
  std::string prompt;
  std::vector<int> tokens;
};

class RequestQueue {
 public:
  void push(std::unique_ptr<Request> r) {
    std::lock_guard<std::mutex> g(mu_);
    q_.push_back(std::move(r));
    cv_.notify_one();
  }
  std::unique_ptr<Request> pop() {
    std::unique_lock<std::mutex> g(mu_);
    cv_.wait(g, [&] { return !q_.empty(); });
    auto r = std::move(q_.front());
    q_.pop_front();
    return r;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Request>> q_;
};

struct AlignedFree {
  void operator()(uint8_t* p) const { free(p); }
};
using Buffer = std::unique_ptr<uint8_t, AlignedFree>;

Buffer make_buffer(size_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, 64, bytes) != 0) throw std::bad_alloc();
  return Buffer(static_cast<uint8_t*>(p));
}

uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ull; }

// Which worker serves which request depends on scheduling, so each step's hash
// depends only on its request, and the checksum is their sum.
uint64_t run_worker(int steps, RequestQueue& queue) {
  uint64_t sum = 0;
  std::deque<Buffer> kv_cache;  // blocks live for up to 32 steps
  for (int step = 0; step < steps; ++step) {
    std::unique_ptr<Request> req = queue.pop();
    uint64_t h = 0xcbf29ce484222325ull;
    uint64_t rng = 88172645463325252ull + req->id * 7919;
    auto next = [&] {
      rng ^= rng << 13;
      rng ^= rng >> 7;
      rng ^= rng << 17;
      return rng;
    };
    h = mix(h, req->tokens.size());
    // Activations: a few large, many medium.
    std::vector<Buffer> acts;
    for (int layer = 0; layer < 12; ++layer) {
      size_t bytes = size_t{4096} << (next() % 13);  // 4 KiB .. 16 MiB
      Buffer b = make_buffer(bytes);
      for (size_t off = 0; off < bytes; off += 4096) b.get()[off] = static_cast<uint8_t>(layer + off);
      h = mix(h, b.get()[bytes / 2 & ~size_t{4095}]);
      acts.push_back(std::move(b));
    }
    // Metadata: names, shapes, attributes (small, short-lived objects).
    std::unordered_map<std::string, std::vector<int64_t>> shapes;
    std::map<std::string, std::string> attrs;
    for (int t = 0; t < 200; ++t) {
      std::string name = "layer." + std::to_string(t % 12) + ".tensor." + std::to_string(t);
      shapes[name] = {1, static_cast<int64_t>(next() % 4096), 64};
      attrs[name + ".dtype"] = (t & 1) ? "float16" : "bfloat16";
    }
    h = mix(h, shapes.size() + attrs.size());
    kv_cache.push_back(make_buffer(64 * 1024));
    memset(kv_cache.back().get(), step & 0xff, 64 * 1024);
    if (kv_cache.size() > 32) kv_cache.pop_front();
    sum += h;
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 4;
  int steps = argc > 2 ? atoi(argv[2]) : 200;
  if (threads < 1 || steps < 1) {
    fprintf(stderr, "usage: %s [threads>=1] [steps>=1]\n", argv[0]);
    return 2;
  }
  RequestQueue queue;
  std::thread producer([&] {
    for (int i = 0; i < threads * steps; ++i) {
      auto r = std::make_unique<Request>();
      r->id = static_cast<uint64_t>(i);
      r->prompt = "request " + std::to_string(i) + ": summarise the following document";
      r->tokens.assign(16 + i % 512, i);
      queue.push(std::move(r));
    }
  });
  std::vector<uint64_t> sums(static_cast<size_t>(threads));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] { sums[static_cast<size_t>(t)] = run_worker(steps, queue); });
  producer.join();
  uint64_t total = 0;
  for (int t = 0; t < threads; ++t) {
    workers[static_cast<size_t>(t)].join();
    total += sums[static_cast<size_t>(t)];
  }
  printf("example_workload: %d threads x %d steps, checksum %016llx\n", threads, steps,
         static_cast<unsigned long long>(total));
  return 0;
}

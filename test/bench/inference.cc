// inference — simulated LLM inference steps on several threads (one request
// stream per thread).  Per step, with a random sequence length:
//   * activation buffers for 12 layers (qkv, attention scores, MLP hidden,
//     output, norm stats) plus the logits: 4 KiB..16 MiB each, 64-byte aligned,
//     through posix_memalign and aligned_alloc, written once per 4 KiB page;
//   * the metadata an eager framework creates per op: node names (heap
//     std::strings), shapes and strides (small std::vectors), attribute maps
//     (std::map nodes), input lists, a growing output string;
// and all of it is freed at the end of the step.  Buffers and metadata are
// checked before they are freed.
//   usage: inference [scale] [threads]
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.h"

namespace {

constexpr int kLayers = 12;
constexpr size_t kHidden = 256, kHeads = 4, kVocab = 8000;
constexpr size_t kMin = 4 << 10, kMax = 16 << 20;

struct Buf {
  void* p;
  size_t n;
  unsigned char tag;
};

struct Node {
  std::string name;
  std::string op;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
  std::vector<int> inputs;
  std::map<std::string, std::string> attrs;
};

size_t clamp_round(size_t n) {
  if (n < kMin) n = kMin;
  if (n > kMax) n = kMax;
  return (n + 63) & ~size_t(63);
}

void* alloc_aligned(size_t n, bool use_posix) {
  void* p = nullptr;
  if (use_posix) {
    if (posix_memalign(&p, 64, n) != 0) p = nullptr;
  } else {
    p = std::aligned_alloc(64, n);
  }
  bench::check_alloc(p, "aligned allocation returned NULL");
  if (uintptr_t(p) & 63) bench::die("buffer not 64-byte aligned", p);
  return p;
}

void add_node(std::vector<Node>& g, int layer, const char* op, size_t seq, size_t width) {
  Node n;
  n.name = "model.layers." + std::to_string(layer) + "." + op + ".output_activation";
  n.op = op;
  n.shape = {1, int64_t(seq), int64_t(width)};
  n.strides = {int64_t(seq * width), int64_t(width), 1};
  int self = int(g.size());
  for (int k = 1; k <= 2 && self - k >= 0; k++) n.inputs.push_back(self - k);
  n.attrs["dtype"] = "float32_contiguous_layout";
  n.attrs["device"] = "cpu:0/numa-node-0/socket-0";
  n.attrs["layer"] = "transformer_block_" + std::to_string(layer);
  g.push_back(std::move(n));
}

void check_graph(const std::vector<Node>& g, size_t seq) {
  for (const Node& n : g) {
    if (n.shape.size() != 3 || n.shape[1] != int64_t(seq) || n.strides[2] != 1 ||
        n.attrs.size() != 3 || n.name.compare(0, 13, "model.layers.") != 0 ||
        n.attrs.at("dtype") != "float32_contiguous_layout")
      bench::die("metadata corrupted", &n);
  }
}

void step(bench::Rng& rng, uint64_t step_no, std::string& transcript) {
  const size_t seq = rng.range(32, 512);
  std::vector<Buf> bufs;
  std::vector<Node> graph;
  bool posix = step_no & 1;
  auto act = [&](size_t bytes) {
    size_t n = clamp_round(bytes);
    void* p = alloc_aligned(n, posix);
    posix = !posix;
    unsigned char t = static_cast<unsigned char>(rng.next()) | 1;
    bench::touch_pages(p, n, t);
    bufs.push_back({p, n, t});
  };
  for (int l = 0; l < kLayers; l++) {
    act(2 * seq * 4);  // layer-norm statistics (clamped up to 4 KiB)
    add_node(graph, l, "input_layernorm", seq, kHidden);
    act(3 * kHidden * seq * 4);  // fused q/k/v projection
    add_node(graph, l, "self_attn.qkv_proj", seq, 3 * kHidden);
    act(kHeads * seq * seq * 4);  // attention scores
    add_node(graph, l, "self_attn.scores_softmax", seq, kHeads * seq);
    act(kHidden * seq * 4);  // attention output
    add_node(graph, l, "self_attn.o_proj", seq, kHidden);
    act(4 * kHidden * seq * 4);  // MLP hidden
    add_node(graph, l, "mlp.gate_up_proj_act", seq, 4 * kHidden);
    act(kHidden * seq * 4);  // MLP output / residual
    add_node(graph, l, "mlp.down_proj_residual", seq, kHidden);
  }
  act(kVocab * seq * 4);  // logits (up to 16 MiB)
  add_node(graph, kLayers, "lm_head.logits", seq, kVocab);
  transcript += " token_" + std::to_string(rng.below(kVocab));

  check_graph(graph, seq);
  for (const Buf& b : bufs) {
    bench::verify_pages(b.p, b.n, b.tag, "activation buffer lost its contents");
    std::free(b.p);
  }
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args a = bench::parse_args(argc, argv);
  const uint64_t per = bench::scaled(300, a.scale, 8) / a.threads + 1;
  double t0 = bench::now_s();
  std::vector<std::thread> th;
  std::vector<size_t> out_len(a.threads);
  for (int i = 0; i < a.threads; i++)
    th.emplace_back([&, i] {
      bench::Rng rng(uint64_t(i) + 11);
      std::string transcript;
      for (uint64_t s = 0; s < per; s++) step(rng, s, transcript);
      out_len[i] = transcript.size();
    });
  for (auto& t : th) t.join();
  double t1 = bench::now_s();
  for (size_t n : out_len)
    if (n == 0) bench::die("a worker produced no tokens", nullptr);
  bench::report("inference: per-step activations 4 KiB..16 MiB (64 B aligned) + metadata",
                per * a.threads, t1 - t0);
  return 0;
}

"""gen_cpp — writes a generated C++17 source for the `g++ -O2` row of
scripts/bench.sh.  The source instantiates many templates over std::map,
std::vector, std::string and lambdas (what makes a compiler allocate), and
main() prints a deterministic checksum, so the built program can be run to
check the compiler's output.   usage: python3 gen_cpp.py NFUNCS > out.cc
"""
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
out = []
w = out.append
w("#include <algorithm>\n#include <cstdint>\n#include <cstdio>\n#include <map>\n"
  "#include <numeric>\n#include <string>\n#include <tuple>\n#include <unordered_map>\n"
  "#include <vector>\n#include <sstream>\n\n")
w("template <int K, typename T> struct Box { T v; Box(T x) : v(x) {} "
  "template <typename U> auto map(U f) const { return Box<K + 1, decltype(f(v))>(f(v)); } };\n\n")
for i in range(n):
    w(f"""
struct Rec{i} {{ std::string name; std::vector<int> vals; std::map<std::string, long> idx; }};

template <typename T, int N>
static T fold{i}(const std::vector<T>& v) {{
  T acc{{}};
  for (std::size_t k = 0; k < v.size(); k++) acc = acc * T(31) + v[k] + T(N);
  return acc;
}}

static std::uint64_t work{i}(std::uint64_t seed) {{
  std::vector<Rec{i}> recs;
  for (int k = 0; k < 40 + {i % 7}; k++) {{
    Rec{i} r;
    r.name = "rec{i}_" + std::to_string(k * {i + 3} + seed % 97);
    for (int j = 0; j < 10; j++) r.vals.push_back((k * 7 + j * {i + 1}) % 1009);
    for (int j = 0; j < 5; j++) r.idx[r.name + "/" + std::to_string(j)] = k * j + {i};
    recs.push_back(std::move(r));
  }}
  std::sort(recs.begin(), recs.end(), [](const Rec{i}& a, const Rec{i}& b) {{
    return std::tie(a.name, a.vals) < std::tie(b.name, b.vals); }});
  std::unordered_map<std::string, std::uint64_t> h;
  for (const auto& r : recs) {{
    std::uint64_t s = fold{i}<std::uint64_t, {i % 13}>(std::vector<std::uint64_t>(r.vals.begin(), r.vals.end()));
    for (const auto& [k, v] : r.idx) s ^= std::hash<std::string>{{}}(k) + std::uint64_t(v);
    h[r.name] += s;
  }}
  auto b = Box<0, std::uint64_t>(seed).map([](std::uint64_t x) {{ return x * {2 * i + 1}u; }})
               .map([](std::uint64_t x) {{ return double(x % 1000) / 7.0; }})
               .map([](double d) {{ std::ostringstream o; o << d; return o.str(); }});
  std::uint64_t acc = b.v.size();
  for (const auto& [k, v] : h) acc += v % 1000003 + k.size();
  return acc;
}}
""")
w("\nint main() {\n  std::uint64_t total = 0;\n")
for i in range(n):
    w(f"  total = total * 1000003 + work{i}({i});\n")
w('  std::printf("total=%llu\\n", (unsigned long long)total);\n  return 0;\n}\n')
sys.stdout.write("".join(out))

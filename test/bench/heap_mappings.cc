// heap_mappings: how many mappings (lines of /proc/self/maps) a heap adds per
// GiB (issue 13, item 1: reserve, then commit). Preload any allocator.
//
// usage: heap_mappings OBJECT_BYTES GIB [TOUCH_EVERY]
//   heap_mappings 61440 2        a 2 GiB heap of 60 KiB objects, each touched once
//   heap_mappings 16777216 64 16 a 64 GiB virtual heap of 16 MiB buffers, one in
//                                16 touched (sparse: the machine may have less)
// Prints: objects=<n> size=<bytes> mappings <before> -> <after>: <per GiB> per GiB
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

static size_t mappings() {
  std::ifstream f("/proc/self/maps");
  std::string line;
  size_t n = 0;
  while (std::getline(f, line)) ++n;
  return n;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: heap_mappings OBJECT_BYTES GIB [TOUCH_EVERY]\n");
    return 2;
  }
  size_t obj = strtoull(argv[1], nullptr, 10), gib = strtoull(argv[2], nullptr, 10);
  size_t touch_every = argc > 3 ? strtoull(argv[3], nullptr, 10) : 1;
  if (obj == 0 || gib == 0 || touch_every == 0) return 2;
  size_t count = (gib << 30) / obj;
  std::vector<char*> v;
  v.reserve(count);
  size_t before = mappings();
  for (size_t i = 0; i < count; ++i) {
    char* p = static_cast<char*>(malloc(obj));
    if (p == nullptr) {
      printf("malloc failed at object %zu\n", i);
      break;
    }
    if (i % touch_every == 0) p[obj / 2] = 1;
    v.push_back(p);
  }
  size_t after = mappings();
  printf("objects=%zu size=%zu mappings %zu -> %zu: %.1f per GiB\n", v.size(), obj, before, after,
         static_cast<double>(after - before) / static_cast<double>(gib));
  for (char* p : v) free(p);
  return 0;
}

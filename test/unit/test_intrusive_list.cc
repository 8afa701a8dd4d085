// IntrusiveList (lib/base/intrusive_list.h): push_front, remove from any
// position, pop_front, size, clear, and the "links are null when unlinked" rule.
#include <catch2/catch.hpp>
#include <vector>

#include "base/intrusive_list.h"

using am::IntrusiveList;

namespace {

struct Node {
  int v = 0;
  Node* list_prev = nullptr;
  Node* list_next = nullptr;
};

// Walks the list forwards and backwards, checking the links agree.
std::vector<int> contents(const IntrusiveList<Node>& l) {
  std::vector<int> out;
  Node* prev = nullptr;
  for (Node* n = l.front(); n; n = n->list_next) {
    REQUIRE(n->list_prev == prev);
    out.push_back(n->v);
    prev = n;
    REQUIRE(out.size() <= l.size());
  }
  REQUIRE(out.size() == l.size());
  return out;
}

// A list must be usable as a constant-initialised global.
constinit IntrusiveList<Node> g_list;

}  // namespace

TEST_CASE("IntrusiveList: empty", "[intrusive_list]") {
  IntrusiveList<Node> l;
  CHECK(l.empty());
  CHECK(l.size() == 0);
  CHECK(l.front() == nullptr);
  CHECK(l.pop_front() == nullptr);
  CHECK(g_list.empty());
}

TEST_CASE("IntrusiveList: push_front is LIFO", "[intrusive_list]") {
  Node n[4];
  for (int i = 0; i < 4; ++i) n[i].v = i;
  IntrusiveList<Node> l;
  for (Node& x : n) l.push_front(&x);
  CHECK_FALSE(l.empty());
  CHECK(l.size() == 4);
  CHECK(l.front() == &n[3]);
  CHECK(contents(l) == std::vector<int>{3, 2, 1, 0});
}

TEST_CASE("IntrusiveList: remove from head, middle, tail", "[intrusive_list]") {
  Node n[5];
  for (int i = 0; i < 5; ++i) n[i].v = i;
  IntrusiveList<Node> l;
  for (Node& x : n) l.push_front(&x);  // 4 3 2 1 0

  l.remove(&n[2]);  // middle
  CHECK(contents(l) == std::vector<int>{4, 3, 1, 0});
  CHECK(n[2].list_prev == nullptr);
  CHECK(n[2].list_next == nullptr);

  l.remove(&n[4]);  // head
  CHECK(l.front() == &n[3]);
  CHECK(contents(l) == std::vector<int>{3, 1, 0});
  CHECK(n[4].list_prev == nullptr);
  CHECK(n[4].list_next == nullptr);

  l.remove(&n[0]);  // tail
  CHECK(contents(l) == std::vector<int>{3, 1});
  CHECK(n[1].list_next == nullptr);

  l.remove(&n[3]);
  l.remove(&n[1]);  // last element
  CHECK(l.empty());
  CHECK(l.size() == 0);
  CHECK(l.front() == nullptr);

  // Removed nodes can be pushed again, to this or another list.
  IntrusiveList<Node> other;
  other.push_front(&n[2]);
  l.push_front(&n[0]);
  CHECK(contents(other) == std::vector<int>{2});
  CHECK(contents(l) == std::vector<int>{0});
}

TEST_CASE("IntrusiveList: pop_front", "[intrusive_list]") {
  Node n[3];
  for (int i = 0; i < 3; ++i) n[i].v = i;
  IntrusiveList<Node> l;
  for (Node& x : n) l.push_front(&x);
  CHECK(l.pop_front() == &n[2]);
  CHECK(n[2].list_next == nullptr);
  CHECK(n[2].list_prev == nullptr);
  CHECK(l.size() == 2);
  CHECK(l.front()->list_prev == nullptr);
  CHECK(l.pop_front() == &n[1]);
  CHECK(l.pop_front() == &n[0]);
  CHECK(l.pop_front() == nullptr);
  CHECK(l.empty());
}

TEST_CASE("IntrusiveList: clear forgets every element", "[intrusive_list]") {
  Node n[3];
  IntrusiveList<Node> l;
  for (Node& x : n) l.push_front(&x);
  l.clear();
  CHECK(l.empty());
  CHECK(l.size() == 0);
  CHECK(l.front() == nullptr);
  l.push_front(&n[1]);
  CHECK(l.size() == 1);
  CHECK(n[1].list_next == nullptr);
}

TEST_CASE("IntrusiveList: many elements, interleaved operations", "[intrusive_list]") {
  std::vector<Node> nodes(1000);
  IntrusiveList<Node> l;
  for (int i = 0; i < 1000; ++i) {
    nodes[i].v = i;
    l.push_front(&nodes[i]);
  }
  // Remove every third node, then check order and size.
  for (int i = 0; i < 1000; i += 3) l.remove(&nodes[i]);
  std::vector<int> want;
  for (int i = 999; i >= 0; --i)
    if (i % 3 != 0) want.push_back(i);
  CHECK(l.size() == want.size());
  CHECK(contents(l) == want);
  size_t popped = 0;
  while (l.pop_front()) ++popped;
  CHECK(popped == want.size());
  CHECK(l.empty());
}

// SpinLock (lib/base/spinlock.h): mutual exclusion, on both of its acquiring
// steps. While glibc says the process has one thread (__libc_single_threaded)
// lock() takes the word with a plain load and store; once a thread exists it
// exchanges. The first test starts in a process with one thread (nothing in
// this file runs before it), so the plain step takes the lock, and the thread
// it then starts must still wait for it.
#include <catch2/catch.hpp>
#include <sys/single_threaded.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "base/spinlock.h"

using am::LockRank;
using am::SpinLock;

TEST_CASE("a lock taken while the process had one thread excludes the thread started after", "[spinlock]") {
  REQUIRE(__libc_single_threaded);  // the plain step takes it
  static SpinLock lock{LockRank::kCentral};
  lock.lock();
  std::atomic<bool> entered{false};
  std::thread t([&] {
    lock.lock();
    entered.store(true);
    lock.unlock();
  });
  CHECK_FALSE(__libc_single_threaded);
  usleep(100 * 1000);
  CHECK_FALSE(entered.load());  // still waiting for the holder
  CHECK_FALSE(lock.try_lock());
  lock.unlock();
  t.join();
  CHECK(entered.load());
  CHECK(lock.try_lock());
  lock.unlock();
}

TEST_CASE("two threads counting under one lock lose no increment", "[spinlock]") {
  static SpinLock lock{LockRank::kCentral};
  constexpr int kPerThread = 200000;
  long counter = 0;  // plain: only the lock orders the increments
  auto work = [&] {
    for (int i = 0; i < kPerThread; ++i) {
      lock.lock();
      counter = counter + 1;
      lock.unlock();
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  CHECK(counter == 2L * kPerThread);
}

/* stack_depth.c DEPTH N — N malloc(100)/free pairs from DEPTH frames below
 * main. Run by scripts/stack-depth-cost.sh under callgrind with every
 * allocation sampled (AMMALLOC_PROFILE_SAMPLE=1) to count the instructions a
 * sampled allocation costs at each AMMALLOC_PROFILE_STACK_DEPTH. */
#include <stdlib.h>

static void* volatile sink;

__attribute__((noinline)) static int descend(int depth, int n) {
  if (depth > 0) {
    int r = descend(depth - 1, n);
    __asm__ volatile("" ::: "memory"); /* no tail call: one frame per level */
    return r;
  }
  for (int i = 0; i < n; ++i) {
    sink = malloc(100);
    free(sink);
  }
  return 0;
}

int main(int argc, char** argv) {
  int depth = argc > 1 ? atoi(argv[1]) : 300;
  int n = argc > 2 ? atoi(argv[2]) : 2000;
  return descend(depth, n);
}

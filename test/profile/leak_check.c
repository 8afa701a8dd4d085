/* leak_check: for the leak checker (test/profile/leak_check.sh).
 *   leak_check          clean: a still-reachable global cache, everything else freed
 *   leak_check leak     plus one true leak of 4444 bytes (the pointer is dropped)
 * Prints "done" on stdout (buffered: it must survive the checker's exit). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void* volatile g_cache; /* reachable until exit: not a leak */
char** volatile g_table;

__attribute__((noinline)) void leak_site(void) {
  void* volatile p = malloc(4444);
  memset(p, 1, 4444);
  p = NULL;
}

__attribute__((noinline)) void cache_site(void) {
  g_cache = malloc(1000);
  g_table = calloc(64, sizeof(char*));
  for (int i = 0; i < 64; ++i) g_table[i] = strdup("an entry of the cache"); /* reachable via g_table */
}

/* Overwrites the dead stack below main, where a copy of the dropped pointer
 * could otherwise survive until the check. */
__attribute__((noinline)) void clobber_stack(void) {
  volatile char pad[64 * 1024];
  for (size_t i = 0; i < sizeof pad; ++i) pad[i] = 0;
}

int main(int argc, char** argv) {
  cache_site();
  for (int i = 0; i < 10000; ++i) free(malloc(16 + i % 3000));
  if (argc > 1 && strcmp(argv[1], "leak") == 0) leak_site();
  /* A program that rewrites its environment (the way setproctitle reuses the
   * strings' memory) and changes directory: the leak profile must still go
   * where AMMALLOC_HEAP_PROFILE / the working directory said at start. */
  if (argc > 1 && strcmp(argv[1], "leak-rewrite") == 0) {
    char* v = getenv("AMMALLOC_HEAP_PROFILE");
    if (v != NULL) memset(v, 'x', strlen(v));
    setenv("AMMALLOC_HEAP_PROFILE", "/nonexistent/elsewhere", 1);
    if (chdir("/") != 0) return 2;
    leak_site();
  }
  clobber_stack();
  printf("done\n");
  return 0;
}

// The fork module (fork.cc): installs the allocator's only pthread_atfork
// handlers, from init phase 2 (front/init.cc).
#pragma once

namespace am {
void fork_install_handlers();
}  // namespace am

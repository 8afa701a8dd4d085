// fork() support: pthread_atfork handlers that take every allocator lock.
#pragma once

namespace am {
void fork_install_handlers();
void init_lock_for_fork();
void init_unlock_after_fork(bool child);
}  // namespace am

// fork() support: pthread_atfork handlers that take every allocator lock.
#pragma once

namespace am {
void fork_install_handlers();
}  // namespace am

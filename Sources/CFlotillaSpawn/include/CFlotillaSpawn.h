#ifndef C_FLOTILLA_SPAWN_H
#define C_FLOTILLA_SPAWN_H

#include <sys/types.h>

/// How the child's standard streams are set up: -1 keeps the parent's descriptor, -2 opens
/// /dev/null, any other value is a descriptor of the parent's dup2'ed onto the stream.
#define FLOTILLA_SPAWN_INHERIT (-1)
#define FLOTILLA_SPAWN_DEVNULL (-2)

/// Starts `path` with `argv` and `envp` (both NULL-terminated) and stores its pid.
///
/// In the child, between fork and exec: `death_signal` (when non-zero) is set with
/// PR_SET_PDEATHSIG, so the kernel sends it when the spawning thread's process dies (and at once
/// when the parent is already gone); the child gets a process group of its own when `new_group`
/// is non-zero; its signal mask is emptied and SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGPIPE are
/// reset to their default action; descriptors other than 0, 1 and 2 are those without
/// close-on-exec, as with exec.
///
/// Returns 0, or the errno of what failed (fork, or in the child dup2/exec, reported through a
/// close-on-exec pipe).
int flotilla_spawn(const char *path, char *const argv[], char *const envp[],
                   int stdin_fd, int stdout_fd, int stderr_fd,
                   int new_group, int death_signal, pid_t *pid_out);

/// pipe2(O_CLOEXEC), which Swift's Glibc module does not offer.
int flotilla_pipe_cloexec(int fds[2]);

/// The device and inode of an open descriptor (fd >= 0) or of a path (fd < 0): 0, or errno.
/// (struct stat does not reach Swift cleanly through Glibc and Foundation together.)
int flotilla_file_identity(int fd, const char *path, unsigned long long *device, unsigned long long *inode);

#endif

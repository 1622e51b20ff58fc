#define _GNU_SOURCE
#include "CFlotillaSpawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int flotilla_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC) == 0 ? 0 : errno;
}

static void child_fail(int report, int error) {
    ssize_t ignored = write(report, &error, sizeof error);
    (void)ignored;
    _exit(127);
}

static void child_stream(int report, int target, int source) {
    if (source == FLOTILLA_SPAWN_INHERIT) {
        return;
    }
    if (source == FLOTILLA_SPAWN_DEVNULL) {
        int null_fd = open("/dev/null", target == 0 ? O_RDONLY : O_WRONLY);
        if (null_fd < 0) {
            child_fail(report, errno);
        }
        source = null_fd;
    }
    if (source != target && dup2(source, target) < 0) {
        child_fail(report, errno);
    }
}

int flotilla_spawn(const char *path, char *const argv[], char *const envp[],
                   int stdin_fd, int stdout_fd, int stderr_fd,
                   int new_group, int death_signal, pid_t *pid_out) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        return errno;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int error = errno;
        close(report[0]);
        close(report[1]);
        return error;
    }
    if (pid == 0) {
        // Only async-signal-safe calls from here to exec.
#ifdef __linux__
        if (death_signal != 0) {
            if (prctl(PR_SET_PDEATHSIG, death_signal) != 0) {
                child_fail(report[1], errno);
            }
            // The parent may have died before the call above: then nobody will send the signal.
            if (getppid() != parent) {
                _exit(127);
            }
        }
#endif
        if (new_group && setpgid(0, 0) != 0) {
            child_fail(report[1], errno);
        }
        child_stream(report[1], 0, stdin_fd);
        child_stream(report[1], 1, stdout_fd);
        child_stream(report[1], 2, stderr_fd);
        int defaults[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE};
        for (unsigned i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
            signal(defaults[i], SIG_DFL);
        }
        sigset_t empty;
        sigemptyset(&empty);
        sigprocmask(SIG_SETMASK, &empty, NULL);
        execve(path, argv, envp);
        child_fail(report[1], errno);
    }
    close(report[1]);
    int error = 0;
    ssize_t count;
    do {
        count = read(report[0], &error, sizeof error);
    } while (count < 0 && errno == EINTR);
    close(report[0]);
    if (count == (ssize_t)sizeof error) {
        // The child failed before exec and has exited: reap it here, its pid is not returned.
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        return error;
    }
    *pid_out = pid;
    return 0;
}

int flotilla_file_identity(int fd, const char *path, unsigned long long *device, unsigned long long *inode) {
    struct stat status;
    int result = fd >= 0 ? fstat(fd, &status) : stat(path, &status);
    if (result != 0) {
        return errno;
    }
    *device = (unsigned long long)status.st_dev;
    *inode = (unsigned long long)status.st_ino;
    return 0;
}

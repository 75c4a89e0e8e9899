/* A watched x86_64 process that makes syscalls through the 32-bit entry (int 0x80).
 *
 * Waits for a line on stdin, then: writes "native-1\n" natively; writes
 * "compat-write\n" with the 32-bit write (eax=4, really written to stdout, unseen by
 * the monitor); makes a 32-bit getpid (eax=20, x86_64's writev number) with rdi=1,
 * rsi=an iovec of "forged-writev\n", rdx=1, the registers a native writev(1, iov, 1)
 * would have; writes "native-2\n" natively; then waits for stdin to close.
 * argv[1] is the test's tag (for --watch), unused here. */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

static long int80(long nr, long bx, long cx, long dx, long di, long si) {
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(bx), "c"(cx), "d"(dx), "D"(di), "S"(si)
                     : "memory", "r8", "r9", "r10", "r11");
    return ret;
}

int main(void) {
    char line[256];
    if (read(0, line, sizeof line) <= 0)
        return 1;
    /* The 32-bit ABI takes 32-bit pointers: memory below 4 GiB. */
    char *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (low == MAP_FAILED)
        return 2;
    const char *compat = "compat-write\n";
    memcpy(low, compat, strlen(compat));
    struct iovec *iov = (struct iovec *)(low + 1024);
    char *forged = low + 2048;
    strcpy(forged, "forged-writev\n");
    iov->iov_base = forged;
    iov->iov_len = strlen(forged);

    if (write(1, "native-1\n", 9) != 9)
        return 3;
    if (int80(4, 1, (long)(uintptr_t)low, (long)strlen(compat), 0, 0) != (long)strlen(compat))
        return 4;
    /* getpid through the 32-bit entry, with a native writev's registers around it. */
    if (int80(20, 0, 0, 1, 1, (long)(uintptr_t)iov) <= 0)
        return 5;
    if (write(1, "native-2\n", 9) != 9)
        return 6;
    while (read(0, line, sizeof line) > 0) {
    }
    return 0;
}

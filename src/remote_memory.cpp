// Remote memory access for one process. process_vm_readv is one syscall for any size; writes
// go through /proc/PID/mem because it honours ptrace's right to write over read-only text.
#include "leakcheck/remote_memory.hpp"

#include <fcntl.h>
#include <cerrno>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "leakcheck/error.hpp"
#include "leakcheck/kernel_features.hpp"

namespace leakcheck {

RemoteMemory::RemoteMemory(pid_t pid) : pid_(pid) {
    const std::string path = "/proc/" + std::to_string(pid) + "/mem";
    mem_fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (mem_fd_ < 0) throw Error::from_errno("cannot open " + path);
}

RemoteMemory::~RemoteMemory() {
    if (mem_fd_ >= 0) ::close(mem_fd_);
}

std::size_t RemoteMemory::read(RemoteAddr addr, std::span<std::uint8_t> out) const noexcept {
    std::size_t done = 0;
    ++reads_;
    const bool vm_readv = kernel_features().process_vm_readv;
    while (done < out.size()) {
        if (!vm_readv) {
            const ssize_t m = ::pread(mem_fd_, out.data() + done, out.size() - done, static_cast<off_t>(addr + done));
            if (m <= 0) break;
            done += static_cast<std::size_t>(m);
            continue;
        }
        iovec local{out.data() + done, out.size() - done};
        iovec remote{reinterpret_cast<void*>(addr + done), out.size() - done};
        const ssize_t n = ::process_vm_readv(pid_, &local, 1, &remote, 1, 0);
        if (n > 0) {
            done += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == ENOSYS) kernel_features().process_vm_readv = false;  // before 3.2
        // process_vm_readv stops at the first unreadable page; /proc/PID/mem can read pages
        // that are mapped without read permission (e.g. PROT_NONE guard pages are still an
        // error there, which is what we want).
        const ssize_t m = ::pread(mem_fd_, out.data() + done, out.size() - done,
                                  static_cast<off_t>(addr + done));
        if (m <= 0) break;
        done += static_cast<std::size_t>(m);
    }
    return done;
}

std::size_t RemoteMemory::read_once(RemoteAddr addr, std::span<std::uint8_t> out) const noexcept {
    if (out.empty()) return 0;
    ++reads_;
    if (kernel_features().process_vm_readv) {
        iovec local{out.data(), out.size()};
        iovec remote{reinterpret_cast<void*>(addr), out.size()};
        const ssize_t n = ::process_vm_readv(pid_, &local, 1, &remote, 1, 0);
        if (n >= 0) return static_cast<std::size_t>(n);
        if (errno != ENOSYS) return 0;
        kernel_features().process_vm_readv = false;
    }
    const ssize_t m = ::pread(mem_fd_, out.data(), out.size(), static_cast<off_t>(addr));
    return m > 0 ? static_cast<std::size_t>(m) : 0;
}

void RemoteMemory::read_many(std::span<Range> ranges) const noexcept {
    constexpr std::size_t kMaxIov = 1024;  // IOV_MAX on Linux
    std::size_t i = 0;
    while (i < ranges.size()) {
        if (!kernel_features().process_vm_readv) {
            ranges[i].got = read(ranges[i].addr, ranges[i].out);
            ++i;
            continue;
        }
        iovec local[kMaxIov];
        iovec remote[kMaxIov];
        const std::size_t n = std::min(kMaxIov, ranges.size() - i);
        for (std::size_t k = 0; k < n; ++k) {
            local[k] = {ranges[i + k].out.data(), ranges[i + k].out.size()};
            remote[k] = {reinterpret_cast<void*>(ranges[i + k].addr), ranges[i + k].out.size()};
        }
        ++reads_;
        const ssize_t got = ::process_vm_readv(pid_, local, n, remote, n, 0);
        std::size_t left = got > 0 ? static_cast<std::size_t>(got) : 0;
        // The call stops at the first range it cannot read whole: the ranges before it are
        // complete, that one is finished with read()'s retries, and the batch goes on after it.
        std::size_t k = 0;
        for (; k < n && left >= ranges[i + k].out.size(); ++k) {
            ranges[i + k].got = ranges[i + k].out.size();
            left -= ranges[i + k].out.size();
        }
        if (k < n) {
            Range& r = ranges[i + k];
            r.got = left + read(r.addr + left, r.out.subspan(left));
            ++k;
        }
        i += k;
    }
}

std::string RemoteMemory::read_string(RemoteAddr addr, std::size_t max) const {
    std::string result;
    std::uint8_t chunk[256];
    while (result.size() < max) {
        // Read up to the end of the page first, so a string near an unmapped page still reads.
        const std::size_t to_page_end = 4096 - ((addr + result.size()) & 4095);
        const std::size_t want = std::min({sizeof chunk, to_page_end, max - result.size()});
        const std::size_t got = read(addr + result.size(), {chunk, want});
        for (std::size_t i = 0; i < got; ++i) {
            if (chunk[i] == 0) return result;
            result.push_back(static_cast<char>(chunk[i]));
        }
        if (got < want) break;
    }
    return result;
}

bool RemoteMemory::write(RemoteAddr addr, std::span<const std::uint8_t> data) const noexcept {
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::pwrite(mem_fd_, data.data() + done, data.size() - done,
                                   static_cast<off_t>(addr + done));
        if (n <= 0) return false;
        done += static_cast<std::size_t>(n);
    }
    return true;
}

}  // namespace leakcheck

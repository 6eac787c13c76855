// Reading and writing the traced process's memory: bulk reads with process_vm_readv, writes
// through /proc/PID/mem (which, unlike process_vm_writev, may write read-only code of a tracee).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "leakcheck/types.hpp"

namespace leakcheck {

class RemoteMemory {
public:
    explicit RemoteMemory(pid_t pid);
    ~RemoteMemory();
    RemoteMemory(const RemoteMemory&) = delete;
    RemoteMemory& operator=(const RemoteMemory&) = delete;

    // Reads up to out.size() bytes; returns how many were read (short at an unmapped page).
    std::size_t read(RemoteAddr addr, std::span<std::uint8_t> out) const noexcept;
    // One attempt at a speculative bulk read that may run past the end of the mapping (a stack
    // snapshot): what a single process_vm_readv returns, without read()'s retries at the first
    // unreadable page. Returns how many bytes were read.
    std::size_t read_once(RemoteAddr addr, std::span<std::uint8_t> out) const noexcept;
    // True when all of out was read.
    bool read_exact(RemoteAddr addr, std::span<std::uint8_t> out) const noexcept {
        return read(addr, out) == out.size();
    }
    template <class T>
    bool read_value(RemoteAddr addr, T& value) const noexcept {
        return read_exact(addr, {reinterpret_cast<std::uint8_t*>(&value), sizeof(T)});
    }
    // Many ranges in as few syscalls as possible (one process_vm_readv takes up to 1024): for
    // scanning thousands of small blocks. Each range's `got` says how many of its bytes were
    // read (short at an unreadable page).
    struct Range {
        RemoteAddr addr = 0;
        std::span<std::uint8_t> out;
        std::size_t got = 0;
    };
    void read_many(std::span<Range> ranges) const noexcept;
    // Reads a NUL-terminated string of at most max bytes.
    std::string read_string(RemoteAddr addr, std::size_t max = 4096) const;

    // Writes all of data (code pages included); false on failure.
    bool write(RemoteAddr addr, std::span<const std::uint8_t> data) const noexcept;

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    // Calls of read() and read_once() so far (each one syscall or more): what -v reports.
    [[nodiscard]] std::uint64_t reads() const noexcept { return reads_; }

private:
    pid_t pid_;
    int mem_fd_ = -1;
    mutable std::uint64_t reads_ = 0;
};

}  // namespace leakcheck

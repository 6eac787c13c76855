// Executable scratch memory inside the target for out-of-line instruction copies, mapped by an
// injected mmap near the code it serves (rip-relative operands reach only +-2 GiB). Chunks are
// never unmapped: a signal frame may hold a pc inside one (the kernel keeps its uprobe
// trampoline page for the same reason). Each chunk starts with a marker and a syscall stub.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <string_view>
#include <utility>
#include <vector>

#include "leakcheck/target.hpp"

namespace leakcheck {

class ScratchSpace {
public:
    static constexpr std::size_t kChunkSize = 64 * 1024;
    static constexpr std::string_view kMarker = "leakcheck scratch v2";

    explicit ScratchSpace(Target& target) : target_(target) {}

    // Copies code serving the instruction at `from` into scratch memory within
    // arch::kNearRange of it and returns its address. May inject an mmap into `tid`, which must
    // be in a ptrace-stop. Throws when no room can be found or mapped near `from`.
    RemoteAddr place(Tid tid, RemoteAddr from, std::span<const std::uint8_t> code);
    // The code placed earlier (by this leakcheck or, after adopt_existing, an earlier one) for
    // the instruction at `from`, or 0. Reusing it keeps repeated attaches from filling chunks.
    [[nodiscard]] RemoteAddr find_slot(RemoteAddr from) const noexcept {
        auto it = slots_.find(from);
        return it == slots_.end() ? 0 : it->second;
    }

    // Address of a "syscall; int3" stub, or 0 before the first chunk exists.
    [[nodiscard]] RemoteAddr stub() const noexcept { return chunks_.empty() ? 0 : chunks_.front().start + kStubOffset; }
    [[nodiscard]] std::size_t chunk_count() const noexcept { return chunks_.size(); }
    // After exec the old address space is gone.
    // A forked child's copy: the same chunks at the same addresses, in its own memory.
    void copy_from(const ScratchSpace& parent) {
        chunks_ = parent.chunks_;
        slots_ = parent.slots_;
    }
    void forget_all() noexcept {
        chunks_.clear();
        slots_.clear();
    }
    // Takes over the chunks an earlier leakcheck left in the process (found by their marker),
    // so attaching again and again maps nothing new. Returns how many were found.
    std::size_t adopt_existing();
    // Deferred signals collected by injected syscalls; taken by the caller.
    std::vector<int> take_deferred_signals() { return std::exchange(deferred_, {}); }

private:
    static constexpr std::size_t kUsedOffset = 24;  // uint32: bytes of the chunk in use
    static constexpr std::size_t kStubOffset = 32;
    static constexpr std::size_t kFirstSlot = 64;
    // Each slot: the instruction address it serves (8 bytes), its code length (4), padding to
    // 16, then the code; so a later attach can find its slots again.
    static constexpr std::size_t kSlotHeader = 16;
    struct Chunk {
        RemoteAddr start;
        std::size_t used;
    };

    Chunk& chunk_near(Tid tid, RemoteAddr near, std::size_t size);
    std::size_t adopt_chunk(RemoteAddr start);
    RemoteAddr map_chunk(Tid tid, RemoteAddr near);
    RemoteAddr find_gap(RemoteAddr near) const;

    Target& target_;
    std::vector<Chunk> chunks_;
    std::unordered_map<RemoteAddr, RemoteAddr> slots_;  // instruction address -> its code
    std::vector<int> deferred_;
};

}  // namespace leakcheck

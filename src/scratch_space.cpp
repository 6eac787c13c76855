// Scratch chunks near the code they serve. The first chunk is mapped through a syscall
// instruction written for a moment over the stopped thread's own pc (only done while no other
// thread can run it: at exec, or with all threads stopped); later chunks use the stub in the
// first one.
#include "leakcheck/scratch_space.hpp"

#include <sys/mman.h>
#include <sys/syscall.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "leakcheck/error.hpp"
#include "leakcheck/kernel_features.hpp"
#include "leakcheck/remote_syscall.hpp"

namespace leakcheck {
namespace {

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

bool near_enough(RemoteAddr a, RemoteAddr b) noexcept {
    const RemoteAddr d = a > b ? a - b : b - a;
    return d + ScratchSpace::kChunkSize < arch::kNearRange;
}

}  // namespace

RemoteAddr ScratchSpace::place(Tid tid, RemoteAddr from, std::span<const std::uint8_t> code) {
    const std::size_t length = kSlotHeader + ((code.size() + 15) & ~std::size_t{15});
    Chunk& chunk = chunk_near(tid, from, length);
    const RemoteAddr slot = chunk.start + chunk.used;
    std::vector<std::uint8_t> bytes(length, arch::kBreakpointByte);
    const auto code_length = static_cast<std::uint32_t>(code.size());
    std::memcpy(bytes.data(), &from, sizeof from);
    std::memcpy(bytes.data() + sizeof from, &code_length, sizeof code_length);
    std::memcpy(bytes.data() + kSlotHeader, code.data(), code.size());
    if (!target_.memory().write(slot, bytes))
        throw Error::from_errno("cannot write scratch code at 0x" + (std::ostringstream() << std::hex << slot).str());
    chunk.used += length;
    // Record it in the chunk, so a later attach never hands out a slot that is in use.
    const auto used = static_cast<std::uint32_t>(chunk.used);
    target_.memory().write(chunk.start + kUsedOffset, {reinterpret_cast<const std::uint8_t*>(&used), sizeof used});
    slots_[from] = slot + kSlotHeader;
    return slot + kSlotHeader;
}

std::size_t ScratchSpace::adopt_chunk(RemoteAddr lo) {
    std::array<std::uint8_t, kFirstSlot> header{};
    if (!target_.memory().read_exact(lo, header)) return 0;
    if (std::memcmp(header.data(), kMarker.data(), kMarker.size()) != 0) return 0;
    std::uint32_t used = 0;
    std::memcpy(&used, header.data() + kUsedOffset, sizeof used);
    if (used < kFirstSlot || used > kChunkSize) return 0;
    if (std::any_of(chunks_.begin(), chunks_.end(), [&](const Chunk& c) { return c.start == lo; })) return 0;
    chunks_.push_back({lo, used});
    // Index its slots: each starts with the instruction address it serves.
    std::vector<std::uint8_t> body(used);
    if (!target_.memory().read_exact(lo, body)) return 1;
    for (std::size_t at = kFirstSlot; at + kSlotHeader <= used;) {
        RemoteAddr from = 0;
        std::uint32_t code_length = 0;
        std::memcpy(&from, body.data() + at, sizeof from);
        std::memcpy(&code_length, body.data() + at + sizeof from, sizeof code_length);
        const std::size_t length = kSlotHeader + ((code_length + 15) & ~std::size_t{15});
        if (code_length == 0 || at + length > used) break;
        slots_[from] = lo + at + kSlotHeader;
        at += length;
    }
    return 1;
}

std::size_t ScratchSpace::adopt_existing() {
    std::ifstream maps("/proc/" + std::to_string(target_.pid()) + "/maps");
    std::string line;
    std::size_t found = 0;
    while (std::getline(maps, line)) {
        RemoteAddr lo = 0, hi = 0;
        char perms[8] = {};
        unsigned long long offset = 0, inode = 0;
        char dev[16] = {};
        if (std::sscanf(line.c_str(), "%lx-%lx %7s %llx %15s %llu", &lo, &hi, perms, &offset, dev, &inode) != 6) continue;
        // Adjacent chunks may have been merged into one mapping by the kernel: look at each.
        if ((hi - lo) % kChunkSize != 0 || std::string_view(perms) != "r-xp" || inode != 0) continue;
        for (RemoteAddr start = lo; start < hi; start += kChunkSize) found += adopt_chunk(start);
    }
    return found;
}

ScratchSpace::Chunk& ScratchSpace::chunk_near(Tid tid, RemoteAddr near, std::size_t size) {
    for (Chunk& c : chunks_)
        if (c.used + size <= kChunkSize && near_enough(c.start, near)) return c;
    const RemoteAddr start = map_chunk(tid, near);
    // Marker (for a later attach to recognise and reuse) and the permanent syscall stub.
    std::array<std::uint8_t, kFirstSlot> header{};
    std::memcpy(header.data(), kMarker.data(), kMarker.size());
    const auto first = static_cast<std::uint32_t>(kFirstSlot);
    std::memcpy(header.data() + kUsedOffset, &first, sizeof first);
    const auto sc = arch::syscall_instruction();
    std::memcpy(header.data() + kStubOffset, sc.data(), sc.size());
    header[kStubOffset + sc.size()] = arch::kBreakpointByte;
    if (!target_.memory().write(start, header)) throw Error::from_errno("cannot initialise scratch memory");
    chunks_.push_back({start, kFirstSlot});
    return chunks_.back();
}

RemoteAddr ScratchSpace::map_chunk(Tid tid, RemoteAddr near) {
    const RemoteAddr hint = find_gap(near);
    if (hint == 0) throw Error("no free address range near 0x" + (std::ostringstream() << std::hex << near).str() + " for scratch code");

    // Without a stub yet, borrow the thread's current instruction bytes for a moment.
    RemoteAddr stub_addr = stub();
    std::vector<std::uint8_t> saved;
    arch::Registers regs;
    if (stub_addr == 0) {
        if (!target_.get_regs(tid, regs)) throw Error::from_errno("cannot read registers");
        stub_addr = regs.pc();
        saved.resize(arch::syscall_instruction().size() + arch::kBreakpointSize);
        if (!target_.memory().read_exact(stub_addr, saved)) throw Error("cannot read code at the thread's pc");
        std::vector<std::uint8_t> stub_code(arch::syscall_instruction().begin(), arch::syscall_instruction().end());
        stub_code.push_back(arch::kBreakpointByte);
        if (!target_.memory().write(stub_addr, stub_code)) throw Error("cannot write a syscall stub");
    }
    std::int64_t result = 0;
    {
        RemoteSyscall sys(target_, tid, stub_addr);
        result = sys.call(SYS_mmap, hint, kChunkSize, PROT_READ | PROT_EXEC,
                          MAP_PRIVATE | MAP_ANONYMOUS | (kernel_features().map_fixed_noreplace ? MAP_FIXED_NOREPLACE : 0), static_cast<std::uint64_t>(-1), 0);
        for (int s : sys.deferred_signals()) deferred_.push_back(s);
    }
    if (!saved.empty()) target_.memory().write(stub_addr, saved);
    if (result < 0 && result > -4096)
        throw Error("mmap of scratch memory in the target failed: " + std::string(std::strerror(static_cast<int>(-result))));
    const auto addr = static_cast<RemoteAddr>(result);
    // Kernels before 4.17 take MAP_FIXED_NOREPLACE as a plain hint.
    if (!near_enough(addr, near)) throw Error("scratch memory was mapped out of reach of the code");
    return addr;
}

// The free range closest below `near` (below, because mappings of libraries grow downwards
// and the heap grows upwards from the executable), else the closest above.
RemoteAddr ScratchSpace::find_gap(RemoteAddr near) const {
    std::ifstream maps("/proc/" + std::to_string(target_.pid()) + "/maps");
    std::vector<std::pair<RemoteAddr, RemoteAddr>> used;
    std::string line;
    while (std::getline(maps, line)) {
        RemoteAddr lo = 0, hi = 0;
        if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2) {
            // Leave room for the heap and stack to grow.
            if (line.find("[heap]") != std::string::npos) hi += 64ULL << 20;
            if (line.find("[stack]") != std::string::npos) lo = lo > (64ULL << 20) ? lo - (64ULL << 20) : 0;
            used.emplace_back(lo, hi);
        }
    }
    std::sort(used.begin(), used.end());
    constexpr RemoteAddr kMinAddr = 0x10000;
    constexpr RemoteAddr kMaxAddr = 0x7ffffffff000ULL;
    RemoteAddr best = 0, best_distance = ~0ULL;
    RemoteAddr prev_end = kMinAddr;
    auto consider = [&](RemoteAddr gap_lo, RemoteAddr gap_hi) {
        if (gap_hi <= gap_lo || gap_hi - gap_lo < kChunkSize) return;
        gap_lo = (gap_lo + 0xfff) & ~RemoteAddr{0xfff};
        gap_hi &= ~RemoteAddr{0xfff};
        if (gap_hi <= gap_lo || gap_hi - gap_lo < kChunkSize) return;
        RemoteAddr candidate = gap_hi <= near ? gap_hi - kChunkSize
                                              : std::max(gap_lo, std::min(near & ~RemoteAddr{0xfff}, gap_hi - kChunkSize));
        if (!near_enough(candidate, near)) return;
        // Any room below `near` beats all room above: above an executable is where its heap
        // (brk) grows.
        const RemoteAddr distance = candidate < near ? near - candidate : (candidate - near) + (1ULL << 62);
        if (distance < best_distance) best = candidate, best_distance = distance;
    };
    for (const auto& [lo, hi] : used) {
        if (lo > prev_end) consider(prev_end, lo);
        prev_end = std::max(prev_end, hi);
    }
    consider(prev_end, kMaxAddr);
    return best;
}

}  // namespace leakcheck

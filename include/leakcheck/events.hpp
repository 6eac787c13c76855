// The seam between event sources (the int3 engine today) and everything downstream: the ledger,
// the reports and the prompt consume only these plain events, never ptrace stops.
#pragma once

#include <cstdint>
#include <span>

#include "leakcheck/types.hpp"

namespace leakcheck {

// What created a block; kept so mismatched releases can be told apart later.
enum class AllocKind : std::uint8_t {
    kMalloc,
    kCalloc,
    kRealloc,
    kMemalign,  // posix_memalign, aligned_alloc, memalign, valloc, pvalloc
    kNew,
    kNewArray,
};

enum class FreeKind : std::uint8_t {
    kFree,
    kRealloc,  // the old block of a successful realloc, or realloc(p, 0)
    kDelete,
    kDeleteArray,
    // One function that is free and operator delete at once (mimalloc and tcmalloc export
    // one as an alias of the other): it may rightly release either kind of block.
    kAny,
};

const char* to_string(AllocKind kind) noexcept;
const char* to_string(FreeKind kind) noexcept;

struct AllocEvent {
    RemoteAddr addr;
    std::uint64_t size;
    StackId stack;
    Tid tid;
    AllocKind kind;
    std::uint64_t time_ns;
};

struct FreeEvent {
    RemoteAddr addr;
    StackId stack;  // 0 when the free's stack was not captured
    Tid tid;
    FreeKind kind;
    std::uint64_t time_ns;
    // Called from inside the allocator's own library (glibc's tcache handing its cached chunks
    // back when a thread exits, say), not by the program.
    bool internal = false;
};

// A live block whose size changed where it is (jemalloc's xallocx, mimalloc's mi_expand).
struct ResizeEvent {
    RemoteAddr addr;
    std::uint64_t size;  // the new size
    Tid tid;
    std::uint64_t time_ns;
};

// A new mapping of the address space (mmap, mremap's new range, shmat) and the release of a
// range (munmap, mremap's old range, shmdt). Ranges are page-granular in the kernel; sizes
// here are as the program asked.
enum class MapKind : std::uint8_t {
    kMmap,
    kSharedMemory,  // System V shmat
};

struct MapEvent {
    RemoteAddr addr;
    std::uint64_t size;
    StackId stack;
    Tid tid;
    MapKind kind;
    std::uint64_t time_ns;
};

struct UnmapEvent {
    RemoteAddr addr;
    std::uint64_t size;  // 0 for shmdt: the whole segment attached at addr
    Tid tid;
    std::uint64_t time_ns;
};

// Receives events. intern_stack turns a call stack (innermost first: the allocator's caller's
// return address, then outward) into a StackId that events carry.
class EventSink {
public:
    virtual ~EventSink() = default;
    virtual StackId intern_stack(std::span<const RemoteAddr> pcs) = 0;
    virtual void on_alloc(const AllocEvent& event) = 0;
    virtual void on_free(const FreeEvent& event) = 0;
    // Whether a release of addr by this family is worth its stack (it would be a finding).
    virtual bool wants_free_stack(RemoteAddr, FreeKind) const { return false; }
    // A release recorded at a call's entry (realloc's old block) did not happen: the call
    // failed and the block is still live.
    virtual void on_release_undone(RemoteAddr) {}
    virtual void on_resize(const ResizeEvent&) {}
    virtual void on_map(const MapEvent&) {}
    virtual void on_unmap(const UnmapEvent&) {}
    // The process exec'd: its old image, and every block in it, is gone.
    virtual void on_exec() {}
};

}  // namespace leakcheck

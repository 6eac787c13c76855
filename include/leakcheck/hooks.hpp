// The table of traced allocator functions and what each call means for the ledger.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "leakcheck/events.hpp"

namespace leakcheck {

enum class HookKind : std::uint8_t {
    kMalloc,         // (size)
    kCalloc,         // (nmemb, size)
    kRealloc,        // (ptr, size)
    kReallocArray,   // (ptr, nmemb, size)
    kPosixMemalign,  // (memptr, align, size) -> int; the block comes back through *memptr
    kAlignedAlloc,   // (align, size): aligned_alloc, memalign
    kValloc,         // (size)
    kPvalloc,        // (size), rounded up to whole pages
    kNew,            // (size [, align] [, nothrow])
    kNewArray,
    kReallocf,       // (ptr, size): mimalloc's mi_reallocf, which releases ptr even when it fails
    kStrdup,         // (str [, n]) -> a copy; its size is the copy's length + 1, read at return
    kXallocx,        // jemalloc (ptr, size, extra, flags) -> usable size: resizes ptr in place
    kExpand,         // mimalloc (ptr, size) -> ptr, or NULL when it cannot grow in place
    kFree,           // (ptr)
    kDelete,         // (ptr [, size] [, align] [, nothrow])
    kDeleteArray,
    // The address space: mappings the program makes and never removes leak too.
    kMmap,           // (addr, length, ...) -> addr or MAP_FAILED
    kMremap,         // (old, old_size, new_size, ...) -> addr or MAP_FAILED
    kShmat,          // (shmid, addr, flags) -> addr or (void*)-1
    kMunmap,         // (addr, length)
    kShmdt,          // (addr)
    // Not allocators: points where frames below the caller are known to be gone, so calls
    // pending in them (abandoned by longjmp or an exception) must be dropped.
    kSetjmp,         // __sigsetjmp: its return site is where a longjmp lands
    kCatch,          // __cxa_begin_catch: a catch handler runs in its caller's frame
};

struct HookSpec {
    std::string_view symbol;
    HookKind kind;
    // A C-level allocator name that builds of an allocator with a symbol prefix rename
    // (jemalloc's --with-jemalloc-prefix=je_: je_malloc, je_mallocx...); see --symbols-prefix.
    bool prefixable = false;
};

// --hook's KIND names: malloc, calloc, realloc, free, new, new[], delete, delete[],
// aligned_alloc, posix_memalign, mmap, munmap. nullopt for anything else.
std::optional<HookKind> hook_kind_from_name(std::string_view name) noexcept;

// Every function leakcheck hooks, in the order it resolves them: the C library's and C++'s,
// jemalloc's, mimalloc's and tcmalloc's own APIs, mappings, markers. Where two names are
// one function (tcmalloc's tc_malloc is its malloc), the first keeps the site.
std::span<const HookSpec> hook_specs() noexcept;

// Releases are seen at entry only; allocations at entry (arguments) and return (result).
[[nodiscard]] bool is_release(HookKind kind) noexcept;
// realloc and its kin: the old block is released at entry (see Tracer::on_entry).
[[nodiscard]] bool releases_at_entry(HookKind kind) noexcept;
// xallocx and mi_expand: a block changes size where it is.
[[nodiscard]] bool is_resize(HookKind kind) noexcept;
// kSetjmp and kCatch: watched for the stack's sake, no event of their own.
[[nodiscard]] bool is_marker(HookKind kind) noexcept;
// mmap and friends, as opposed to the heap allocator.
[[nodiscard]] bool is_mapping(HookKind kind) noexcept;
// The size of System V shared memory segment `shmid` (from /proc/sysvipc/shm), or 0.
[[nodiscard]] std::uint64_t sysv_shm_size(std::uint64_t shmid);
[[nodiscard]] FreeKind free_kind(HookKind kind) noexcept;
[[nodiscard]] AllocKind alloc_kind(HookKind kind) noexcept;

// The outcome of one allocation call, from its arguments at entry and its result at return.
struct CallOutcome {
    RemoteAddr freed = 0;      // a block released by the call (realloc's old block), else 0
    std::uint64_t freed_size = 0;  // mremap: the old range's length
    RemoteAddr allocated = 0;  // the new block, else 0 (failure)
    std::uint64_t size = 0;
    RemoteAddr resized = 0;    // a block resized in place to `size`, else 0
};
// `args` are the integer arguments at entry; `result` the return register; `out_ptr` the value
// read back through posix_memalign's first argument (only read when result is 0).
CallOutcome outcome_of(HookKind kind, std::span<const std::uint64_t, 3> args, std::uint64_t result,
                       std::uint64_t out_ptr, std::uint64_t page_size) noexcept;

}  // namespace leakcheck

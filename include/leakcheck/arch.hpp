// What the rest of leakcheck needs to know about the machine: registers of the calling
// convention, the breakpoint instruction, out-of-line instruction relocation and the syscall
// instruction. Implemented per architecture under arch/<name>/; nothing outside arch/ includes
// <sys/user.h>.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "leakcheck/types.hpp"

namespace leakcheck::arch {

// The general-purpose registers of one stopped thread, as PTRACE_GETREGS returns them.
class Registers {
public:
    static constexpr std::size_t kWords = 27;  // sizeof(struct user_regs_struct) / 8 on x86-64

    [[nodiscard]] RemoteAddr pc() const noexcept;
    void set_pc(RemoteAddr pc) noexcept;
    [[nodiscard]] RemoteAddr sp() const noexcept;
    void set_sp(RemoteAddr sp) noexcept;
    // Integer argument n (0-based) of a function call at its entry point.
    [[nodiscard]] std::uint64_t arg(unsigned n) const noexcept;
    void set_arg(unsigned n, std::uint64_t value) noexcept;
    // The integer return value at a call's return site.
    [[nodiscard]] std::uint64_t result() const noexcept;
    // Syscall number register, and the "restart syscall" marker: a thread stopped inside a
    // syscall must have it cleared before its pc is moved (else the kernel restarts the call).
    void set_syscall_number(std::int64_t nr) noexcept;
    // The fourth syscall argument (differs from the fourth function argument on x86-64).
    void set_syscall_arg3(std::uint64_t value) noexcept;
    void cancel_syscall_restart() noexcept;
    // True when the thread stopped inside a syscall (its result not yet stored).
    [[nodiscard]] bool in_syscall() const noexcept;
    // After an interrupted syscall returned one of the kernel's internal "restart" codes,
    // set up the registers the way the kernel's own restart would (pc back to the syscall
    // instruction), for `original` the registers at the stop inside the syscall.
    void emulate_syscall_restart(const Registers& original) noexcept;
    [[nodiscard]] std::uint64_t frame_pointer() const noexcept;
    // At a thread's exit stop: it ends alone, by the thread-exit syscall (pthread_exit), not
    // by the process's exit (exit_group, a fatal signal) that takes every thread with it.
    [[nodiscard]] bool in_thread_exit() const noexcept;

    // DWARF register number (as libunwind numbers them) to value; false when not a GP register.
    bool dwarf_reg(int regnum, std::uint64_t& value) const noexcept;

    [[nodiscard]] void* raw() noexcept { return words_.data(); }
    [[nodiscard]] const void* raw() const noexcept { return words_.data(); }

private:
    std::array<std::uint64_t, kWords> words_{};
};

inline constexpr std::uint8_t kBreakpointByte = 0xCC;
inline constexpr std::size_t kBreakpointSize = 1;
// The longest instruction on this architecture; reads of code for relocation take this many.
inline constexpr std::size_t kMaxInstructionSize = 15;
// How many bytes relocate() may produce at most for one instruction.
inline constexpr std::size_t kMaxRelocatedSize = 64;
// Distance within which out-of-line code must sit from the code it serves (rip-relative reach).
inline constexpr std::uint64_t kNearRange = 0x7fff0000ULL;

// Offset of the pc in the ptrace user area (PTRACE_POKEUSER writes it alone).
std::size_t pc_user_offset() noexcept;

// The syscall instruction, and its length (the pc after it is the stub's address plus this).
std::span<const std::uint8_t> syscall_instruction() noexcept;

// The instruction at `from` (bytes in `code`, at least one whole instruction; more may follow),
// rewritten to run at `to` and then continue where the original would have: at from + length,
// or at its branch target. Relative branches, calls and rip-relative operands are re-targeted.
// Returns nullopt, with the reason in *why, for what cannot be relocated safely (syscall, int3,
// privileged or segment-prefixed forms, rsp-relative indirect calls, an operand out of reach).
struct Relocated {
    std::vector<std::uint8_t> code;     // at most kMaxRelocatedSize bytes
    std::size_t original_length = 0;    // length of the instruction at `from`
};
std::optional<Relocated> relocate(std::span<const std::uint8_t> code, RemoteAddr from,
                                  RemoteAddr to, std::string* why);

}  // namespace leakcheck::arch

// x86-64 System V calling convention over the ptrace register block (struct user_regs_struct).
#include <sys/user.h>

#include <cstddef>

#include "leakcheck/arch.hpp"

namespace leakcheck::arch {
namespace {

static_assert(sizeof(user_regs_struct) == Registers::kWords * sizeof(std::uint64_t));

constexpr std::size_t word_of(std::size_t byte_offset) { return byte_offset / sizeof(std::uint64_t); }

#define LC_REG(name) word_of(offsetof(user_regs_struct, name))
constexpr std::size_t kArgWords[] = {LC_REG(rdi), LC_REG(rsi), LC_REG(rdx),
                                     LC_REG(rcx), LC_REG(r8),  LC_REG(r9)};
// DWARF numbering for x86-64: rax rdx rcx rbx rsi rdi rbp rsp r8..r15 rip.
constexpr std::size_t kDwarfWords[] = {
    LC_REG(rax), LC_REG(rdx), LC_REG(rcx), LC_REG(rbx), LC_REG(rsi), LC_REG(rdi),
    LC_REG(rbp), LC_REG(rsp), LC_REG(r8),  LC_REG(r9),  LC_REG(r10), LC_REG(r11),
    LC_REG(r12), LC_REG(r13), LC_REG(r14), LC_REG(r15), LC_REG(rip)};
constexpr std::size_t kRip = LC_REG(rip);
constexpr std::size_t kRsp = LC_REG(rsp);
constexpr std::size_t kRax = LC_REG(rax);
constexpr std::size_t kOrigRax = LC_REG(orig_rax);
constexpr std::size_t kRbp = LC_REG(rbp);
constexpr std::size_t kR10 = LC_REG(r10);
#undef LC_REG

}  // namespace

RemoteAddr Registers::pc() const noexcept { return words_[kRip]; }
void Registers::set_pc(RemoteAddr pc) noexcept { words_[kRip] = pc; }
RemoteAddr Registers::sp() const noexcept { return words_[kRsp]; }
void Registers::set_sp(RemoteAddr sp) noexcept { words_[kRsp] = sp; }
std::uint64_t Registers::arg(unsigned n) const noexcept { return n < 6 ? words_[kArgWords[n]] : 0; }
void Registers::set_arg(unsigned n, std::uint64_t value) noexcept {
    if (n < 6) words_[kArgWords[n]] = value;
}
std::uint64_t Registers::result() const noexcept { return words_[kRax]; }
void Registers::set_syscall_number(std::int64_t nr) noexcept {
    words_[kRax] = static_cast<std::uint64_t>(nr);
}
void Registers::set_syscall_arg3(std::uint64_t value) noexcept { words_[kR10] = value; }
// The kernel decides whether to restart an interrupted syscall from orig_rax; -1 means "none".
void Registers::cancel_syscall_restart() noexcept { words_[kOrigRax] = static_cast<std::uint64_t>(-1); }
bool Registers::in_syscall() const noexcept { return static_cast<std::int64_t>(words_[kOrigRax]) >= 0; }
bool Registers::in_thread_exit() const noexcept { return words_[kOrigRax] == 60; }  // __NR_exit

void Registers::emulate_syscall_restart(const Registers& original) noexcept {
    constexpr std::int64_t kRestartSys = -512, kRestartNoIntr = -513, kRestartNoHand = -514, kRestartBlock = -516;
    constexpr std::uint64_t kRestartSyscallNr = 219;  // __NR_restart_syscall
    const auto rax = static_cast<std::int64_t>(words_[kRax]);
    if (rax == kRestartSys || rax == kRestartNoIntr || rax == kRestartNoHand) {
        words_[kRax] = original.words_[kOrigRax];
        words_[kRip] -= 2;
    } else if (rax == kRestartBlock) {
        words_[kRax] = kRestartSyscallNr;
        words_[kRip] -= 2;
    }
    words_[kOrigRax] = static_cast<std::uint64_t>(-1);
}

std::uint64_t Registers::frame_pointer() const noexcept { return words_[kRbp]; }

std::size_t pc_user_offset() noexcept { return offsetof(user_regs_struct, rip); }

bool Registers::dwarf_reg(int regnum, std::uint64_t& value) const noexcept {
    if (regnum < 0 || regnum >= static_cast<int>(std::size(kDwarfWords))) return false;
    value = words_[kDwarfWords[regnum]];
    return true;
}

}  // namespace leakcheck::arch

// A read-only view of one ELF file: its type, program headers, the exception-frame index and
// its symbols. Mapped, never parsed eagerly; every offset is checked, so a truncated or
// malformed file gives "not found" answers, never a crash.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "leakcheck/types.hpp"

namespace leakcheck {

struct ElfSymbol {
    std::string_view name;
    FileAddr value = 0;
    std::uint64_t size = 0;
    bool is_function = false;
};

struct ElfSegment {
    FileAddr vaddr = 0;
    std::uint64_t offset = 0;
    std::uint64_t filesz = 0;
    std::uint64_t memsz = 0;
    std::uint32_t flags = 0;
};

class ElfImage {
public:
    // nullptr (and *why set) when the file cannot be opened or is not a 64-bit ELF.
    static std::unique_ptr<ElfImage> open(const std::string& path, std::string* why = nullptr);
    ~ElfImage();
    ElfImage(const ElfImage&) = delete;
    ElfImage& operator=(const ElfImage&) = delete;

    [[nodiscard]] bool is_shared_object() const noexcept;   // ET_DYN
    [[nodiscard]] bool has_interpreter() const noexcept;    // PT_INTERP: a dynamic executable
    [[nodiscard]] const std::vector<ElfSegment>& loads() const noexcept { return loads_; }
    [[nodiscard]] std::optional<ElfSegment> eh_frame_hdr() const noexcept { return eh_frame_hdr_; }
    // The .eh_frame section (from the section headers; vaddr, offset and size), which a static
    // link without --eh-frame-hdr has without the index above.
    [[nodiscard]] std::optional<ElfSegment> eh_frame() const noexcept { return eh_frame_; }
    [[nodiscard]] std::optional<ElfSegment> dynamic() const noexcept { return dynamic_; }

    // A defined global or weak symbol of .dynsym with its default version (what the dynamic
    // linker would bind a reference to).
    [[nodiscard]] std::optional<ElfSymbol> find_dynamic(std::string_view name) const;
    // .symtab first, then .dynsym; any defined symbol of that name.
    [[nodiscard]] std::optional<ElfSymbol> find_any(std::string_view name) const;
    [[nodiscard]] bool has_symtab() const noexcept { return symtab_.count != 0; }
    // The defined function symbol whose range holds `addr` (.symtab first, then .dynsym; a
    // global name before a local alias of the same function).
    [[nodiscard]] std::optional<ElfSymbol> function_containing(FileAddr addr) const;
    // Why part of the file had to be ignored (its section header table runs past the end of
    // the file, say), or "" for a sound file.
    [[nodiscard]] const std::string& damage() const noexcept { return damage_; }

    // The file's bytes backing virtual address range [addr, addr+out.size()); false if any part
    // is not backed by the file.
    bool read_vaddr(FileAddr addr, std::span<std::uint8_t> out) const noexcept;
    // The file's bytes of a PT_LOAD segment (filesz of them), or nullptr if the file is short.
    [[nodiscard]] const std::uint8_t* file_bytes(const ElfSegment& segment) const noexcept;

private:
    struct SymbolTable {
        std::uint64_t offset = 0;  // of the Elf64_Sym array
        std::uint64_t count = 0;
        std::uint64_t strtab_offset = 0;
        std::uint64_t strtab_size = 0;
        std::uint64_t versym_offset = 0;  // 0 when absent
    };

    ElfImage() = default;
    bool parse(std::string* why);
    std::optional<ElfSymbol> lookup(const SymbolTable& table, std::string_view name,
                                    bool default_version_only) const;
    std::optional<ElfSymbol> containing(const SymbolTable& table, FileAddr addr) const;
    template <class T>
    const T* at(std::uint64_t offset, std::uint64_t count = 1) const noexcept;

    const std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
    std::uint16_t type_ = 0;
    bool interp_ = false;
    std::vector<ElfSegment> loads_;
    std::optional<ElfSegment> eh_frame_hdr_;
    std::optional<ElfSegment> eh_frame_;
    std::optional<ElfSegment> dynamic_;
    SymbolTable dynsym_;
    SymbolTable symtab_;
    std::string damage_;
};

}  // namespace leakcheck

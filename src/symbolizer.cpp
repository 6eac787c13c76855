// Symbolizer: asks LLVM's symbolizer for function, file:line and inlining of a PC in a module's
// file, normalises what it answers for "unknown", and caches the result per PC.
#include "leakcheck/symbolizer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <llvm/DebugInfo/DWARF/DWARFContext.h>
#include <llvm/DebugInfo/Symbolize/Symbolize.h>
#include <llvm/Demangle/Demangle.h>
#include <llvm/Object/ObjectFile.h>
#include <llvm/Support/Error.h>

#include <unordered_map>
#include <utility>

#include "leakcheck/elf_image.hpp"

namespace leakcheck {
namespace {

// Points fd 2 at /dev/null for as long as it lives.
class StderrSilenced {
public:
    StderrSilenced() {
        saved_ = ::dup(2);
        const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (saved_ >= 0 && null >= 0) ::dup2(null, 2);
        if (null >= 0) ::close(null);
    }
    ~StderrSilenced() {
        if (saved_ < 0) return;
        ::dup2(saved_, 2);
        ::close(saved_);
    }
    StderrSilenced(const StderrSilenced&) = delete;
    StderrSilenced& operator=(const StderrSilenced&) = delete;

private:
    int saved_ = -1;
};

llvm::symbolize::LLVMSymbolizer::Options symbolizer_options() {
    llvm::symbolize::LLVMSymbolizer::Options opts;
    // Linkage names demangle to the full "ns::Klass::method(int)", and the symbol table
    // names functions of modules without debug info.
    opts.PrintFunctions = llvm::symbolize::FunctionNameKind::LinkageName;
    opts.PathStyle = llvm::symbolize::FileLineInfoKind::AbsoluteFilePath;
    opts.UseSymbolTable = true;
    opts.Demangle = true;
    // Separate debug info found by build id (Debian's *-dbg packages, e.g. libc6-dbg).
    opts.DebugFileDirectory = {"/usr/lib/debug"};
    return opts;
}

// LLVM says "<invalid>" (or "??" in addr2line mode) where it knows nothing.
std::string known_or_empty(const std::string& s) {
    if (s == llvm::DILineInfo::BadString || s == llvm::DILineInfo::Addr2LineBadString) return {};
    return s;
}

// LLVM 14 looks a pc up in its compile unit's first DIE without checking that the DIE could
// be read: a unit whose first DIE is garbage (a damaged or hostile .debug_info or
// .debug_abbrev) makes it dereference a null pointer and takes leakcheck down with it. Such
// a file must not reach its symbolizer. Reading each unit's first DIE is cheap (a header and
// one abbreviation per unit) and is done once per file.
bool compile_units_readable(const std::string& path) {
    auto binary = llvm::object::ObjectFile::createObjectFile(path);
    if (!binary) {
        // LLVM's symbolizer fails the same way and answers nothing: no crash to avoid.
        llvm::consumeError(binary.takeError());
        return true;
    }
    const auto ignore = [](llvm::Error e) { llvm::consumeError(std::move(e)); };
    const auto context = llvm::DWARFContext::create(*binary->getBinary(),
                                                    llvm::DWARFContext::ProcessDebugRelocations::Process, nullptr,
                                                    "", ignore, ignore);
    for (const auto& unit : context->compile_units())
        if (!unit->getUnitDIE(true)) return false;
    return true;
}

}  // namespace

struct Symbolizer::Impl {
    llvm::symbolize::LLVMSymbolizer llvm{symbolizer_options()};

    struct File {
        bool llvm_may_read = true;
        std::unique_ptr<ElfImage> symbols;  // when it may not; null if not readable as ELF either
    };
    std::unordered_map<std::string, File> files;

    const File& file(const std::string& path) {
        auto [it, fresh] = files.try_emplace(path);
        if (fresh) {
            const StderrSilenced quiet;  // LLVM prints some of its complaints itself
            it->second.llvm_may_read = compile_units_readable(path);
            if (!it->second.llvm_may_read) it->second.symbols = ElfImage::open(path);
        }
        return it->second;
    }
};

Symbolizer::Symbolizer() : impl_(std::make_unique<Impl>()) {}
Symbolizer::~Symbolizer() = default;

const Location& Symbolizer::symbolize(const Module* module, RemoteAddr pc, bool return_address) {
    const std::uint64_t generation = module ? module->generation : 0;
    auto [it, fresh] = cache_.try_emplace(Key{pc, return_address});
    Entry& entry = it->second;
    if (!fresh && entry.module == module && entry.generation == generation) return entry.location;

    ++lookups_;
    entry.module = module;
    entry.generation = generation;
    Location& loc = entry.location;
    loc = Location{};
    loc.pc = pc;
    if (!module) {
        loc.frames.emplace_back();
        return loc;
    }
    const FileAddr file_pc = module->to_file(pc);
    loc.module = module->path;
    loc.module_offset = file_pc;

    // A return address points after the call, possibly at the next line or function.
    const FileAddr lookup = return_address && file_pc > 0 ? file_pc - 1 : file_pc;
    if (const Impl::File& file = impl_->file(module->open_path); !file.llvm_may_read) {
        // Debug info unusable: the symbol tables still name the function, as for a file
        // built without -g.
        SourceFrame frame;
        if (file.symbols) {
            if (auto sym = file.symbols->function_containing(lookup)) {
                frame.function = llvm::demangle(std::string(sym->name));
                frame.offset = file_pc - sym->value;
                frame.has_offset = true;
            }
        }
        loc.frames.push_back(std::move(frame));
        return loc;
    }
    llvm::Expected<llvm::DIInliningInfo> info = [&] {
        // LLVM 14's DWARF parser prints its complaints about malformed debug info straight to
        // stderr, where they would land inside the report; keep them out.
        const StderrSilenced quiet;
        return impl_->llvm.symbolizeInlinedCode(module->open_path,
                                                {lookup, llvm::object::SectionedAddress::UndefSection});
    }();
    if (!info) {
        // Missing or unreadable file. LLVM reports this once per file, then answers nothing.
        llvm::consumeError(info.takeError());
        loc.frames.emplace_back();
        return loc;
    }

    const std::uint32_t n = info->getNumberOfFrames();
    for (std::uint32_t i = 0; i < n; ++i) {
        const llvm::DILineInfo& in = info->getFrame(i);
        SourceFrame frame;
        frame.function = known_or_empty(in.FunctionName);
        frame.file = known_or_empty(in.FileName);
        frame.line = frame.file.empty() ? 0 : in.Line;
        frame.inlined = i + 1 < n;
        // The offset is the pc's own (as memleak prints it), on the outermost frame: LLVM 14
        // gives its start from DW_AT_low_pc, or from the symbol table (.symtab, else .dynsym)
        // when that names the function, so there is no better source to fall back on.
        if (!frame.inlined && !frame.function.empty() && in.StartAddress && *in.StartAddress <= file_pc) {
            frame.offset = file_pc - *in.StartAddress;
            frame.has_offset = true;
        }
        loc.frames.push_back(std::move(frame));
    }
    if (loc.frames.empty()) loc.frames.emplace_back();
    return loc;
}

}  // namespace leakcheck

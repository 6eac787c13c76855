// ElfImage on the fib_leak fixture: functions found by name and by an address inside them, and
// a copy whose section header table is cut short still opens (its program headers are what
// unwinding needs) and says what is damaged instead of answering from garbage.
#include "leakcheck/elf_image.hpp"

#include <elf.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

namespace leakcheck {
namespace {

const std::string kFibLeak = std::string(FIXTURE_DIR) + "/fib_leak";

TEST(ElfImage, FunctionContainingAnAddressInsideIt) {
    const auto image = ElfImage::open(kFibLeak);
    ASSERT_NE(image, nullptr);
    EXPECT_EQ(image->damage(), "");
    const auto fib = image->find_any("fibonacci");
    ASSERT_TRUE(fib.has_value());
    ASSERT_GT(fib->size, 1u);
    for (const std::uint64_t offset : {std::uint64_t{0}, std::uint64_t{1}, fib->size - 1}) {
        const auto at = image->function_containing(fib->value + offset);
        ASSERT_TRUE(at.has_value()) << offset;
        EXPECT_EQ(at->name, "fibonacci");
        EXPECT_EQ(at->value, fib->value);
        EXPECT_EQ(at->size, fib->size);
    }
    const auto after = image->function_containing(fib->value + fib->size);
    EXPECT_TRUE(!after || after->name != "fibonacci");
    EXPECT_FALSE(image->function_containing(0).has_value());
}

// .eh_frame is found by its section name; it lies inside a read-only PT_LOAD segment, after
// its index (GNU ld puts .eh_frame_hdr first).
TEST(ElfImage, EhFrameSectionBesideItsIndex) {
    const auto image = ElfImage::open(kFibLeak);
    ASSERT_NE(image, nullptr);
    const auto eh_frame = image->eh_frame();
    const auto hdr = image->eh_frame_hdr();
    ASSERT_TRUE(eh_frame.has_value());
    ASSERT_TRUE(hdr.has_value());
    EXPECT_GT(eh_frame->filesz, 0u);
    EXPECT_GT(eh_frame->vaddr, hdr->vaddr);
    bool in_read_only_load = false;
    for (const ElfSegment& seg : image->loads())
        if ((seg.flags & PF_W) == 0 && eh_frame->vaddr >= seg.vaddr &&
            eh_frame->vaddr + eh_frame->filesz <= seg.vaddr + seg.filesz)
            in_read_only_load = true;
    EXPECT_TRUE(in_read_only_load);
    // Its first record is a CIE: a length, then a CIE id of 0.
    std::uint8_t head[8];
    ASSERT_TRUE(image->read_vaddr(eh_frame->vaddr, head));
    std::uint32_t length = 0, id = 1;
    std::memcpy(&length, head, 4);
    std::memcpy(&id, head + 4, 4);
    EXPECT_GT(length, 0u);
    EXPECT_EQ(id, 0u);
}

TEST(ElfImage, TruncatedSectionHeadersAreDamageNotAFailure) {
    std::ifstream in(kFibLeak, std::ios::binary);
    std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    ASSERT_GE(bytes.size(), sizeof(Elf64_Ehdr));
    Elf64_Ehdr eh;
    std::memcpy(&eh, bytes.data(), sizeof eh);
    ASSERT_LT(eh.e_shoff, bytes.size());
    bytes.resize(eh.e_shoff + 3 * sizeof(Elf64_Shdr) + 17);

    char path[] = "/tmp/leakcheck-elf-XXXXXX";
    const int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
    const auto image = ElfImage::open(path);
    ::unlink(path);
    ASSERT_NE(image, nullptr);
    EXPECT_EQ(image->damage(), "its section header table runs past the end of the file");
    EXPECT_FALSE(image->loads().empty());
    EXPECT_FALSE(image->find_any("fibonacci").has_value());
    EXPECT_FALSE(image->function_containing(0x1000).has_value());
}

}  // namespace
}  // namespace leakcheck

#include "services/crc32c/crc32c.h"

#include <cstring>
#include <random>
#include <string>

#include "gtest/gtest.h"

namespace fapo::crc32c {
namespace {

TEST(Crc32cTest, StandardVectors) {
  EXPECT_EQ(Value("123456789", 9), 0xE3069283u);
  const std::string zeros(32, '\0');
  EXPECT_EQ(Value(zeros.data(), zeros.size()), 0x8A9136AAu);
  const std::string ones(32, '\xff');
  EXPECT_EQ(Value(ones.data(), ones.size()), 0x62A8AB43u);
  std::string ascending(32, '\0');
  for (int i = 0; i < 32; ++i) ascending[i] = static_cast<char>(i);
  EXPECT_EQ(Value(ascending.data(), ascending.size()), 0x46DD794Eu);
  EXPECT_EQ(Value("", 0), 0u);
}

TEST(Crc32cTest, PortableMatchesDispatchedAtEveryLengthAndAlignment) {
  std::mt19937 rng(7);
  std::string data(1024 + 16, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (size_t start = 0; start < 9; ++start) {
    for (size_t n = 0; n < 300; n += 7) {
      EXPECT_EQ(Value(data.data() + start, n),
                internal::ExtendPortable(0, data.data() + start, n))
          << "start " << start << " n " << n;
    }
  }
}

TEST(Crc32cTest, ExtendConcatenates) {
  const std::string a = "hello, ";
  const std::string b = "weights of many tensors";
  const std::string ab = a + b;
  EXPECT_EQ(Extend(Value(a.data(), a.size()), b.data(), b.size()),
            Value(ab.data(), ab.size()));
  EXPECT_EQ(
      internal::ExtendPortable(internal::ExtendPortable(0, a.data(), a.size()),
                               b.data(), b.size()),
      Value(ab.data(), ab.size()));
}

TEST(Crc32cTest, CombineMatchesTheConcatenation) {
  std::mt19937 rng(3);
  std::string data(5000, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (size_t split : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{1000},
                       size_t{4999}, size_t{5000}}) {
    const uint32_t a = Value(data.data(), split);
    const uint32_t b = Value(data.data() + split, data.size() - split);
    EXPECT_EQ(Combine(a, b, data.size() - split),
              Value(data.data(), data.size()))
        << split;
  }
  // Three pieces, folded left to right.
  const uint32_t ab =
      Combine(Value(data.data(), 10), Value(data.data() + 10, 90), 90);
  EXPECT_EQ(Combine(ab, Value(data.data() + 100, 4900), 4900),
            Value(data.data(), data.size()));
}

TEST(Crc32cTest, DetectsASingleFlippedBit) {
  std::string data(4096, 'x');
  const uint32_t before = Value(data.data(), data.size());
  data[1234] ^= 0x10;
  EXPECT_NE(Value(data.data(), data.size()), before);
}

}  // namespace
}  // namespace fapo::crc32c

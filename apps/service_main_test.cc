// The pure helpers of the common service main: the advertised address.
#include "apps/service_main.h"

#include "gtest/gtest.h"

namespace fapo::apps {
namespace {

TEST(AdvertisedHostTest, FlagWinsThenBindHostThenHostnameForWildcards) {
  EXPECT_EQ(AdvertisedHost("127.0.0.1", "genrm-3.internal", "box"),
            "genrm-3.internal");
  EXPECT_EQ(AdvertisedHost("10.0.0.5", "", "box"), "10.0.0.5");
  EXPECT_EQ(AdvertisedHost("0.0.0.0", "", "box"), "box");
  EXPECT_EQ(AdvertisedHost("::", "", "box"), "box");
  EXPECT_EQ(AdvertisedHost("[::]", "", "box"), "box");
  EXPECT_EQ(AdvertisedHost("", "", "box"), "box");
}

TEST(JoinHostPortTest, BracketsIpv6Literals) {
  EXPECT_EQ(JoinHostPort("box", 50051), "box:50051");
  EXPECT_EQ(JoinHostPort("127.0.0.1", 1), "127.0.0.1:1");
  EXPECT_EQ(JoinHostPort("::1", 7), "[::1]:7");
  EXPECT_EQ(JoinHostPort("[::1]", 7), "[::1]:7");
}

}  // namespace
}  // namespace fapo::apps

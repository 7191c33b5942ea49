#include "services/status/status_macros.h"

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_matchers.h"

namespace fapo {
namespace {

using ::fapo::testing::IsOk;
using ::fapo::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

absl::Status FailIf(bool fail, int* calls) {
  ++*calls;
  return fail ? absl::InvalidArgumentError("bad") : absl::OkStatus();
}

absl::Status Chain(bool fail, int* calls, bool* reached_end) {
  RETURN_IF_ERROR(FailIf(fail, calls));
  *reached_end = true;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<int>> MakeInt(int value) {
  if (value < 0) return absl::OutOfRangeError("negative");
  return std::make_unique<int>(value);
}

absl::StatusOr<int> Doubled(int value) {
  ASSIGN_OR_RETURN(std::unique_ptr<int> ptr, MakeInt(value));
  return *ptr * 2;
}

TEST(StatusMacrosTest, ReturnIfErrorPropagatesAndEvaluatesOnce) {
  int calls = 0;
  bool reached_end = false;
  EXPECT_THAT(Chain(true, &calls, &reached_end),
              StatusIs(absl::StatusCode::kInvalidArgument, "bad"));
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(reached_end);

  calls = 0;
  EXPECT_THAT(Chain(false, &calls, &reached_end), IsOk());
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(reached_end);
}

TEST(StatusMacrosTest, ReturnIfErrorAcceptsStatusOr) {
  auto fn = [](int value) -> absl::Status {
    RETURN_IF_ERROR(MakeInt(value));
    return absl::OkStatus();
  };
  EXPECT_THAT(fn(1), IsOk());
  EXPECT_THAT(fn(-1), StatusIs(absl::StatusCode::kOutOfRange));
}

TEST(StatusMacrosTest, AssignOrReturnMovesValueOrReturnsError) {
  EXPECT_THAT(Doubled(-3),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("negative")));
  ASSERT_OK_AND_ASSIGN(int value, Doubled(21));
  EXPECT_EQ(value, 42);
}

TEST(StatusMacrosTest, AnnotatePrependsContextAndKeepsCode) {
  absl::Status annotated =
      Annotate(absl::NotFoundError("no such file"), "loading job.yaml");
  EXPECT_THAT(annotated, StatusIs(absl::StatusCode::kNotFound,
                                  "loading job.yaml: no such file"));
  EXPECT_THAT(Annotate(absl::OkStatus(), "ignored"), IsOk());
}

TEST(StatusMatchersTest, MatchersRejectWrongCodes) {
  EXPECT_THAT(absl::InternalError("x"), Not(IsOk()));
  EXPECT_THAT(absl::InternalError("x"),
              Not(StatusIs(absl::StatusCode::kUnknown)));
  EXPECT_THAT(absl::StatusOr<int>(3), IsOk());
  EXPECT_THAT(absl::StatusOr<int>(3), testing::IsOkAndHolds(3));
  EXPECT_THAT(absl::StatusOr<int>(3), Not(testing::IsOkAndHolds(4)));
  EXPECT_THAT(absl::StatusOr<int>(absl::InternalError("x")),
              Not(testing::IsOkAndHolds(3)));
}

}  // namespace
}  // namespace fapo

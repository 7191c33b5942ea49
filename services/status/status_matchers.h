// gtest matchers for absl::Status and absl::StatusOr<T> (test-only).
//
//   EXPECT_THAT(DoIt(), IsOk());
//   EXPECT_THAT(Parse("x"), StatusIs(absl::StatusCode::kInvalidArgument,
//                                    HasSubstr("line 3")));
//   EXPECT_THAT(Parse("1"), IsOkAndHolds(1));
//   ASSERT_OK_AND_ASSIGN(auto value, Parse("1"));
#ifndef FAPO_SERVICES_STATUS_STATUS_MATCHERS_H_
#define FAPO_SERVICES_STATUS_STATUS_MATCHERS_H_

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/status/status_macros.h"

namespace fapo::testing {

namespace internal {
inline const absl::Status& GetStatus(const absl::Status& status) {
  return status;
}
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}
}  // namespace internal

MATCHER(IsOk, "is OK") {
  const absl::Status& status = internal::GetStatus(arg);
  if (!status.ok()) *result_listener << "status is " << status;
  return status.ok();
}

MATCHER_P(StatusIs, code,
          std::string("has code ") + absl::StatusCodeToString(code)) {
  const absl::Status& status = internal::GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code;
}

MATCHER_P2(StatusIs, code, message_matcher,
           std::string("has code ") + absl::StatusCodeToString(code) +
               " and a matching message") {
  const absl::Status& status = internal::GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(
             message_matcher, std::string(status.message()), result_listener);
}

// Matches an OK StatusOr<T> whose value matches `inner`.
MATCHER_P(IsOkAndHolds, inner, "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(inner, *arg, result_listener);
}

}  // namespace fapo::testing

#define FAPO_MATCHERS_CONCAT_INNER_(a, b) a##b
#define FAPO_MATCHERS_CONCAT_(a, b) FAPO_MATCHERS_CONCAT_INNER_(a, b)
#define FAPO_ASSERT_OK_AND_ASSIGN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                    \
  ASSERT_TRUE(tmp.ok()) << tmp.status();                \
  lhs = std::move(*tmp)
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  FAPO_ASSERT_OK_AND_ASSIGN_IMPL_(      \
      FAPO_MATCHERS_CONCAT_(fapo_assert_or_, __LINE__), lhs, expr)
#define ASSERT_OK(expr) ASSERT_THAT(expr, ::fapo::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT(expr, ::fapo::testing::IsOk())

#endif  // FAPO_SERVICES_STATUS_STATUS_MATCHERS_H_

// services/status: the project's absl::Status helpers.
//
// abseil 20220623 ships no status macros, so the project keeps its own here,
// in exactly one place:
//
//   RETURN_IF_ERROR(expr);            // returns expr's status when not OK
//   ASSIGN_OR_RETURN(auto x, expr);   // x = *expr, or returns expr.status()
//
// Both evaluate `expr` exactly once. Errors can be annotated on the way up
// with fapo::Annotate(status, "while loading job.yaml").
#ifndef FAPO_SERVICES_STATUS_STATUS_MACROS_H_
#define FAPO_SERVICES_STATUS_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace fapo {

// Returns `status` with `context` prepended to its message ("context: msg").
// An OK status is returned unchanged.
inline absl::Status Annotate(const absl::Status& status,
                             absl::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat(context, ": ", status.message()));
}

namespace status_internal {
inline const absl::Status& AsStatus(const absl::Status& status) {
  return status;
}
template <typename T>
const absl::Status& AsStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}
}  // namespace status_internal
}  // namespace fapo

#define FAPO_STATUS_CONCAT_INNER_(a, b) a##b
#define FAPO_STATUS_CONCAT_(a, b) FAPO_STATUS_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                                        \
  do {                                                               \
    const auto& fapo_status_ref_ = (expr);                           \
    if (!::fapo::status_internal::AsStatus(fapo_status_ref_).ok()) { \
      return ::fapo::status_internal::AsStatus(fapo_status_ref_);    \
    }                                                                \
  } while (false)

#define FAPO_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(*tmp)

#define ASSIGN_OR_RETURN(lhs, expr)                                           \
  FAPO_ASSIGN_OR_RETURN_IMPL_(FAPO_STATUS_CONCAT_(fapo_status_or_, __LINE__), \
                              lhs, expr)

#endif  // FAPO_SERVICES_STATUS_STATUS_MACROS_H_

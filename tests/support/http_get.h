// HttpGet: fetches a URL with libcurl (tests that scrape /metrics).
#ifndef FAPO_TESTS_SUPPORT_HTTP_GET_H_
#define FAPO_TESTS_SUPPORT_HTTP_GET_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fapo::testing {

// The body of a GET of `url`. Unavailable (with curl's message) when the
// transfer fails, FailedPrecondition for an HTTP status >= 400.
absl::StatusOr<std::string> HttpGet(const std::string& url,
                                    absl::Duration timeout = absl::Seconds(5));

}  // namespace fapo::testing

#endif  // FAPO_TESTS_SUPPORT_HTTP_GET_H_

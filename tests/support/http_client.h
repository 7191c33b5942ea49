// Test only: HTTP requests over libcurl, the one HTTP client of the tests
// (the /metrics endpoints, a real Prometheus, the services' scrapes).
//
//   ASSERT_OK_AND_ASSIGN(HttpResponse response,
//                        HttpGet("http://127.0.0.1:9090/-/ready"));
//   ASSERT_OK_AND_ASSIGN(std::string text, FetchBody(metrics_url));
//
// Thread-safe (each call uses its own curl handle).
#ifndef FAPO_SERVICES_METRICS_TEST_HTTP_CLIENT_H_
#define FAPO_SERVICES_METRICS_TEST_HTTP_CLIENT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fapo::testing {

struct HttpResponse {
  long status_code = 0;  // long: what CURLINFO_RESPONSE_CODE reports
  std::string content_type;
  std::string body;
};

// Sends a `method` request without a body to `url`, giving up after
// `timeout`. Any HTTP status is a successful result; Unavailable when the
// request could not be made at all (connection refused, timeout), with
// curl's explanation.
absl::StatusOr<HttpResponse> HttpRequest(
    absl::string_view method, absl::string_view url,
    absl::Duration timeout = absl::Seconds(5));

// HttpRequest("GET", url, timeout).
absl::StatusOr<HttpResponse> HttpGet(absl::string_view url,
                                     absl::Duration timeout = absl::Seconds(5));

// The body of a GET of `url`: Unavailable (with curl's message) when the
// transfer fails, FailedPrecondition naming the status for HTTP >= 400.
absl::StatusOr<std::string> FetchBody(
    absl::string_view url, absl::Duration timeout = absl::Seconds(5));

// Percent-encodes `text` for use in a query string.
std::string UrlEncode(absl::string_view text);

}  // namespace fapo::testing

#endif  // FAPO_SERVICES_METRICS_TEST_HTTP_CLIENT_H_

// Internal to services/config: the rules a typed JobSpec must satisfy.
#ifndef FAPO_SERVICES_CONFIG_VALIDATION_H_
#define FAPO_SERVICES_CONFIG_VALIDATION_H_

#include <string>
#include <vector>

#include "services/config/job_spec.h"

namespace fapo::config::internal {

// One broken rule: the key it is reported at, what is wrong, and the other
// keys whose values it depends on (so that the reader can drop it when one of
// those keys failed to parse and holds a default the user never wrote).
struct Violation {
  std::string path;
  std::string message;
  std::vector<std::string> involves;
};

// Every range rule of the schema (schema.h), every cross-field rule, and that
// the files named under `security` exist and are readable. In schema order.
std::vector<Violation> CheckJobSpec(const JobSpec& spec);

// "" when `path` names a readable regular file, else what is wrong with it.
std::string CheckReadableFile(const std::string& path);

}  // namespace fapo::config::internal

#endif  // FAPO_SERVICES_CONFIG_VALIDATION_H_

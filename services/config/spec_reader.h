// Internal to services/config: a located YAML document -> a typed JobSpec.
#ifndef FAPO_SERVICES_CONFIG_SPEC_READER_H_
#define FAPO_SERVICES_CONFIG_SPEC_READER_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "services/config/job_spec.h"
#include "services/config/yaml_document.h"

namespace fapo::config::internal {

struct ReadResult {
  // Defaults wherever the document is silent or wrong.
  JobSpec spec;
  // Type errors, out-of-range numbers, unknown and missing keys.
  std::vector<Problem> problems;
  // Where the document sets each key path: a value's location, or a section's
  // key. "" maps to the document itself.
  std::map<std::string, Location> locations;
  // Key paths whose value could not be read (the spec holds the default
  // there) or whose section is not a map.
  std::set<std::string> failed_paths;
};

// Reads every key of the schema from `root`, which must be a kMap. Integer
// and float ranges are checked here, against the text as written, because a
// value like 99999999999999999999 has no typed form to check later; string
// and cross-field rules are left to CheckJobSpec.
ReadResult ReadJobSpec(const DocNode& root);

// Every key path of the schema, sections included, in schema order.
const std::vector<std::string>& AllKeyPaths();

}  // namespace fapo::config::internal

#endif  // FAPO_SERVICES_CONFIG_SPEC_READER_H_

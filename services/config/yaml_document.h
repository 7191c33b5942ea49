// Internal to services/config: a YAML document as a tree of located nodes.
//
// yaml-cpp's Node is a poor tree to validate and edit: it keeps duplicate
// keys without saying so, has reference semantics on assignment (a = b
// rewrites what a pointed to), hides whether a scalar was quoted behind its
// tag, and gives an empty value (`key:`) the position of the *next* token.
// LoadYamlDocument copies a document into the plain value types below, where
// every node carries the Location that error messages cite, duplicate keys
// are reported, and ApplyOverride can splice in --set values.
#ifndef FAPO_SERVICES_CONFIG_YAML_DOCUMENT_H_
#define FAPO_SERVICES_CONFIG_YAML_DOCUMENT_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace fapo::config::internal {

// Where a node came from.
struct Location {
  // The file (or other source name), or "--set a.b.c" for an override.
  std::string source;
  // 1-based; 0 when the location is the whole source (overrides, files).
  int line = 0;
  int column = 0;

  bool empty() const { return source.empty(); }
  // "job.yaml:12:5", "--set a.b.c", "job.yaml", or "" when empty.
  std::string ToString() const;
};

// One thing wrong with a spec.
struct Problem {
  Location location;  // empty for a spec built in code
  std::string path;   // dotted key path; "" = the document as a whole
  std::string message;

  // "LOCATION: PATH: MESSAGE", leaving out the empty parts.
  std::string ToString() const;
};

enum class NodeKind { kNull, kScalar, kList, kMap };

struct DocEntry;

struct DocNode {
  NodeKind kind = NodeKind::kNull;
  // kScalar: the text, without quotes.
  std::string text;
  // kScalar: written quoted or as a block scalar, so `"5"` is a string and
  // `5` a number.
  bool quoted = false;
  std::vector<DocNode> items;     // kList
  std::vector<DocEntry> entries;  // kMap: document order, keys unique
  // For an empty value (`key:`), the location of its key.
  Location location;

  // The entry with this key, or nullptr (kMap only; nullptr otherwise).
  const DocEntry* Find(absl::string_view key) const;
  DocEntry* Find(absl::string_view key);
};

struct DocEntry {
  std::string key;
  Location key_location;
  DocNode value;
};

// "a map", "a list", "an empty value", "the integer 5", "the float 2.5",
// "the bool true", or "the string \"abc\"" (quoted scalars are always
// strings). For type errors: "expected an integer, got the float 2.5".
std::string Describe(const DocNode& node);

// Joins key paths: JoinPath("", "job") == "job", JoinPath("job", "name") ==
// "job.name".
std::string JoinPath(absl::string_view parent, absl::string_view key);

// Reads `yaml_text`. Returns std::nullopt, with one problem, when it is not
// well-formed YAML (the parser's line:column) or not UTF-8. Otherwise returns
// the first document (a kNull node when there is none, e.g. an empty file), and
// adds a problem for each duplicate key (the first occurrence is kept), each
// map key that is not a scalar, and a second document.
std::optional<DocNode> LoadYamlDocument(absl::string_view yaml_text,
                                        absl::string_view source,
                                        std::vector<Problem>* problems);

// Applies one "a.b.c=value" override to `root` (a kMap): `value` is read as
// YAML (a scalar or flow value; empty = an empty value) and replaces what is
// at a.b.c, creating maps for missing or empty a and a.b. Every node it adds
// is located at "--set a.b.c". Adds a problem, and changes nothing, when the
// override is malformed (no '=', an empty key or key segment), the value is
// not UTF-8 YAML, or a prefix of the path holds something other than a map.
void ApplyOverride(absl::string_view override_text, DocNode* root,
                   std::vector<Problem>* problems);

}  // namespace fapo::config::internal

#endif  // FAPO_SERVICES_CONFIG_YAML_DOCUMENT_H_

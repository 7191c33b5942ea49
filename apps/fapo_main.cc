// `fapo`: the user's entry point. One subcommand per task:
//
//   fapo launch JOB.yaml [--set KEY=VALUE]...     run a job: every service
//                                                 a local process
//   fapo validate JOB.yaml [--set KEY=VALUE]...   check a job spec, print it
//   fapo health ADDRESS [--config JOB.yaml]       ask a service if it serves
//   fapo tokenize / generate / logprobs / init-model   model tools
//   fapo sft --out DIR                            supervised warm start
//   fapo eval --model DIR [--config JOB.yaml]     held-out accuracy and
//                                                 flawed-positive ratio
//   fapo report RUN_DIR...                        runs as report.md and
//                                                 report.html (overlaid)
//   fapo version
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "apps/launcher/launcher.h"
#include "apps/report/report_html.h"
#include "apps/report/run_report.h"
#include "services/config/job_spec.h"
#include "services/flags/flags.h"
#include "services/logging/log.h"
#include "services/rpc/channel.h"
#include "services/rpc/introspection.h"
#include "services/runtime/spec_bridge.h"
#include "tasks/task_source.h"

#ifdef FAPO_HAVE_ENGINE_TOOLS
#include "engine/tools/tools.h"
#include "trainer/eval.h"
#include "trainer/sft.h"
#endif

namespace fapo::apps {

using flags::ArgsOf;
using flags::FlagSet;

namespace {

constexpr char kVersion[] = "0.1.0";

struct Subcommand {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>& args);
};

int Validate(const std::vector<std::string>& args) {
  std::string path;
  std::vector<std::string> overrides;
  bool quiet = false;
  FlagSet flags("fapo validate",
                "Parses and checks a job spec. Prints the effective config "
                "(every key, defaults filled in) on success, or every "
                "problem found, each with its key path and line:column.");
  flags.Positional("JOB.yaml", &path, "the job spec");
  flags.Repeated("set", &overrides, "KEY=VALUE",
                 "override a key before checking, e.g. --set job.steps=10");
  flags.Bool("quiet", &quiet, "print nothing on success");
  absl::Status parsed = flags.Parse(args);
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  if (!parsed.ok()) {
    std::cerr << "fapo validate: " << parsed.message() << "\n";
    return 2;
  }
  absl::StatusOr<config::JobSpec> spec =
      config::LoadJobSpecFile(path, overrides);
  if (!spec.ok()) {
    std::cerr << spec.status().message() << "\n";
    return 1;
  }
  // What the schema cannot see: the task's own rules (the exact-arithmetic
  // int64 bound) and whether the dataset loads.
  absl::Status task = tasks::ValidateTaskOptions(*spec);
  if (!task.ok()) {
    std::cerr << path << ": " << task.message() << "\n";
    return 1;
  }
  if (!quiet) {
    std::cout << "# effective config of " << path << "\n"
              << config::JobSpecToYaml(*spec);
  }
  return 0;
}

int Health(const std::vector<std::string>& args) {
  std::string address;
  std::string config_path;
  std::string service;
  int64_t timeout_ms = 5000;
  FlagSet flags("fapo health",
                "Asks a fapo service (grpc.health.v1) whether it is serving. "
                "Exit 0 when SERVING, 1 otherwise. With --config, the job's "
                "TLS and token are used.");
  flags.Positional("ADDRESS", &address, "host:port of the service");
  flags.String("config", &config_path, "JOB.yaml",
               "job spec whose security section to use");
  flags.String("service", &service, "NAME",
               "a service name such as fapo.v1.GenRM (default: the server)");
  flags.Int("timeout-ms", &timeout_ms, "deadline of the check");
  absl::Status parsed = flags.Parse(args);
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  if (!parsed.ok()) {
    std::cerr << "fapo health: " << parsed.message() << "\n";
    return 2;
  }
  rpc::ChannelOptions options;
  if (!config_path.empty()) {
    absl::StatusOr<config::JobSpec> spec = config::LoadJobSpecFile(config_path);
    if (!spec.ok()) {
      std::cerr << spec.status().message() << "\n";
      return 2;
    }
    options.security = runtime::RpcSecurityFromSpec(spec->security);
  }
  auto channel = rpc::MakeChannel(address, options);
  if (!channel.ok()) {
    std::cerr << "fapo health: " << channel.status().message() << "\n";
    return 2;
  }
  auto status =
      rpc::CheckHealth(*channel, service, absl::Milliseconds(timeout_ms));
  if (!status.ok()) {
    std::cout << "UNREACHABLE: " << status.status() << "\n";
    return 1;
  }
  switch (*status) {
    case rpc::HealthStatus::kServing:
      std::cout << "SERVING\n";
      return 0;
    case rpc::HealthStatus::kNotServing:
      std::cout << "NOT_SERVING\n";
      return 1;
    case rpc::HealthStatus::kServiceUnknown:
      std::cout << "SERVICE_UNKNOWN\n";
      return 1;
    case rpc::HealthStatus::kUnknown:
      std::cout << "UNKNOWN\n";
      return 1;
  }
  return 1;
}

#ifdef FAPO_HAVE_ENGINE_TOOLS
int Tokenize(const std::vector<std::string>& args) {
  return engine::RunTokenizeCommand(args, std::cin, std::cout, std::cerr);
}
int Generate(const std::vector<std::string>& args) {
  return engine::RunGenerateCommand(args, std::cout, std::cerr);
}
int Logprobs(const std::vector<std::string>& args) {
  return engine::RunLogprobsCommand(args, std::cout, std::cerr);
}
int InitModel(const std::vector<std::string>& args) {
  return engine::RunInitModelCommand(args, std::cout, std::cerr);
}
int Sft(const std::vector<std::string>& args) {
  return trainer::RunSftCommand(args, std::cout, std::cerr);
}
int Eval(const std::vector<std::string>& args) {
  return trainer::RunEvalCommand(args, std::cout, std::cerr);
}
#endif

int Report(const std::vector<std::string>& args) {
  std::string first_run_dir;
  std::string html_path;
  int64_t rows = report::RunReportOptions().curve_rows;
  bool quiet = false;
  FlagSet flags(
      "fapo report",
      "Reads run directories (config.yaml, metrics.jsonl, and samples.jsonl "
      "and eval.json files where present) and writes <RUN_DIR>/report.md for "
      "each: the job, the training curve, where a step's time went, what "
      "became of the trajectories and the advantages they trained with, "
      "held-out evaluations. Also writes report.html, a self-contained page "
      "(inline SVG charts, no script, nothing fetched) of the training "
      "curves, step time and verdicts: of the one run, or of several runs "
      "overlaid, one colour each. With one run it prints report.md too; "
      "with several, the paths written. `fapo launch` writes both when a "
      "job ends.");
  flags.Positional("RUN_DIR...", &first_run_dir,
                   "one or more run directories (job.output_dir)");
  flags.String("html", &html_path, "PATH",
               "where to write the HTML page (default: <RUN_DIR>/report.html "
               "for one run; for several, report.html in the current "
               "directory)");
  flags.Int("rows", &rows, "rows of report.md's training-curve table");
  flags.Bool("quiet", &quiet, "print only the paths written");
  // FlagSet takes a fixed number of positionals; run directories come in
  // any number, so all but the first are taken out here: the arguments
  // that are neither a flag nor the value of one (--html and --rows take
  // one unless written --flag=value), and everything after "--".
  std::vector<std::string> run_dirs;
  std::vector<std::string> flag_args;
  bool value_missing = false;  // left for FlagSet to say so
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      run_dirs.insert(run_dirs.end(), args.begin() + i + 1, args.end());
      break;
    }
    if (arg.size() > 1 && arg[0] == '-') {
      flag_args.push_back(arg);
      if (arg == "--html" || arg == "-html" || arg == "--rows" ||
          arg == "-rows") {
        if (i + 1 < args.size()) {
          flag_args.push_back(args[++i]);
        } else {
          value_missing = true;
        }
      }
      continue;
    }
    run_dirs.push_back(arg);
  }
  if (!run_dirs.empty() && !value_missing) {
    flag_args.push_back("--");
    flag_args.push_back(run_dirs.front());
  }
  absl::Status parsed = flags.Parse(flag_args);
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  if (parsed.ok() && (rows < 1 || rows > 1000)) {
    parsed = absl::InvalidArgumentError(
        absl::StrCat("--rows must be in [1, 1000], got ", rows));
  }
  if (!parsed.ok()) {
    std::cerr << "fapo report: " << parsed.message() << "\n";
    return 2;
  }
  const bool overlay = run_dirs.size() > 1;
  if (html_path.empty()) {
    html_path = report::HtmlReportPath(overlay ? "." : run_dirs.front());
  }
  // Each run's report.md (and, for one run, its page), keeping what was
  // read for the page of several.
  std::vector<report::RunData> runs;
  int failed = 0;
  for (const std::string& run_dir : run_dirs) {
    report::RunReportOptions options;
    options.run_dir = run_dir;
    options.curve_rows = static_cast<int>(rows);
    if (!overlay) options.html_path = html_path;
    std::string markdown;
    report::RunData run;
    absl::StatusOr<std::string> written =
        report::WriteRunReport(options, &markdown, &run);
    if (!written.ok()) {
      std::cerr << "fapo report: " << written.status().message() << "\n";
      ++failed;
      continue;
    }
    if (quiet || overlay) {
      std::cout << *written << "\n";
    } else {
      std::cout << markdown << "(written to " << *written << ")\n";
    }
    runs.push_back(std::move(run));
  }
  if (failed > 0) {
    if (overlay) {
      std::cerr << "fapo report: " << failed << " of " << run_dirs.size()
                << " runs could not be read; no page written\n";
    }
    return 1;
  }
  if (overlay) {
    absl::Status page = report::WriteHtmlReport(runs, html_path);
    if (!page.ok()) {
      std::cerr << "fapo report: " << page.message() << "\n";
      return 1;
    }
  }
  if (quiet || overlay) {
    std::cout << html_path << "\n";
  } else {
    std::cout << "(and " << html_path << ")\n";
  }
  return 0;
}

int Launch(const std::vector<std::string>& args) {
  return launcher::RunLaunchCommand(args, std::cout, std::cerr);
}

int Version(const std::vector<std::string>& /*args*/) {
  std::cout << "fapo " << kVersion << "\n";
  return 0;
}

const std::vector<Subcommand>& Subcommands() {
  static const auto* subcommands = new std::vector<Subcommand>{
      {"launch", "run a job: every service as a local process", Launch},
      {"validate", "check a job spec and print the effective config", Validate},
      {"health", "ask a running service whether it is serving", Health},
#ifdef FAPO_HAVE_ENGINE_TOOLS
      {"tokenize", "text <-> token ids with a tokenizer.json", Tokenize},
      {"generate", "sample from a checkpoint (ids and log-probs)", Generate},
      {"logprobs", "teacher-forced log-probs of a sequence", Logprobs},
      {"init-model", "write the tiny arith policy (HF layout)", InitModel},
      {"sft", "supervised warm start on a JSONL corpus", Sft},
      {"eval", "held-out sampled accuracy and flawed-positive ratio", Eval},
#endif
      {"report", "runs as report.md and report.html (several overlaid)",
       Report},
      {"version", "print the version", Version},
  };
  return *subcommands;
}

std::string Usage() {
  std::string usage =
      "Usage: fapo COMMAND [flags]\n\n"
      "fapo trains reasoning models with FAPO (Flawed-Aware Policy "
      "Optimization):\nRL with verifiable rewards plus a generative process "
      "reward model that\npenalises correct answers reached through flawed "
      "steps.\n\nCommands:\n";
  for (const Subcommand& subcommand : Subcommands()) {
    absl::StrAppend(&usage, "  ", subcommand.name,
                    std::string(12 - std::string(subcommand.name).size(), ' '),
                    subcommand.summary, "\n");
  }
  absl::StrAppend(&usage,
                  "\nRun `fapo COMMAND --help` for a command's flags.\n"
                  "Services: fapo-scheduler, fapo-rollout-worker, "
                  "fapo-genrm-server, fapo-trainer\n(each has --help).\n");
  return usage;
}

int Main(int argc, char** argv) {
  logging::SetComponent("fapo");
  std::vector<std::string> args = ArgsOf(argc, argv);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" ||
      args[0] == "help") {
    std::cout << Usage();
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") return Version({});
  for (const Subcommand& subcommand : Subcommands()) {
    if (args[0] == subcommand.name) {
      return subcommand.run(
          std::vector<std::string>(args.begin() + 1, args.end()));
    }
  }
  std::cerr << "fapo: unknown command '" << args[0] << "'\n\n" << Usage();
  return 2;
}

}  // namespace
}  // namespace fapo::apps

int main(int argc, char** argv) { return fapo::apps::Main(argc, argv); }

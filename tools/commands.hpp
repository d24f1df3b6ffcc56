// The subcommands of the smyrf tool. Each returns the process exit status and throws
// UsageError for a bad command line.
#pragma once

namespace smyrf_cli {

int demo_command(int argc, char **argv);   // argv[2..] are the command's options
int bench_command(int argc, char **argv);

extern const char *const kDemoHelp;
extern const char *const kBenchHelp;

}  // namespace smyrf_cli

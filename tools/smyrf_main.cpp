// The smyrf command-line tool: dispatches to the subcommands; turns usage errors into
// exit status 2 and other failures into 1.
#include "cli_args.hpp"
#include "commands.hpp"
#include "run_options.hpp"

#include <smyrf/smyrf.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

using namespace smyrf_cli;

namespace {

const char *const kUsage =
    "usage: smyrf <command> [options]\n"
    "SMYRF attention (asymmetric LSH, balanced clusters) on the CPU, through libsmyrf.\n"
    "\n"
    "commands:\n"
    "  demo      DENSE, SMYRF and HYBRID side by side: time, memory, error, speed-up\n"
    "  bench     sweep N, hash rounds and cluster sizes; a table or JSON lines\n"
    "  version   the versions of this tool and of the libsmyrf it runs on\n"
    "  help      this text; `smyrf help <command>` for a command's options\n";

std::string version_string(unsigned number) {
    return std::to_string(number / 10000) + "." + std::to_string(number / 100 % 100) + "." +
           std::to_string(number % 100);
}

int print_help(const std::string &command) {
    if (command == "demo") std::printf("%s%s", kDemoHelp, kRunOptionsHelp);
    else if (command == "bench") std::printf("%s%s", kBenchHelp, kRunOptionsHelp);
    else if (command.empty()) std::printf("%s", kUsage);
    else throw UsageError("no help for unknown command '" + command + "'");
    return 0;
}

bool wants_help(int argc, char **argv) {
    for (int i = 2; i < argc; i++)
        if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) return true;
    return false;
}

int dispatch(int argc, char **argv) {
    if (argc < 2) throw UsageError("missing command");
    const std::string command = argv[1];
    if (command == "--help" || command == "-h") return print_help("");
    if (command == "help") {
        if (argc > 3) throw UsageError("help takes at most one command");
        return print_help(argc == 3 ? argv[2] : "");
    }
    if (command == "version" || command == "--version") {
        if (argc > 2) throw UsageError("version takes no options");
        std::printf("smyrf %s (libsmyrf %s)\n", version_string(SMYRF_VERSION_NUMBER).c_str(),
                    version_string(smyrf_version_number()).c_str());
        return 0;
    }
    if (command != "demo" && command != "bench")
        throw UsageError("unknown command '" + command + "'");
    if (wants_help(argc, argv)) return print_help(command);
    return command == "demo" ? demo_command(argc, argv) : bench_command(argc, argv);
}

}  // namespace

int main(int argc, char **argv) {
    try {
        return dispatch(argc, argv);
    } catch (const UsageError &e) {
        std::fprintf(stderr, "smyrf: %s\n(`smyrf --help` lists the commands, `smyrf help "
                             "<command>` their options)\n", e.what());
        return 2;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "smyrf: %s\n", e.what());
        return 1;
    }
}

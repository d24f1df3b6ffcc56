// Options of one subcommand: "--name value", "--name=value", or a bare "--flag".
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace smyrf_cli {

// A mistake in the command line: main prints it with a hint and exits with status 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class Args {
public:
    // Parses argv[first..argc): `flags` names the options that take no value, `options`
    // those that take one; any other name is refused before it can take the next token.
    Args(int argc, char **argv, int first, const std::set<std::string> &flags,
         const std::set<std::string> &options);

    std::string text(const std::string &name, const std::string &fallback);
    int64_t integer(const std::string &name, int64_t fallback, int64_t lo, int64_t hi);
    // A comma-separated list such as "1024,4096".
    std::vector<int64_t> integers(const std::string &name, const std::vector<int64_t> &fallback,
                                  int64_t lo, int64_t hi);
    // A comma-separated list of words, each one of `allowed`.
    std::vector<std::string> words(const std::string &name,
                                   const std::vector<std::string> &fallback,
                                   const std::set<std::string> &allowed);
    // Whether the command line has the option: a flag, or one that does not apply.
    bool given(const std::string &name) const;

private:
    std::map<std::string, std::string> values_;  // option name (no dashes) -> text
};

}  // namespace smyrf_cli

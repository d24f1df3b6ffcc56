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
    // Parses argv[first..argc); `flags` names the options that take no value. Any other
    // option takes the next argument, unless that is an option too (or there is none):
    // reading it then says it needs a value, and finish() that it is unknown.
    Args(int argc, char **argv, int first, const std::set<std::string> &flags);

    // The option's text; an empty one ("--name=") is refused.
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
    bool given(const std::string &name);
    // Refuses any option that no call above asked for.
    void finish() const;

private:
    // The option's text (nullptr: not given); throws where it was given without one.
    const std::string *value_of(const std::string &name);

    std::map<std::string, std::string> values_;  // option name (no dashes) -> text
    std::set<std::string> missing_;  // options given with no value after them
    std::set<std::string> asked_;  // names the command has read
};

}  // namespace smyrf_cli

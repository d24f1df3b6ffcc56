#include "cli_args.hpp"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <sstream>

namespace smyrf_cli {
namespace {

int64_t parse_integer(const std::string &name, const std::string &text, int64_t lo, int64_t hi) {
    char *end = nullptr;
    errno = 0;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    // strtoll also takes leading blanks and a '+': digits and an optional '-' only
    const bool plain = !text.empty() && (std::isdigit((unsigned char)text[0]) || text[0] == '-');
    if (!plain || *end != '\0' || errno == ERANGE)
        throw UsageError("--" + name + ": '" + text + "' is not an integer");
    if (v < lo || v > hi)
        throw UsageError("--" + name + ": " + text + " is outside [" + std::to_string(lo) + ", " +
                         std::to_string(hi) + "]");
    return v;
}

std::vector<std::string> split_commas(const std::string &name, const std::string &text) {
    std::vector<std::string> parts;
    std::stringstream ss(text);
    std::string part;
    while (std::getline(ss, part, ','))
        if (part.empty()) throw UsageError("--" + name + ": empty item in '" + text + "'");
        else parts.push_back(part);
    if (parts.empty() || text.back() == ',')
        throw UsageError("--" + name + ": empty item in '" + text + "'");
    return parts;
}

}  // namespace

Args::Args(int argc, char **argv, int first, const std::set<std::string> &flags,
           const std::set<std::string> &options) {
    for (int i = first; i < argc; i++) {
        std::string token = argv[i];
        if (token.rfind("--", 0) != 0 || token.size() == 2)
            throw UsageError("unexpected argument '" + token + "'");
        std::string name = token.substr(2), value;
        const size_t eq = name.find('=');
        if (eq != std::string::npos) {
            value = name.substr(eq + 1);
            name.resize(eq);
        }
        if (!flags.count(name) && !options.count(name))
            throw UsageError("unknown option --" + name);
        if (eq != std::string::npos) {
            if (flags.count(name)) throw UsageError("--" + name + " takes no value");
        } else if (flags.count(name)) {
            value = "1";
        } else {
            if (i + 1 >= argc) throw UsageError("--" + name + " needs a value");
            value = argv[++i];
        }
        if (!values_.emplace(name, value).second)
            throw UsageError("--" + name + " is given twice");
    }
}

std::string Args::text(const std::string &name, const std::string &fallback) {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
}

int64_t Args::integer(const std::string &name, int64_t fallback, int64_t lo, int64_t hi) {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : parse_integer(name, it->second, lo, hi);
}

std::vector<int64_t> Args::integers(const std::string &name,
                                    const std::vector<int64_t> &fallback, int64_t lo,
                                    int64_t hi) {
    auto it = values_.find(name);
    if (it == values_.end()) return fallback;
    std::vector<int64_t> out;
    for (const std::string &part : split_commas(name, it->second))
        out.push_back(parse_integer(name, part, lo, hi));
    return out;
}

std::vector<std::string> Args::words(const std::string &name,
                                     const std::vector<std::string> &fallback,
                                     const std::set<std::string> &allowed) {
    auto it = values_.find(name);
    if (it == values_.end()) return fallback;
    std::vector<std::string> out = split_commas(name, it->second);
    for (const std::string &w : out)
        if (!allowed.count(w)) {
            std::string list;
            for (const std::string &a : allowed) list += (list.empty() ? "" : ", ") + a;
            throw UsageError("--" + name + ": '" + w + "' is not one of " + list);
        }
    return out;
}

bool Args::given(const std::string &name) const { return values_.count(name) != 0; }

}  // namespace smyrf_cli

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

Args::Args(int argc, char **argv, int first, const std::set<std::string> &flags) {
    for (int i = first; i < argc; i++) {
        std::string token = argv[i];
        if (token.rfind("--", 0) != 0 || token.size() == 2)
            throw UsageError("unexpected argument '" + token + "'");
        std::string name = token.substr(2), value;
        const size_t eq = name.find('=');
        if (eq != std::string::npos) {
            value = name.substr(eq + 1);
            name.resize(eq);
            if (flags.count(name)) throw UsageError("--" + name + " takes no value");
        } else if (flags.count(name)) {
            value = "1";
        } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
            value = argv[++i];
        } else {  // no value: an error when the option is read, or finish()'s unknown one
            missing_.insert(name);
        }
        if (!values_.emplace(name, value).second)
            throw UsageError("--" + name + " is given twice");
    }
}

const std::string *Args::value_of(const std::string &name) {
    asked_.insert(name);
    auto it = values_.find(name);
    if (it == values_.end()) return nullptr;
    if (missing_.count(name)) throw UsageError("--" + name + " needs a value");
    return &it->second;
}

std::string Args::text(const std::string &name, const std::string &fallback) {
    const std::string *v = value_of(name);
    // "--fixture=" would otherwise read as not given
    if (v && v->empty()) throw UsageError("--" + name + " needs a value, not an empty one");
    return v ? *v : fallback;
}

int64_t Args::integer(const std::string &name, int64_t fallback, int64_t lo, int64_t hi) {
    const std::string *v = value_of(name);
    return v ? parse_integer(name, *v, lo, hi) : fallback;
}

std::vector<int64_t> Args::integers(const std::string &name,
                                    const std::vector<int64_t> &fallback, int64_t lo,
                                    int64_t hi) {
    const std::string *v = value_of(name);
    if (!v) return fallback;
    std::vector<int64_t> out;
    for (const std::string &part : split_commas(name, *v))
        out.push_back(parse_integer(name, part, lo, hi));
    return out;
}

std::vector<std::string> Args::words(const std::string &name,
                                     const std::vector<std::string> &fallback,
                                     const std::set<std::string> &allowed) {
    const std::string *v = value_of(name);
    if (!v) return fallback;
    std::vector<std::string> out = split_commas(name, *v);
    for (const std::string &w : out)
        if (!allowed.count(w)) {
            std::string list;
            for (const std::string &a : allowed) list += (list.empty() ? "" : ", ") + a;
            throw UsageError("--" + name + ": '" + w + "' is not one of " + list);
        }
    return out;
}

bool Args::given(const std::string &name) {
    asked_.insert(name);
    return values_.count(name) != 0;
}

void Args::finish() const {
    for (const auto &kv : values_)
        if (!asked_.count(kv.first)) throw UsageError("unknown option --" + kv.first);
}

}  // namespace smyrf_cli

#include "json_line.hpp"

#include <cmath>
#include <cstdio>

namespace smyrf_cli {
namespace {

std::string quoted(const std::string &s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += (char)c;
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += (char)c;
        }
    }
    return out + "\"";
}

}  // namespace

JsonLine &JsonLine::raw(const std::string &key, const std::string &json) {
    if (!body_.empty()) body_ += ", ";
    body_ += quoted(key) + ": " + json;
    return *this;
}

JsonLine &JsonLine::add(const std::string &key, const std::string &value) {
    return raw(key, quoted(value));
}

JsonLine &JsonLine::add(const std::string &key, int64_t value) {
    return raw(key, std::to_string(value));
}

JsonLine &JsonLine::add(const std::string &key, double value) {
    if (!std::isfinite(value)) return add_null(key);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", value);
    return raw(key, buf);
}

JsonLine &JsonLine::add_null(const std::string &key) { return raw(key, "null"); }

}  // namespace smyrf_cli

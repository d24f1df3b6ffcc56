// One JSON object on one line ("JSON lines"), built field by field.
#pragma once

#include <cstdint>
#include <string>

namespace smyrf_cli {

class JsonLine {
public:
    JsonLine &add(const std::string &key, const std::string &value);
    JsonLine &add(const std::string &key, const char *value) { return add(key, std::string(value)); }
    JsonLine &add(const std::string &key, int64_t value);
    JsonLine &add(const std::string &key, double value);  // non-finite values become null
    JsonLine &add_null(const std::string &key);
    std::string str() const { return "{" + body_ + "}"; }

private:
    JsonLine &raw(const std::string &key, const std::string &json);
    std::string body_;
};

}  // namespace smyrf_cli

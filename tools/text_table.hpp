// Plain-text tables with aligned columns, for the human-readable reports.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace smyrf_cli {

class TextTable {
public:
    explicit TextTable(std::vector<std::string> headers);
    // A row with fewer cells than headers ends in a free-text cell (an error message)
    // that is not padded and does not widen its column.
    void add_row(std::vector<std::string> cells);
    void print(FILE *to) const;

private:
    std::vector<std::string> headers_;
    std::vector<std::vector<std::string>> rows_;
};

// printf into a std::string.
std::string format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace smyrf_cli

#include "text_table.hpp"

#include <algorithm>
#include <cstdarg>

namespace smyrf_cli {

TextTable::TextTable(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void TextTable::add_row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }

void TextTable::print(FILE *to) const {
    std::vector<size_t> width(headers_.size());
    for (size_t c = 0; c < headers_.size(); c++) width[c] = headers_[c].size();
    for (const auto &row : rows_)
        for (size_t c = 0; c < row.size(); c++)
            if (row.size() == headers_.size() || c + 1 < row.size())
                width[c] = std::max(width[c], row[c].size());
    auto print_row = [&](const std::vector<std::string> &row) {
        std::string line;
        for (size_t c = 0; c < row.size(); c++) {
            const bool free_text = row.size() < headers_.size() && c + 1 == row.size();
            if (c > 0) line += "  ";
            // The first column (a label) is left-aligned, numbers right-aligned.
            const std::string pad(free_text ? 0 : width[c] - row[c].size(), ' ');
            line += c == 0 ? row[c] + pad : pad + row[c];
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        std::fprintf(to, "  %s\n", line.c_str());
    };
    print_row(headers_);
    for (const auto &row : rows_) print_row(row);
}

std::string format(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    char buf[512];
    std::vsnprintf(buf, sizeof buf, fmt, args);
    va_end(args);
    return buf;
}

}  // namespace smyrf_cli

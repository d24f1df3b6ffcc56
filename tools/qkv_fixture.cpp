#include "qkv_fixture.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>

namespace smyrf_cli {
namespace {

constexpr uint32_t kVersion = 1, kDtypeF16 = 1;
constexpr uint32_t kMaxCount = 4096;  // bound on each header count: no absurd allocation

float f16_to_f32(uint16_t h) {
    const int sign = h >> 15, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
    float v;
    if (exponent == 0) v = std::ldexp((float)mantissa, -24);  // zero or subnormal
    else if (exponent == 31) v = mantissa ? NAN : INFINITY;
    else v = std::ldexp((float)(mantissa | 0x400), exponent - 25);
    return sign ? -v : v;
}

// The file's integers are little-endian; so is every machine this tool builds for.
uint32_t read_u32(std::ifstream &in, const std::string &path) {
    unsigned char b[4];
    if (!in.read(reinterpret_cast<char *>(b), 4)) throw FixtureError(path + ": truncated header");
    return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24;
}

}  // namespace

std::vector<Problem> read_qkv_fixture(const std::string &path, int64_t n) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw FixtureError(path + ": cannot open");
    char magic[8];
    if (!in.read(magic, 8) || std::memcmp(magic, "SMYRFQKV", 8) != 0)
        throw FixtureError(path + ": not a SMYRFQKV file");
    if (read_u32(in, path) != kVersion) throw FixtureError(path + ": unknown version");
    if (read_u32(in, path) != kDtypeF16) throw FixtureError(path + ": dtype is not binary16");
    const uint32_t layers = read_u32(in, path), heads = read_u32(in, path),
                   dim = read_u32(in, path), n_lengths = read_u32(in, path);
    for (uint32_t count : {layers, heads, dim, n_lengths})
        if (count == 0 || count > kMaxCount) throw FixtureError(path + ": implausible header");
    // Blocks come length by length: skip those of the lengths before n.
    uint64_t skip = 0;
    bool found = false;
    for (uint32_t c = 0; c < n_lengths; c++) {
        const uint32_t len = read_u32(in, path);
        found |= len == n;
        if (!found) skip += 3ull * layers * heads * len * dim;
    }
    if (!found) throw FixtureError(path + ": has no sequence length " + std::to_string(n));
    in.seekg((std::streamoff)(skip * 2), std::ios::cur);

    Shape shape;
    shape.heads = heads, shape.n = n, shape.d = dim;
    std::vector<Problem> out(layers);
    std::vector<uint16_t> raw((size_t)shape.elements());
    for (uint32_t l = 0; l < layers; l++) {
        Problem &p = out[l];
        p.shape = shape;
        p.origin = path + ", layer " + std::to_string(l);
        for (Tensor *t : {&p.q, &p.k, &p.v}) {  // the file's order: Q, K, V
            if (!in.read(reinterpret_cast<char *>(raw.data()), (std::streamsize)(raw.size() * 2)))
                throw FixtureError(path + ": truncated data");
            t->resize(raw.size());
            for (size_t e = 0; e < raw.size(); e++) (*t)[e] = f16_to_f32(raw[e]);
        }
    }
    return out;
}

}  // namespace smyrf_cli

// The normal (non-libFuzzer) build of a fuzz target: runs LLVMFuzzerTestOneInput on every
// file named on the command line, or in a directory named there. CTest runs each target on
// its committed seed corpus and regression inputs (tests/fuzz/corpus/<target>,
// tests/fuzz/regressions/<target>), so every input that ever crashed stays a test.
#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const std::string &path) {
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) {
        std::fprintf(stderr, "cannot open %s\n", path.c_str());
        return 1;
    }
    std::vector<uint8_t> data;
    uint8_t buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.insert(data.end(), buf, buf + n);
    std::fclose(f);
    LLVMFuzzerTestOneInput(data.data(), data.size());
    return 0;
}

int main(int argc, char **argv) {
    int files = 0, errors = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) continue;  // an absent regression folder is fine
        if (S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            if (!d) continue;
            std::vector<std::string> names;
            while (dirent *e = readdir(d))
                if (e->d_name[0] != '.') names.push_back(std::string(argv[i]) + "/" + e->d_name);
            closedir(d);
            for (auto &name : names) errors += run_file(name), files++;
        } else {
            errors += run_file(argv[i]), files++;
        }
    }
    std::printf("%s: %d inputs replayed\n", argv[0], files);
    return errors || files == 0 ? 1 : 0;
}

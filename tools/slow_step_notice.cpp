#include "slow_step_notice.hpp"

#include <chrono>
#include <cstdio>

namespace smyrf_cli {

SlowStepNotice::SlowStepNotice(std::string what)
    : what_(std::move(what)), watcher_([this] { watch(); }) {
    // Back only once the watcher waits, so that its start-up is not part of the step (a
    // timed call starts right after).
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [this] { return started_; });
}

SlowStepNotice::~SlowStepNotice() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        done_ = true;
    }
    cv_.notify_all();
    watcher_.join();
}

void SlowStepNotice::watch() {
    using namespace std::chrono;
    const auto start = steady_clock::now();
    std::unique_lock<std::mutex> lock(mutex_);
    started_ = true;
    cv_.notify_all();
    if (cv_.wait_for(lock, seconds(1), [this] { return done_; })) return;
    std::fprintf(stderr, "[smyrf] %s...\n", what_.c_str());
    while (!cv_.wait_for(lock, seconds(5), [this] { return done_; })) {
        const double s = duration<double>(steady_clock::now() - start).count();
        std::fprintf(stderr, "[smyrf] %s: %.0f s so far\n", what_.c_str(), s);
    }
}

}  // namespace smyrf_cli

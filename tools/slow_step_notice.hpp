// Progress on stderr for steps that turn out to be slow, and silence for quick ones.
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace smyrf_cli {

// While alive, prints "what..." on stderr once the step has run for a second, then the
// elapsed time every few seconds. The watcher is running and waiting when the constructor
// returns, and a waiting thread costs nothing while the step computes.
class SlowStepNotice {
public:
    explicit SlowStepNotice(std::string what);
    ~SlowStepNotice();
    SlowStepNotice(const SlowStepNotice &) = delete;
    SlowStepNotice &operator=(const SlowStepNotice &) = delete;

private:
    void watch();

    std::string what_;
    std::mutex mutex_;
    std::condition_variable cv_;  // started_ or done_ changed
    bool started_ = false, done_ = false;
    std::thread watcher_;  // last: it starts once the members above exist
};

}  // namespace smyrf_cli

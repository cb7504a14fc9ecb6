#include "server/engine/event_channel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "server/engine/request_queue.h"

namespace longbow {
namespace {

using namespace std::chrono_literals;

GenerateEvent token_event(TokenId token, bool last = false) {
  GenerateEvent event;
  event.token_ids = {token};
  event.last = last;
  return event;
}

TEST(EventChannel, DeliversInOrderAcrossThreadsAndEndsAfterTheLastEvent) {
  EventChannel channel;
  std::atomic<int> notified{0};
  channel.set_notifier([&] { ++notified; });
  std::thread producer([&] {
    for (int i = 0; i < 100; ++i) channel.push(token_event(i, i == 99));
    channel.push(token_event(1000));  // after the last: dropped
  });
  std::vector<TokenId> received;
  while (auto event = channel.next(5s)) received.push_back(event->token_ids[0]);
  producer.join();
  ASSERT_EQ(received.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(received[static_cast<size_t>(i)], i);
  EXPECT_TRUE(channel.done());
  EXPECT_EQ(notified.load(), 100);
  EXPECT_FALSE(channel.next().has_value());
}

TEST(EventChannel, TimesOutWithoutEndingTheStream) {
  EventChannel channel;
  EXPECT_FALSE(channel.next(1ms).has_value());
  EXPECT_FALSE(channel.try_next().has_value());
  EXPECT_FALSE(channel.done());
}

TEST(RequestQueue, KeepsOrderAndWakesAWaitingEngine) {
  RequestQueue queue;
  EXPECT_TRUE(queue.pop_all(0ms).empty());
  std::thread waker([&] {
    std::this_thread::sleep_for(20ms);
    queue.wake();
  });
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(queue.pop_all(10s).empty());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  waker.join();

  Submission submission;
  submission.request.request_id = "a";
  queue.push(submission);
  queue.push(Cancellation{"a", cancelled("bye")});
  EXPECT_EQ(queue.size(), 2u);
  auto commands = queue.pop_all(0ms);
  ASSERT_EQ(commands.size(), 2u);
  EXPECT_TRUE(std::holds_alternative<Submission>(commands[0]));
  EXPECT_TRUE(std::holds_alternative<Cancellation>(commands[1]));
  EXPECT_EQ(queue.size(), 0u);
}

}  // namespace
}  // namespace longbow

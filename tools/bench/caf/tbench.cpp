// SPDX-License-Identifier: MIT
// CAF 0.17 versions of troupe's benchmark workloads, for
// tools/bench/compare.sh:
//
//   tbench-caf WORKLOAD THREADS OPS
//
// All workers are event-based actors; only main() waits, through a scoped
// (blocking) actor. THREADS sets scheduler.max-threads. Prints one line,
//
//   RESULT caf WORKLOAD THREADS OPS SECONDS PEAK_RSS_KB BYTES_PER_ACTOR
//
// As in troupe's tbench, the time includes spawning the workload's actors
// and ends when the last operation is done.
//
// Build: g++ -O2 -std=c++17 -o tbench-caf tbench.cpp -lcaf_core -pthread
#include <caf/all.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

using go_atom = caf::atom_constant<caf::atom("tb_go")>;
using ping_atom = caf::atom_constant<caf::atom("tb_ping")>;
using pong_atom = caf::atom_constant<caf::atom("tb_pong")>;
using next_atom = caf::atom_constant<caf::atom("tb_next")>;
using done_atom = caf::atom_constant<caf::atom("tb_done")>;

constexpr int64_t ring_size = 1000;
constexpr int64_t big_size = 1000;

long proc_status_kb(const char* key) {
  FILE* f = std::fopen("/proc/self/status", "r");
  char line[256];
  long kb = 0;
  size_t n = std::strlen(key);
  while (f != nullptr && std::fgets(line, sizeof line, f) != nullptr)
    if (std::strncmp(line, key, n) == 0)
      kb = std::atol(line + n);
  if (f != nullptr)
    std::fclose(f);
  return kb;
}

// Replies to whoever sent the message being handled.
template <class... Ts>
void reply(caf::event_based_actor* self, Ts... xs) {
  self->send(caf::actor_cast<caf::actor>(self->current_sender()), xs...);
}

// ---- pingpong: two actors, OPS round trips --------------------------------

caf::behavior ponger(caf::event_based_actor* self) {
  return {[=](ping_atom, int64_t n) { reply(self, pong_atom::value, n); }};
}

caf::behavior pinger(caf::event_based_actor* self, caf::actor top,
                     int64_t ops) {
  auto pong = self->spawn(ponger);
  self->send(pong, ping_atom::value, ops);
  return {[=](pong_atom, int64_t n) {
    if (n > 1) {
      self->send(pong, ping_atom::value, n - 1);
      return;
    }
    self->send(top, done_atom::value);
    self->send_exit(pong, caf::exit_reason::user_shutdown);
    self->quit();
  }};
}

// ---- counting and fan-in: P producers -> 1 counter ------------------------

struct count_state {
  int64_t seen = 0;
};

caf::behavior counter(caf::stateful_actor<count_state>* self, caf::actor top,
                      int64_t total) {
  if (total == 0) { // fewer operations than producers
    self->send(top, done_atom::value);
    self->quit();
    return {};
  }
  return {[=](int64_t) {
    if (++self->state.seen == total) {
      self->send(top, done_atom::value);
      self->quit();
    }
  }};
}

// Sends everything from its initialisation, then terminates (no behaviour).
void producer(caf::event_based_actor* self, caf::actor to, int64_t n) {
  for (int64_t i = n; i > 0; i--)
    self->send(to, i);
}

// ---- ring: 1000 actors pass a token OPS hops ------------------------------

struct ring_state {
  caf::actor next;
};

// The first node is spawned without a successor and learns it (the last one
// spawned) from a message that main sends before the token.
caf::behavior ring_node(caf::stateful_actor<ring_state>* self, caf::actor next,
                        caf::actor top) {
  self->state.next = std::move(next);
  return {
    [=](next_atom, caf::actor nx) { self->state.next = std::move(nx); },
    [=](int64_t n) {
      if (n == 0)
        self->send(top, done_atom::value);
      else
        self->send(self->state.next, n - 1);
    },
  };
}

// ---- big: 1000 actors ping random peers and wait for each pong ------------

struct big_state {
  int64_t left = 0;
  uint32_t rng = 0;
};

using peer_list = std::shared_ptr<const std::vector<caf::actor>>;

// Same cheap LCG as troupe's tbench; peers are uniform over the others.
void big_ping(caf::stateful_actor<big_state>* self, int64_t me,
              const peer_list& peers) {
  auto& st = self->state;
  st.rng = st.rng * 1103515245u + 12345u;
  auto peer = static_cast<int64_t>((st.rng >> 8) % (big_size - 1));
  if (peer >= me)
    peer++;
  self->send((*peers)[peer], ping_atom::value);
}

// `peers` is filled in by main before it sends any go, so every read of it
// happens after the write.
caf::behavior big_node(caf::stateful_actor<big_state>* self, int64_t me,
                       int64_t each, peer_list peers, caf::actor top) {
  self->state.left = each;
  self->state.rng = static_cast<uint32_t>(me) * 2654435761u + 1;
  auto next_or_done = [=] {
    if (self->state.left == 0)
      self->send(top, done_atom::value); // keeps answering others' pings
    else
      big_ping(self, me, peers);
  };
  return {
    [=](ping_atom) { reply(self, pong_atom::value); },
    [=](go_atom) { next_or_done(); },
    [=](pong_atom) {
      self->state.left--;
      next_or_done();
    },
  };
}

// ---- spawn: OPS actors, each exits on its first message -------------------

caf::behavior child(caf::event_based_actor* self) {
  return {[=](go_atom) { self->quit(); }};
}

// Spawns in slices of 256 and continues through its own mailbox, like
// troupe's spawner. main() runs this workload with scheduler.max-throughput
// = 1 so the spawner yields after each slice: in CAF 0.17 a thief takes the
// tail of a worker's queue by walking the queue from its head, so letting
// hundreds of thousands of fresh children pile up behind one long-running
// spawner makes stealing quadratic (minutes for 10^6 children).
struct spawner_state {
  int64_t left = 0;
};

caf::behavior spawner(caf::stateful_actor<spawner_state>* self, int64_t n) {
  self->state.left = n;
  self->send(self, go_atom::value);
  return {[=](go_atom) {
    auto& left = self->state.left;
    for (int i = 0; i < 256 && left > 0; i++, left--)
      self->send(self->spawn(child), go_atom::value);
    if (left > 0)
      self->send(self, go_atom::value);
    else
      self->quit();
  }};
}

// ---- idle: OPS actors waiting for a message -------------------------------

caf::behavior idle_actor(caf::event_based_actor* self) {
  return {[=](ping_atom) { reply(self, pong_atom::value); }};
}

double now() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 4 || std::atoi(argv[2]) <= 0 || std::atoll(argv[3]) <= 0) {
    std::fprintf(stderr, "usage: tbench-caf WORKLOAD THREADS OPS\n");
    return 2;
  }
  std::string w = argv[1];
  int threads = std::atoi(argv[2]);
  int64_t ops = std::atoll(argv[3]);
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", static_cast<int64_t>(threads));
  if (w == "spawn")
    cfg.set("scheduler.max-throughput", int64_t{1}); // see spawner()
  caf::actor_system sys{cfg};
  double t0 = now(), t1 = 0, bytes = 0;
  if (w == "spawn") {
    // No scoped actor here: the run is over when no actor is left.
    sys.spawn(spawner, ops);
    sys.await_all_actors_done();
    t1 = now();
  } else if (w == "idle") {
    // The handles keep the actors alive; their vector is allocated and
    // touched before the first RSS reading. A ping round trip to every
    // actor makes sure all of them are initialised before the second.
    std::vector<caf::actor> idle(static_cast<size_t>(ops));
    caf::scoped_actor self{sys};
    long before = proc_status_kb("VmRSS:");
    t0 = now();
    for (auto& a : idle)
      a = sys.spawn(idle_actor);
    t1 = now();
    for (auto& a : idle)
      self->send(a, ping_atom::value);
    int64_t i = 0;
    self->receive_for(i, ops)([](pong_atom) {});
    bytes = static_cast<double>(proc_status_kb("VmRSS:") - before) * 1024.0
            / static_cast<double>(ops);
    std::printf("RESULT caf %s %d %lld %.6f %ld %.0f\n", w.c_str(), threads,
                static_cast<long long>(ops), t1 - t0,
                proc_status_kb("VmHWM:"), bytes);
    // Tearing down a million actors is not part of the measurement.
    std::fflush(stdout);
    std::_Exit(0);
  } else {
    caf::scoped_actor self{sys};
    caf::actor top = self;
    std::vector<caf::actor> kill; // actors that do not quit by themselves
    int64_t dones = 1;
    if (w == "pingpong") {
      sys.spawn(pinger, top, ops);
    } else if (w == "counting" || w == "fanin8" || w == "fanin64") {
      int64_t p = w == "counting" ? 1 : w == "fanin8" ? 8 : 64;
      auto c = sys.spawn(counter, top, ops / p * p);
      for (int64_t i = 0; i < p; i++)
        sys.spawn(producer, c, ops / p);
    } else if (w == "ring") {
      auto first = sys.spawn(ring_node, caf::actor{}, top);
      auto next = first;
      kill.push_back(first);
      for (int64_t i = 1; i < ring_size; i++) {
        next = sys.spawn(ring_node, next, top);
        kill.push_back(next);
      }
      self->send(first, next_atom::value, next);
      self->send(first, ops);
    } else if (w == "big") {
      auto peers = std::make_shared<std::vector<caf::actor>>();
      for (int64_t i = 0; i < big_size; i++)
        peers->push_back(sys.spawn(big_node, i, ops / (2 * big_size),
                                   peer_list{peers}, top));
      for (auto& a : *peers)
        self->send(a, go_atom::value);
      kill = *peers;
      dones = big_size;
    } else {
      std::fprintf(stderr, "tbench-caf: unknown workload %s\n", w.c_str());
      return 2;
    }
    int64_t i = 0;
    self->receive_for(i, dones)([](done_atom) {});
    t1 = now();
    for (auto& a : kill)
      self->send_exit(a, caf::exit_reason::user_shutdown);
  }
  std::printf("RESULT caf %s %d %lld %.6f %ld %.0f\n", w.c_str(), threads,
              static_cast<long long>(ops), t1 - t0, proc_status_kb("VmHWM:"),
              bytes);
  return 0;
}

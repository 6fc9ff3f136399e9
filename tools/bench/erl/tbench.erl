%% SPDX-License-Identifier: MIT
%% Erlang/OTP versions of troupe's benchmark workloads, for
%% tools/bench/compare.sh. Build and run:
%%
%%   erlc -o build/bench-erl tools/bench/erl/tbench.erl
%%   erl -noshell +S T:T [+P MAXPROCS] -pa build/bench-erl \
%%       -run tbench main WORKLOAD OPS
%%
%% (`-s tbench main WORKLOAD OPS` works too.) The thread count is the number
%% of schedulers, set with +S. spawn and idle with more than about 200k
%% processes need a larger process limit (+P). main/1 halts the VM itself
%% after printing one line:
%%
%%   RESULT erlang WORKLOAD THREADS OPS SECONDS PEAK_RSS_KB BYTES_PER_ACTOR
%%
%% As in troupe's tbench, the time includes spawning the workload's
%% processes and ends when the last operation is done.
-module(tbench).
-behaviour(supervisor).
-export([main/1, init/1, start_victim/1, start_storm/3]).

-define(RING, 1000).
-define(BIG, 1000).

main([Workload, Ops]) ->
    W = to_list(Workload),
    N = list_to_integer(to_list(Ops)),
    Top = self(),
    %% Measure in a fresh process so that the boot process's state does not
    %% matter; a crash anywhere in the workload (all linked) ends up here.
    {Pid, Ref} = spawn_monitor(fun() -> Top ! {self(), measure(W, N)} end),
    receive
        {Pid, {Secs, Bytes}} ->
            io:format("RESULT erlang ~s ~B ~B ~.6f ~B ~B~n",
                      [W, erlang:system_info(schedulers_online), N, Secs,
                       status_kb("VmHWM:"), round(Bytes)]),
            erlang:halt(0);
        {'DOWN', Ref, process, Pid, Why} ->
            io:format(standard_error, "tbench: ~s failed: ~p~n", [W, Why]),
            erlang:halt(1)
    end;
main(_) ->
    io:format(standard_error, "usage: tbench WORKLOAD OPS~n", []),
    erlang:halt(2).

to_list(A) when is_atom(A) -> atom_to_list(A);
to_list(L) when is_list(L) -> L.

%% Returns {Seconds, BytesPerActor}.
measure("idle", Ops) ->
    idle(Ops);
measure("storm", Ops) ->
    storm(Ops);
measure(W, Ops) ->
    Run = case W of
              "pingpong" -> fun() -> pingpong(Ops) end;
              "counting" -> fun() -> fanin(1, Ops) end;
              "fanin8" -> fun() -> fanin(8, Ops) end;
              "fanin64" -> fun() -> fanin(64, Ops) end;
              "ring" -> fun() -> ring(Ops) end;
              "big" -> fun() -> big(Ops) end;
              "spawn" -> fun() -> spawner(Ops) end;
              "restart" -> fun() -> restart(Ops) end;
              _ -> exit({unknown_workload, W})
          end,
    T0 = erlang:monotonic_time(),
    Run(),
    {seconds_since(T0), 0}.

seconds_since(T0) ->
    erlang:convert_time_unit(erlang:monotonic_time() - T0, native,
                             nanosecond) / 1.0e9.

%% A "Key: value kB" field of /proc/self/status, in kB.
status_kb(Key) ->
    {ok, Bin} = file:read_file("/proc/self/status"),
    [Line | _] = [L || L <- string:split(binary_to_list(Bin), "\n", all),
                       lists:prefix(Key, L)],
    [_, Kb | _] = string:lexemes(Line, " \t"),
    list_to_integer(Kb).

wait_done(0) -> ok;
wait_done(N) -> receive done -> wait_done(N - 1) end.

%% ---- pingpong: two processes, OPS round trips ------------------------------

pingpong(Ops) ->
    Top = self(),
    spawn_link(fun() -> pinger(Ops, Top) end),
    wait_done(1).

pinger(Ops, Top) ->
    Me = self(),
    Pong = spawn_link(fun() -> ponger(Me) end),
    ping(Pong, Ops),
    Top ! done.

ping(_, 0) -> ok;
ping(Pong, N) ->
    Pong ! ping,
    receive pong -> ping(Pong, N - 1) end.

ponger(Ping) ->
    receive ping -> Ping ! pong, ponger(Ping) end.

%% ---- counting and fan-in: P producers -> 1 counter --------------------------

fanin(P, Ops) ->
    Each = Ops div P,
    Top = self(),
    C = spawn_link(fun() -> count(Each * P, Top) end),
    [spawn_link(fun() -> produce(C, Each) end) || _ <- lists:seq(1, P)],
    wait_done(1).

count(0, Top) -> Top ! done;
count(N, Top) -> receive _ -> count(N - 1, Top) end.

produce(_, 0) -> ok;
produce(C, N) -> C ! N, produce(C, N - 1).

%% ---- ring: 1000 processes pass a token OPS hops -----------------------------

%% Each process is spawned knowing its successor; the first learns its own
%% (the last one spawned) from a message sent before the token, so the two
%% cannot be reordered.
ring(Ops) ->
    Top = self(),
    First = spawn_link(fun() -> receive {next, Nx} -> hop(Nx, Top) end end),
    Last = lists:foldl(fun(_, Nx) -> spawn_link(fun() -> hop(Nx, Top) end) end,
                       First, lists:seq(2, ?RING)),
    First ! {next, Last},
    First ! Ops,
    wait_done(1).

hop(Next, Top) ->
    receive
        0 -> Top ! done;
        N -> Next ! N - 1, hop(Next, Top)
    end.

%% ---- big: 1000 processes ping random peers and wait for each pong -----------

%% A ping is the sender's pid, a pong the atom `pong`. Peers come from a
%% minimal-standard LCG (small integers only, like troupe's cheap LCG) rather
%% than the rand module. A process that has done its pings keeps answering
%% others' until the VM halts.
big(Ops) ->
    Each = Ops div (2 * ?BIG),
    Top = self(),
    Pids = [spawn_link(fun() -> big_start(I, Each, Top) end)
            || I <- lists:seq(0, ?BIG - 1)],
    Peers = list_to_tuple(Pids),
    [P ! {go, Peers} || P <- Pids],
    wait_done(?BIG).

big_start(Me, Each, Top) ->
    receive
        {go, Peers} ->
            Seed = (Me * 2654435761 + 1) rem 2147483647,
            big_ping(Peers, Me, Each, Seed, Top)
    end.

big_ping(_, _, 0, _, Top) ->
    Top ! done,
    big_serve();
big_ping(Peers, Me, Left, X0, Top) ->
    X = X0 * 48271 rem 2147483647,
    P = X rem (?BIG - 1),
    Peer = if P >= Me -> P + 1; true -> P end,
    element(Peer + 1, Peers) ! self(),
    big_wait(Peers, Me, Left, X, Top).

big_wait(Peers, Me, Left, X, Top) ->
    receive
        From when is_pid(From) ->
            From ! pong,
            big_wait(Peers, Me, Left, X, Top);
        pong ->
            big_ping(Peers, Me, Left - 1, X, Top)
    end.

big_serve() ->
    receive From when is_pid(From) -> From ! pong, big_serve() end.

%% ---- spawn: OPS processes, each exits on its first message ------------------

%% Completion is detected without extra messages or monitors: once all
%% children are spawned and told to go, the spawner polls the VM's process
%% count every millisecond until it is back to the count before the run (an
%% atomic read; the poll's granularity is small against the run's length).
spawner(Ops) ->
    Base = erlang:system_info(process_count),
    spawn_children(Ops),
    wait_count(Base).

spawn_children(0) -> ok;
spawn_children(N) ->
    C = spawn(fun child/0),
    C ! go,
    spawn_children(N - 1).

child() -> receive go -> ok end.

wait_count(Base) ->
    case erlang:system_info(process_count) > Base of
        true -> receive after 1 -> wait_count(Base) end;
        false -> ok
    end.

%% ---- idle: OPS processes blocked in receive, bytes each ---------------------

%% The pids are not kept (that would add a list cell per process to the
%% spawner's heap); an Erlang process lives until it exits, referenced or
%% not. RSS is read once the run queues have drained, so every child has run
%% up to its receive.
idle(Ops) ->
    erlang:garbage_collect(),
    Before = status_kb("VmRSS:"),
    T0 = erlang:monotonic_time(),
    spawn_idle(Ops),
    Secs = seconds_since(T0),
    wait_run_queues(),
    After = status_kb("VmRSS:"),
    {Secs, (After - Before) * 1024 / Ops}.

spawn_idle(0) -> ok;
spawn_idle(N) ->
    spawn(fun idle_child/0),
    spawn_idle(N - 1).

idle_child() -> receive stop -> ok end.

wait_run_queues() ->
    case erlang:statistics(total_run_queue_lengths) of
        0 -> ok;
        _ -> receive after 1 -> wait_run_queues() end
    end.

%% ---- restart: a supervised child crashes OPS times; each replacement ------
%% ---- tells the driver it is up, which crashes it again ----------------------

%% Supervisor reports are switched off, as troupe's run logs to a sink that
%% drops them.
restart(Ops) ->
    logger:set_primary_config(level, none),
    {ok, Sup} = supervisor:start_link(?MODULE, {restart, self()}),
    drive(Ops),
    unlink(Sup),
    exit(Sup, kill).

drive(Left) ->
    receive
        {up, Pid} when Left > 0 -> Pid ! crash, drive(Left - 1);
        {up, _} -> ok
    end.

init({restart, Driver}) ->
    {ok, {#{strategy => one_for_one, intensity => 1000000000, period => 1},
          [#{id => victim, start => {?MODULE, start_victim, [Driver]}}]}};
init({storm, Top, Counter, N}) ->
    {ok, {#{strategy => simple_one_for_one, intensity => 1000000000,
            period => 1},
          [#{id => storm, start => {?MODULE, start_storm, [Top, Counter, N]}}]}}.

start_victim(Driver) ->
    {ok, spawn_link(fun() -> Driver ! {up, self()}, victim() end)}.

victim() -> receive crash -> exit(crash) end.

%% ---- storm: OPS simple_one_for_one children crash together; the time ------
%% ---- until every one is replaced (starting them is not timed) --------------

storm(N) ->
    logger:set_primary_config(level, none),
    Counter = atomics:new(1, []),
    {ok, Sup} = supervisor:start_link(?MODULE, {storm, self(), Counter, N}),
    Pids = [element(2, supervisor:start_child(Sup, []))
            || _ <- lists:seq(1, N)],
    T0 = erlang:monotonic_time(),
    [P ! crash || P <- Pids],
    receive all_replaced -> ok end,
    Secs = seconds_since(T0),
    unlink(Sup),
    exit(Sup, kill),
    {Secs, 0}.

start_storm(Top, Counter, N) ->
    {ok, spawn_link(fun() ->
                            case atomics:add_get(Counter, 1, 1) of
                                M when M =:= 2 * N -> Top ! all_replaced;
                                _ -> ok
                            end,
                            victim()
                    end)}.
